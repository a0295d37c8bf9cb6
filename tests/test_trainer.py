"""The training loop: learning, exact resume, the non-finite guard, early stopping, atomic writes."""

import json

import pytest
import torch

import vaekit
from vaekit import atomic
from vaekit.config import DataConfig, ModelConfig, TrainConfig
from vaekit.core.model import VAE
from vaekit.core.objectives import Objective
from vaekit.data import load_data
from vaekit.errors import TrainingDiverged
from vaekit.runs import files
from vaekit.runs.layout import CHECKPOINT_FILE
from vaekit.training import distributed, fit
from vaekit.training.guard import Guard

TINY = dict(arch="mlp", hidden=[32], latent_dim=4, progress=False, figures=False)


@pytest.fixture(scope="module")
def digits():
    return load_data(DataConfig(source="digits"))


def _weights(run_dir, which="last"):
    return vaekit.load(run_dir, which=which).state_dict()


def test_validation_loss_falls_well_below_the_first_epoch(tmp_path):
    vaekit.train("digits", out=tmp_path / "r", epochs=15, lr=3e-3, **TINY)
    rows = vaekit.load_run(tmp_path / "r").metrics()
    assert len(rows) == 15
    first, best = rows[0]["val_loss"], min(r["val_loss"] for r in rows)
    assert best < first - 8.0, (first, best)  # nats per example
    assert all(r["images_per_s"] > 0 and r["seconds"] > 0 for r in rows)


@pytest.mark.parametrize("extra", [{}, dict(binarize="dynamic", kl_warmup=30, free_bits=0.1, denoise="mask:0.2")])
def test_resume_is_exact(tmp_path, extra):
    # with the default schedule (constant without a time limit); a cosine schedule stretches to
    # the new total instead; resuming an interrupted cosine or plateau run: tests/test_schedules.py
    vaekit.train("digits", out=tmp_path / "full", epochs=4, **TINY, **extra)
    vaekit.train("digits", out=tmp_path / "half", epochs=2, **TINY, **extra)
    vaekit.train(resume=tmp_path / "half", epochs=4, progress=False, figures=False)
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "half")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    full, half = vaekit.load_run(tmp_path / "full").metrics(), vaekit.load_run(tmp_path / "half").metrics()
    assert [r["epoch"] for r in half] == [1, 2, 3, 4]
    assert [r["val_loss"] for r in full] == [r["val_loss"] for r in half]


def test_same_seed_same_weights_different_seed_different(tmp_path):
    vaekit.train("digits", out=tmp_path / "a", epochs=1, seed=3, **TINY)
    vaekit.train("digits", out=tmp_path / "b", epochs=1, seed=3, **TINY)
    vaekit.train("digits", out=tmp_path / "c", epochs=1, seed=4, **TINY)
    a, b, c = (_weights(tmp_path / n) for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_non_finite_steps_are_skipped_then_training_stops(digits):
    model = VAE.from_config(ModelConfig(arch="mlp", hidden=[8], latent_dim=2, data_shape=digits.shape))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.decoder.head.bias.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="non-finite"):
        fit(model, Objective(), digits, TrainConfig(epochs=1, max_bad_steps=3))
    # the encoder was never updated: no poisoned step was applied
    for k, v in model.state_dict().items():
        if k.startswith("encoder"):
            assert torch.equal(v, before[k])


def test_early_stopping_stops_after_patience(digits):
    model = VAE.from_config(ModelConfig(arch="mlp", hidden=[8], latent_dim=2, data_shape=digits.shape))
    rows = fit(model, Objective(), digits, TrainConfig(epochs=50, lr=1e-9, patience=2))
    assert len(rows) < 50
    best = min(range(len(rows)), key=lambda i: rows[i]["val_loss"])
    assert len(rows) - 1 - best == 2  # exactly `patience` epochs without improvement


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "r"
    vaekit.train("digits", out=run, epochs=1, **TINY)
    good = (run / CHECKPOINT_FILE).read_bytes()

    def boom(*a, **k):
        raise KeyboardInterrupt  # as if the process were killed mid-write

    monkeypatch.setattr(files, "st_save", boom)
    with pytest.raises(KeyboardInterrupt):
        vaekit.train(resume=run, epochs=2, progress=False, figures=False)
    assert (run / CHECKPOINT_FILE).read_bytes() == good
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    vaekit.train(resume=run, epochs=2, progress=False, figures=False)  # resumes from epoch 1
    assert [r["epoch"] for r in vaekit.load_run(run).metrics()] == [1, 2]


def test_run_folder_contents(tmp_path):
    run = tmp_path / "r"
    vaekit.train("digits", out=run, epochs=2, arch="conv", latent_dim=3, progress=False)
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["data_shape"] == [1, 8, 8] and cfg["model"]["channels"] == [32]
    assert cfg["info"]["class_names"][:2] == ["0", "1"]
    for name in [
        "model.safetensors",
        "checkpoint.safetensors",
        "metrics.jsonl",
        "reconstructions.png",
        "samples.png",
        "loss_curves.png",
        "latent_scatter.png",
    ]:
        assert (run / name).stat().st_size > 0, name
    from PIL import Image

    assert Image.open(run / "samples.png").size[0] >= 8 * 48  # 8 tiles of >= 48 px
    row = vaekit.load_run(run).metrics()[-1]
    for key in ["train_loss", "train_recon", "train_kl", "val_loss", "val_recon", "val_kl", "seconds", "images_per_s"]:
        assert isinstance(row[key], float)
    assert row["train_loss"] == pytest.approx(row["train_recon"] + row["train_kl"], rel=1e-4)


def test_atomic_writes_get_ordinary_file_permissions(tmp_path):
    """mkstemp makes 0600 files; a run folder shared with a team must honour the umask instead."""
    import os

    old = os.umask(0o027)
    try:
        atomic._UMASK, saved = 0o027, atomic._UMASK
        atomic.atomic_write(tmp_path / "a.json", "{}")
    finally:
        atomic._UMASK = saved
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640
    atomic.atomic_write(tmp_path / "b.json", "{}")
    assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o666 & ~atomic._UMASK


def test_skip_norm_skips_updates_with_a_huge_gradient(tmp_path):
    guard = Guard(torch.device("cpu"), distributed.context(), max_bad=5, skip_norm=4.0)
    loss = torch.tensor(1.0)
    assert float(guard.check(loss, torch.tensor(5.0))) == 1.0  # above the threshold: skipped
    assert float(guard.check(loss, torch.tensor(3.0))) == 0.0
    assert float(guard.check(loss, torch.tensor(float("nan")))) == 1.0
    vaekit.train("digits", out=tmp_path / "none", epochs=1, skip_norm=1e9, **TINY)
    vaekit.train("digits", out=tmp_path / "plain", epochs=1, **TINY)
    a, b = _weights(tmp_path / "none"), _weights(tmp_path / "plain")
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(TrainingDiverged, match="--skip-norm"):  # every update skipped
        vaekit.train("digits", out=tmp_path / "all", epochs=1, skip_norm=1e-6, **TINY)
