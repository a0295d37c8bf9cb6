"""The run layer: one Run owns a run folder; folders written before it existed still load and
give the same outputs; training writes through callbacks (the folder, TensorBoard); a time
budget is spent, not left over."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import vaekit
from vaekit.config import DEFAULT_EPOCHS, DataConfig, ModelConfig, RunConfig, TrainConfig
from vaekit.core.sampling import reconstruct, sample
from vaekit.data import load_data
from vaekit.errors import RunFolderError
from vaekit.runs import layout

LEGACY = Path(__file__).parent / "data" / "legacy_runs"
TINY = dict(arch="mlp", hidden=[32], latent_dim=2, progress=False, figures=False)


@pytest.fixture
def legacy(tmp_path):
    """A copy of the run folders written by vaekit before the run layer (tests/data/legacy_runs)."""
    dst = tmp_path / "legacy"
    shutil.copytree(LEGACY, dst)
    return dst


@pytest.mark.parametrize("name", ["legacy-run", "legacy-denoise"])
def test_a_run_folder_from_before_the_run_layer_gives_the_same_outputs(legacy, name):
    expected = np.load(LEGACY / "expected_outputs.npz")
    run = vaekit.load_run(legacy / name)
    assert run.config.model.latent_dim == 2 and run.info["data_name"] == "digits"
    test = run.data().test
    np.testing.assert_array_equal(test.x[:4].numpy(), expected[f"{name}/test_index"])  # the same split
    torch.manual_seed(123)  # sampling with a seed must not depend on the global RNG
    np.testing.assert_allclose(sample(run.model, 4, seed=0).numpy(), expected[f"{name}/sample_standard"], atol=1e-6)
    np.testing.assert_allclose(
        sample(run.model, 4, seed=0, prior=run.prior()).numpy(), expected[f"{name}/sample_default_prior"], atol=1e-6
    )
    np.testing.assert_allclose(
        reconstruct(run.model, test.x[:4]).numpy(), expected[f"{name}/reconstruct_test4"], atol=1e-6
    )


def test_legacy_structured_settings_and_attachments_are_read(legacy):
    old = vaekit.load_run(legacy / "legacy-denoise")
    assert old.config.train.capacity == vaekit.Capacity(5.0, 100)  # was the string "5:100"
    assert old.config.train.denoise == vaekit.Corruption("gaussian", 0.1)  # was "gaussian:0.1"
    assert old.priors.fitted() == ["vae"] and old.prior().kind == "vae"
    run = vaekit.load_run(legacy / "legacy-run")
    assert run.priors.fitted() == ["gmm"] and run.prior().kind == "gmm"
    bg = run.background()
    assert bg is not None and bg.info["perturbation"] == "uniform:0.2"
    assert run.evaluation()["likelihood"]["iw_samples"] == 5
    assert [r["epoch"] for r in run.metrics()] == [1, 2]


def test_a_legacy_run_resumes_and_its_folder_is_written_in_the_new_format(legacy):
    run = vaekit.train(resume=legacy / "legacy-run", epochs=3, progress=False, figures=False)
    assert [r["epoch"] for r in run.metrics()] == [1, 2, 3]
    assert (legacy / "legacy-run" / "config.json").read_text().count('"format": "vaekit-run/2"') == 1
    again = vaekit.load_run(legacy / "legacy-run")
    assert again.trained_epochs() == 3 and again.config.train.epochs == 3


def test_load_is_a_shortcut_to_the_runs_model(tmp_path):
    run = vaekit.train("digits", out=tmp_path / "r", epochs=1, **TINY)
    a, b = vaekit.load(tmp_path / "r").state_dict(), vaekit.load_run(tmp_path / "r").model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert isinstance(run, vaekit.Run) and run.test_metrics["nelbo"] > 0
    assert not hasattr(run.model, "run_dir")  # nothing is attached to the model any more


def test_train_run_takes_splits_in_memory(tmp_path):
    """The same loop for data that never was a file: the second-stage prior and the background
    model are trained this way."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 3, generator=g) @ torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.2]])
    splits = vaekit.DataSplits(
        vaekit.Dataset(x[:200]), vaekit.Dataset(x[200:250]), vaekit.Dataset(x[250:]), name="codes", is_image=False
    )
    config = RunConfig(
        model=ModelConfig(
            arch="mlp", hidden=[16], latent_dim=2, likelihood="gaussian", learn_sigma="global", data_shape=[3]
        ),
        train=TrainConfig(epochs=3, batch_size=50),
        data=DataConfig(source="in memory"),
    )
    run = vaekit.train_run(
        config, splits, tmp_path / "mem", progress=False, figures=False, info={"data_in_memory": True}
    )
    assert [r["epoch"] for r in run.metrics()] == [1, 2, 3] and math.isfinite(run.test_metrics["nelbo"])
    with pytest.raises(vaekit.VaekitError, match="in memory"):
        vaekit.load_run(tmp_path / "mem").data()


def test_a_time_budget_is_spent_not_left_over(tmp_path):
    """With --time-limit and no --epochs, training goes on until the budget is used (well past the
    default epoch count here), and the cosine rate ends near zero with the run."""
    budget = 4.0
    run = vaekit.train("digits", out=tmp_path / "t", time_limit=budget, **TINY)
    rows = run.metrics()
    spent = run.load_checkpoint().loop["seconds"]  # training and validation, as the limit counts them
    # it stops when another epoch at the mean epoch time would not fit: less than one left over
    assert budget - spent < spent / len(rows)
    if len(rows) >= DEFAULT_EPOCHS:  # (on a busy machine epochs may be slow; the bound above holds anyway)
        first = sum(r["seconds"] for r in rows[:DEFAULT_EPOCHS])
        assert len(rows) > DEFAULT_EPOCHS or first > budget / 2, "stopped at the epoch default, not the budget"
    assert rows[0]["lr"] == pytest.approx(run.config.train.lr)
    assert len(rows) == 1 or rows[-1]["lr"] < rows[0]["lr"]  # (a very busy machine may fit one epoch only)
    # the cosine was planned on the budget: its plan ends with the epoch the run ended with
    assert run.load_checkpoint().loop["schedule"]["last_epoch"] == len(rows)


def test_with_epochs_a_time_limit_only_stops_early(tmp_path):
    run = vaekit.train("digits", out=tmp_path / "t", epochs=3, time_limit=1e6, **TINY)
    assert len(run.metrics()) == 3


def test_the_kl_cycles_follow_the_planned_run(tmp_path):
    """Cyclical annealing spans the run's planned steps: with an epoch count, the cycles end with
    the last epoch (the weight is back at beta by the end of each cycle's ramp)."""
    run = vaekit.train("digits", out=tmp_path / "c", epochs=4, kl_cycles=2, **TINY)
    weights = [r["kl_weight"] for r in run.metrics()]
    # 2 cycles over 4 epochs: epochs 1 and 3 end half-way through their cycle (weight beta, ramp 0.5)
    assert weights[0] == pytest.approx(1.0) and weights[2] == pytest.approx(1.0)
    assert weights[1] < 0.1 and weights[3] < 0.1  # a new cycle begins at epochs 2's and 4's end


def test_tensorboard_receives_the_same_metrics_as_the_run_folder(tmp_path):
    pytest.importorskip("tensorboard", reason="--log tensorboard needs the tensorboard package")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = vaekit.train("digits", out=tmp_path / "tb", epochs=3, log="tensorboard", **TINY)
    acc = EventAccumulator(str(run.tensorboard_dir))
    acc.Reload()
    val = acc.Scalars("val/loss")
    rows = run.metrics()
    assert [e.step for e in val] == [1, 2, 3]
    assert [e.value for e in val] == pytest.approx([r["val_loss"] for r in rows], rel=1e-6)
    assert [e.value for e in acc.Scalars("train/kl")] == pytest.approx([r["train_kl"] for r in rows], rel=1e-6)


def test_run_folder_files_are_known_to_the_layout(tmp_path):
    """Every file training writes is one the layout names (so --overwrite can remove it)."""
    vaekit.train("digits", out=tmp_path / "r", epochs=2, arch="mlp", hidden=[32], latent_dim=2, progress=False)
    names = {p.name for p in (tmp_path / "r").iterdir()}
    assert names <= layout.OWN_FILES, names - layout.OWN_FILES
    assert {"config.json", "model.safetensors", "checkpoint.safetensors", "metrics.jsonl", "samples.png"} <= names


def test_opening_something_else_is_one_sentence(tmp_path):
    (tmp_path / "not-a-run").mkdir()
    with pytest.raises(RunFolderError, match="not a vaekit run folder"):
        vaekit.load_run(tmp_path / "not-a-run")
    with pytest.raises(RunFolderError, match="no such run folder"):
        vaekit.load_run(tmp_path / "missing")


def test_data_splits_are_the_training_ones(tmp_path):
    run = vaekit.train("digits", out=tmp_path / "r", epochs=1, val_fraction=0.2, split_seed=3, **TINY)
    again = load_data(DataConfig(source="digits", val_fraction=0.2, split_seed=3))
    assert torch.equal(run.data().val.x, again.val.x) and torch.equal(run.data().test.x, again.test.x)
