"""The training loop's speed paths that run on the CPU: the fused optimizer's device-side
skip, the non-finite guard read back every N steps (as on a GPU), bf16/fp16 autocast, and
exact resume through all of them."""

import pytest
import torch

import vaekit
from vaekit.config import DataConfig, ModelConfig, TrainConfig
from vaekit.core.model import VAE
from vaekit.core.objectives import Objective
from vaekit.data import Dataset, DataSplits, load_data
from vaekit.errors import TrainingDiverged, VaekitError
from vaekit.training import devices, loop, optim
from vaekit.training.loop import make_optimizer


def fit(model, data, cfg: TrainConfig):
    """vaekit.training.fit with the objective cfg asks for."""
    return loop.fit(model, Objective.from_config(cfg), data, cfg)


TINY = dict(arch="mlp", hidden=[16], latent_dim=3, progress=False, figures=False)


@pytest.fixture(scope="module")
def digits():
    return load_data(DataConfig(source="digits"))


@pytest.fixture
def sync_every(monkeypatch):
    """Read the guard's counters back every n steps on the CPU too, as on an accelerator."""

    def set_to(n):
        monkeypatch.setattr(devices, "HOST_SYNC_EVERY", n)
        monkeypatch.setattr(loop, "host_sync_every", lambda device: n)

    return set_to


def _model(digits, seed=0):
    torch.manual_seed(seed)
    return VAE.from_config(ModelConfig(arch="mlp", hidden=[16], latent_dim=3, data_shape=digits.shape))


def _with_poisoned_example(digits: DataSplits) -> DataSplits:
    """One training example is NaN: the one step per epoch whose batch holds it is non-finite."""
    x = digits.train.x.clone()
    x[7] = float("nan")
    return DataSplits(Dataset(x, digits.train.y), digits.val, digits.test, digits.name, digits.is_image)


def test_fused_adam_skips_a_flagged_step_without_touching_weights_or_moments():
    w = torch.nn.Parameter(torch.randn(5, 3))
    opt = make_optimizer([w], 1e-2)
    assert opt.param_groups[0]["fused"]  # the CPU has the fused kernel in the pinned torch
    w.grad = torch.randn_like(w)
    opt.step()
    before = (w.detach().clone(), {k: v.clone() for k, v in opt.state[w].items()})
    w.grad = torch.full_like(w, float("nan"))
    opt.found_inf = torch.ones(())
    opt.step()
    assert torch.equal(w.detach(), before[0])
    for k, v in opt.state[w].items():
        assert torch.equal(v, before[1][k]), k
    opt.found_inf = torch.zeros(())
    w.grad = torch.randn_like(w)
    opt.step()
    assert not torch.equal(w.detach(), before[0])
    assert float(opt.state[w]["step"]) == 2.0  # the skipped step did not count


@pytest.mark.parametrize("every", [1, 4])
def test_an_isolated_non_finite_step_is_skipped_and_training_goes_on(digits, sync_every, every):
    sync_every(every)
    data = _with_poisoned_example(digits)
    model = _model(digits)
    rows = fit(model, data, TrainConfig(epochs=2, batch_size=64, seed=1))
    assert [r["skipped_steps"] for r in rows] == [1, 1]
    assert all(torch.isfinite(p).all() for p in model.parameters())
    steps_per_epoch = -(-len(data.train) // 64)
    assert rows[-1]["step"] == 2 * (steps_per_epoch - 1)  # applied steps only
    assert rows[-1]["val_loss"] < rows[0]["val_loss"] + 5 and torch.isfinite(torch.tensor(rows[-1]["train_loss"]))


def test_reading_the_guard_back_every_n_steps_changes_nothing(digits, sync_every):
    """Deferring the host read (as on a GPU) gives exactly the weights of reading every step."""
    data = _with_poisoned_example(digits)
    weights = []
    for every in (1, 5):
        sync_every(every)
        model = _model(digits)
        fit(model, data, TrainConfig(epochs=2, batch_size=64, seed=2, grad_clip=5.0))
        weights.append(model.state_dict())
    for k in weights[0]:
        assert torch.equal(weights[0][k], weights[1][k]), k


@pytest.mark.parametrize("every", [1, 3])
def test_divergence_stops_training_and_no_poisoned_step_is_applied(digits, sync_every, every):
    sync_every(every)
    model = _model(digits)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.decoder.head.bias.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="3 steps in a row|[3-9] steps in a row"):
        fit(model, digits, TrainConfig(epochs=1, max_bad_steps=3))
    for k, v in model.state_dict().items():
        if k.startswith("encoder"):
            assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_and_keeps_float32_weights(digits, precision):
    model = _model(digits)
    rows = fit(model, digits, TrainConfig(epochs=6, lr=3e-3, precision=precision))
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert rows[-1]["val_loss"] < rows[0]["val_loss"] - 2.0, [r["val_loss"] for r in rows]
    assert all(r["skipped_steps"] <= 2 for r in rows)  # fp16: the scaler may skip a step while it settles


def test_bf16_tracks_fp32_closely(digits):
    losses = {}
    for precision in ("fp32", "bf16"):
        rows = fit(_model(digits), digits, TrainConfig(epochs=4, lr=3e-3, precision=precision))
        losses[precision] = rows[-1]["val_loss"]
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.05), losses


@pytest.mark.parametrize("arch", ["mlp", "conv"])  # conv: bf16 also turns on channels-last
def test_resume_is_exact_through_the_fast_paths(tmp_path, sync_every, arch):
    sync_every(3)
    # lr_schedule constant: extending a finished run is exact at a constant rate (the cosine
    # schedule's interrupted-run resume: tests/test_schedules.py)
    extra = dict(precision="bf16", grad_clip=2.0, kl_warmup=20, lr_schedule="constant")
    tiny = {**TINY, "arch": arch}
    vaekit.train("digits", out=tmp_path / "full", epochs=4, **tiny, **extra)
    vaekit.train("digits", out=tmp_path / "half", epochs=2, **tiny, **extra)
    vaekit.train(resume=tmp_path / "half", epochs=4, progress=False, figures=False)
    a = vaekit.load(tmp_path / "full", which="last").state_dict()
    b = vaekit.load(tmp_path / "half", which="last").state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_unknown_precision_is_a_clear_error():
    with pytest.raises(VaekitError, match="precision"):
        vaekit.train("digits", epochs=1, precision="fp8", **TINY)


@pytest.mark.slow
def test_compile_trains_like_eager(digits, monkeypatch):
    """torch.compile on a tiny model: the compiled full batches and the eager last batch
    share the parameters; the result matches eager training to float tolerance (with
    Inductor drawing its random numbers as eager does; by default it has its own stream)."""
    import torch._inductor.config as inductor_config

    monkeypatch.setattr(inductor_config, "fallback_random", True)
    small = DataSplits(
        digits.train.subset(torch.arange(200)),
        digits.val.subset(torch.arange(50)),
        digits.test,
        digits.name,
        digits.is_image,
    )
    results = {}
    for compile_ in (False, True):
        model = _model(digits)
        rows = fit(model, small, TrainConfig(epochs=2, batch_size=64, compile=compile_))
        results[compile_] = (rows[-1]["val_loss"], model.state_dict())
    assert results[True][0] == pytest.approx(results[False][0], abs=1e-3)
    for k, v in results[False][1].items():
        torch.testing.assert_close(results[True][1][k], v, atol=1e-4, rtol=1e-4)


def test_cli_precision_flag_reaches_the_loop_and_is_recorded(tmp_path):
    from vaekit.cli import main

    with pytest.raises(SystemExit) as e:
        main(
            [
                "train",
                "--data",
                "digits",
                "--arch",
                "mlp",
                "--hidden",
                "16",
                "--latent-dim",
                "3",
                "--epochs",
                "1",
                "--precision",
                "bf16",
                "--out",
                str(tmp_path / "r"),
                "-q",
            ]
        )
    assert e.value.code in (0, None)
    assert vaekit.load_run(tmp_path / "r").metrics()[0]["precision"] == "bf16"


def test_auto_precision_is_bf16_only_where_the_device_has_it():
    from vaekit.training.precision import Precision, native_bf16

    cpu = torch.device("cpu")
    assert Precision("auto", cpu).name == ("bf16" if native_bf16(cpu) else "fp32")
    assert Precision("fp32", cpu).dtype is None and Precision("fp16", cpu).scaler is not None


def test_a_device_with_its_index_resolves_as_a_gpu_trained_run_reports_it():
    """A run trained on a GPU records its model's device as torch names it (cuda:0); loading it
    back must not call that an unknown device (found on an H200)."""
    resolve_device = devices.resolve_device
    assert resolve_device("cpu:0") == torch.device("cpu:0")
    if not torch.cuda.is_available():
        with pytest.raises(VaekitError, match="sees 0 CUDA GPU"):
            resolve_device("cuda:0")
    else:
        assert resolve_device("cuda:0") == torch.device("cuda:0")
    for bad in ("gpu:0", "cuda:x", "tpu"):
        with pytest.raises(VaekitError, match="unknown device"):
            resolve_device(bad)


def test_restored_adam_moments_follow_channels_last_weights():
    """A checkpoint restores Adam's moments contiguous; with channels-last weights the fused
    kernel would mix them (found by the hvae's resume test). After match_state_layout one step
    is the step of an optimizer that never stopped."""
    g = torch.Generator().manual_seed(0)
    grad = torch.randn(8, 4, 3, 3, generator=g).to(memory_format=torch.channels_last)
    w = torch.randn(8, 4, 3, 3, generator=g).to(memory_format=torch.channels_last).requires_grad_()
    running = make_optimizer([w], 0.1)
    for _ in range(3):
        w.grad = grad.clone()
        running.step()
    saved = running.state_dict()
    saved["state"][0] = {k: v.clone().contiguous() for k, v in saved["state"][0].items()}  # as a checkpoint gives them
    w2 = w.detach().clone().to(memory_format=torch.channels_last).requires_grad_()
    restored = make_optimizer([w2], 0.1)
    restored.load_state_dict(saved)
    optim.match_state_layout(restored)
    w.grad, w2.grad = grad.clone(), grad.clone()
    running.step()
    restored.step()
    assert torch.equal(w.detach(), w2.detach())
