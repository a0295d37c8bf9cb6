"""Training on several processes: torchrun + DistributedDataParallel over gloo on the CPU.

Two processes with batch 64 each must step exactly like one process with batch 128: every
rank takes its slice of the same global batch and DDP averages the gradients. Only rank 0
writes the run folder, and a resumed multi-process run continues exactly."""

import pytest
import torch
from helpers import DDP_VAL_FRACTION, torchrun_train

import vaekit
from vaekit.runs.layout import LOCK_FILE
from vaekit.training import distributed

VAL_FRACTION = DDP_VAL_FRACTION


def _weights(run):
    return vaekit.load(run, which="last").state_dict()


@pytest.fixture(scope="module")
def two_process_ae(tmp_path_factory):
    """One epoch of an AE (no sampling noise) on 2 processes x batch 64, and on 1 x batch 128."""
    tmp = tmp_path_factory.mktemp("ddp")
    out = torchrun_train(tmp, "--model", "ae", "--epochs", "1", "--batch-size", "64", "--out", str(tmp / "two"))
    vaekit.train(
        "digits",
        out=tmp / "one",
        model="ae",
        arch="mlp",
        hidden=[32],
        latent_dim=4,
        epochs=1,
        batch_size=128,
        val_fraction=VAL_FRACTION,
        progress=False,
        figures=False,
    )
    assert vaekit.load_run(tmp / "one").info["n_train"] % 2 == 0
    return tmp, out


def test_two_processes_step_like_one_with_the_global_batch(two_process_ae):
    tmp, _ = two_process_ae
    two, one = _weights(tmp / "two"), _weights(tmp / "one")
    assert two.keys() == one.keys()
    for k in one:
        # the same arithmetic up to the order of the gradient sums; Adam can turn a float-level
        # difference in a near-zero gradient into a fraction of one learning-rate step
        torch.testing.assert_close(two[k], one[k], atol=3e-4, rtol=1e-3, msg=k)


def test_only_rank_zero_writes_the_run_folder(two_process_ae):
    tmp, out = two_process_ae
    run = tmp / "two"
    rows = vaekit.load_run(run).metrics()
    assert [r["epoch"] for r in rows] == [1]  # one line: a second writer would have appended another
    one = vaekit.load_run(tmp / "one").metrics()[0]
    assert rows[0]["step"] == one["step"]  # the same number of (global) steps
    # no stray temporary files (the folder's lock file stays, by design)
    assert not [p for p in run.iterdir() if p.name.startswith(".") and p.name != LOCK_FILE]
    assert out.stdout.count("run folder:") == 1  # rank 0 speaks for all
    assert (run / "samples.png").is_file()


def test_validation_is_all_reduced_to_the_whole_split(two_process_ae):
    """Rank shards cover the validation split; the all-reduced loss equals one process's
    evaluation of the same weights (an AE has no sampling noise)."""
    from vaekit.config import DataConfig
    from vaekit.core.objectives import Objective
    from vaekit.data import load_data
    from vaekit.training import evaluate_loss

    tmp, _ = two_process_ae
    run = vaekit.load_run(tmp / "two")
    model = run.load_model("last")
    data = load_data(DataConfig(source="digits", val_fraction=VAL_FRACTION))
    single = evaluate_loss(model, data.val, Objective.from_config(run.config.train), seed=1)
    logged = run.metrics()[0]
    assert logged["val_loss"] == pytest.approx(single["loss"], rel=1e-5)


def test_a_multi_process_vae_run_resumes_exactly(tmp_path):
    """Each rank's own RNG state (it draws the latent noise) travels in the checkpoint. (A run
    extended past its first --epochs is exact at a constant rate: a cosine one stretches.)"""
    const = ("--lr-schedule", "constant")
    torchrun_train(tmp_path, "--epochs", "2", "--batch-size", "64", *const, "--out", str(tmp_path / "full"))
    torchrun_train(tmp_path, "--epochs", "1", "--batch-size", "64", *const, "--out", str(tmp_path / "half"))
    torchrun_train(tmp_path, "--epochs", "2", "--resume", str(tmp_path / "half"))
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "half")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [r["val_loss"] for r in vaekit.load_run(tmp_path / "full").metrics()] == [
        r["val_loss"] for r in vaekit.load_run(tmp_path / "half").metrics()
    ]


def test_a_plain_process_is_rank_zero_of_one():
    ctx = distributed.init_from_env()
    assert (ctx.rank, ctx.world_size, ctx.enabled, ctx.is_main) == (0, 1, False, True)
    idx = torch.arange(10)
    assert torch.equal(distributed.shard(idx, ctx), idx)


def test_shards_are_disjoint_and_cover_the_batch():
    idx = torch.randperm(128)
    parts = [distributed.shard(idx, distributed.Context(rank=r, world_size=3)) for r in range(3)]
    assert sorted(torch.cat(parts).tolist()) == list(range(128))
    assert {len(p) for p in parts} <= {42, 43}
    for r in range(3):
        ctx = distributed.Context(rank=r, world_size=3)
        assert torch.equal(idx[distributed.shard_slice(128, ctx)], parts[r])
