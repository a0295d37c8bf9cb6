"""Learning-rate schedules and the time limit: each rate follows its rule (checked against
torch.optim.lr_scheduler), the loop applies it step by step, an interrupted run resumes exactly
with the schedule's state from the checkpoint, and a time limit ends the run and the schedule."""

import math

import pytest
import torch

import vaekit
from vaekit.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from vaekit.core.model import VAE
from vaekit.core.objectives import Objective
from vaekit.data import load_data
from vaekit.errors import VaekitError
from vaekit.runs import Run
from vaekit.runs.setup import data_info
from vaekit.runs.writer import RunWriter
from vaekit.training import EveryEpoch, fit
from vaekit.training.schedules import PLATEAU_FACTOR, PLATEAU_PATIENCE, LRSchedule

TINY = dict(arch="mlp", hidden=[16], latent_dim=3, progress=False, figures=False)


@pytest.fixture(scope="module")
def digits():
    return load_data(DataConfig(source="digits"))


def _model_config(digits):
    return ModelConfig(arch="mlp", hidden=[16], latent_dim=3, data_shape=digits.shape)


def _model(digits):
    torch.manual_seed(0)
    return VAE.from_config(_model_config(digits))


def _new_run(path, digits, cfg: TrainConfig) -> Run:
    """An empty run folder for a model of _model(digits) trained with cfg on digits."""
    config = RunConfig(model=_model_config(digits), train=cfg, data=DataConfig(source="digits"))
    return Run.create(path, config, data_info(digits))


def _torch_rates(scheduler_cls, steps: int, lr: float, **kwargs) -> list[float]:
    """The rate of each of `steps` steps under a torch scheduler stepped once per step."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = scheduler_cls(opt, **kwargs)
    rates = []
    for _ in range(steps):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return rates


def test_cosine_rate_matches_torch_cosine_annealing():
    s = LRSchedule("cosine", lr=2e-3, steps_per_epoch=7, epochs=5)
    ours = [s.lr_at(t) for t in range(35)]
    ref = _torch_rates(torch.optim.lr_scheduler.CosineAnnealingLR, 35, 2e-3, T_max=35, eta_min=0.0)
    assert ours == pytest.approx(ref, rel=1e-9, abs=1e-15)
    assert ours[0] == 2e-3 and s.lr_at(35) == 0.0 and s.lr_at(99) == 0.0  # ends at 0 and stays there


def test_constant_rate_is_constant():
    s = LRSchedule("constant", lr=1e-3, steps_per_epoch=4, epochs=3)
    assert {s.lr_at(t) for t in range(20)} == {1e-3}
    assert not s.end_epoch(1, bad_epochs=5, seconds=1.0)
    assert s.lr_at(0) == 1e-3  # bad epochs do not touch a constant rate


def test_plateau_matches_torch_reduce_on_plateau():
    """Halving after every PLATEAU_PATIENCE epochs without a better validation loss is torch's
    ReduceLROnPlateau(patience=PLATEAU_PATIENCE - 1, threshold=0, factor=PLATEAU_FACTOR)."""
    gen = torch.Generator().manual_seed(1)
    losses = (torch.linspace(10, 5, 40) + torch.rand(40, generator=gen) * 3).tolist()  # a noisy descent
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=PLATEAU_FACTOR, patience=PLATEAU_PATIENCE - 1, threshold=0.0
    )
    ours = LRSchedule("plateau", lr=1.0, steps_per_epoch=3, epochs=40)
    best, bad = math.inf, 0
    for epoch, loss in enumerate(losses, start=1):
        best, bad = (loss, 0) if loss < best else (best, bad + 1)  # as fit() counts bad epochs
        ours.end_epoch(epoch, bad_epochs=bad, seconds=float(epoch))
        ref.step(loss)
        assert ours.lr_at(epoch * 3) == pytest.approx(opt.param_groups[0]["lr"]), epoch
    assert ours.lr_at(0) <= PLATEAU_FACTOR**2  # the sequence does stall: the rule fired, more than once


def test_time_limit_plans_the_epochs_that_fit_and_the_cosine_follows_the_clock():
    s = LRSchedule("cosine", lr=1.0, steps_per_epoch=10, epochs=30, time_limit=45.0)
    clock = lambda t: 0.5 * (1 + math.cos(math.pi * max(t / 45.0, 0.0)))  # noqa: E731
    steps = lambda step: 0.5 * (1 + math.cos(math.pi * step / 300))  # noqa: E731  (30 epochs x 10)
    assert s.last_epoch == 30 and [s.lr_at(i) for i in (0, 9)] == pytest.approx([1.0, steps(9)])  # no clock yet
    assert not s.end_epoch(1, bad_epochs=0, seconds=10.0)  # 35 s left at 10 s an epoch: 3 more fit
    assert s.last_epoch == 4
    # by the clock: 10 s done, then the part of the epoch done at 10 s an epoch
    assert [s.lr_at(i) for i in (10, 15, 20)] == pytest.approx([clock(10), clock(15), clock(20)])
    assert not s.end_epoch(2, bad_epochs=0, seconds=24.0)  # now 12 s an epoch: 21 s left, 1 more
    assert s.last_epoch == 3
    assert s.lr_at(25) == pytest.approx(clock(24 + 0.5 * 12))
    assert s.end_epoch(3, bad_epochs=0, seconds=36.0)  # 9 s left is less than an epoch: stop
    rates = [s.lr_at(i) for i in range(20, 40)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))  # the clock never turns the rate back up


def test_bad_options_are_clear_errors_before_anything_is_written(tmp_path):
    with pytest.raises(VaekitError, match="schedule"):
        vaekit.train("digits", out=tmp_path / "a", epochs=1, lr_schedule="step", **TINY)
    with pytest.raises(VaekitError, match="--time-limit must be positive"):
        vaekit.train("digits", out=tmp_path / "b", epochs=1, time_limit=0, **TINY)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_loop_applies_the_cosine_rate_step_by_step(digits):
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    model = _model(digits)
    seen = []
    cfg = TrainConfig(epochs=3, lr=3e-3, lr_schedule="cosine")
    hook = register_optimizer_step_pre_hook(lambda opt, args, kwargs: seen.append(opt.param_groups[0]["lr"]))
    try:
        rows = fit(model, Objective.from_config(cfg), digits, cfg)
    finally:
        hook.remove()
    steps = math.ceil(len(digits.train) / cfg.batch_size)
    expected = _torch_rates(torch.optim.lr_scheduler.CosineAnnealingLR, 3 * steps, 3e-3, T_max=3 * steps)
    assert seen == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert [r["lr"] for r in rows] == pytest.approx([expected[(e + 1) * steps - 1] for e in range(3)])


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("schedule", ["cosine", "plateau"])
def test_an_interrupted_run_resumes_exactly_with_its_schedule(tmp_path, digits, schedule):
    cfg = TrainConfig(epochs=6, lr=3e-3, lr_schedule=schedule)
    full = _model(digits)
    rows_full = fit(
        full, Objective.from_config(cfg), digits, cfg, callbacks=[RunWriter(_new_run(tmp_path / "full", digits, cfg))]
    )

    def stop_after_3(epoch, row, model):
        if epoch == 3:
            raise _Interrupt

    cut = _new_run(tmp_path / "cut", digits, cfg)
    with pytest.raises(_Interrupt):  # the writer has saved epoch 3 before the interruption
        fit(
            _model(digits),
            Objective.from_config(cfg),
            digits,
            cfg,
            callbacks=[RunWriter(cut), EveryEpoch(stop_after_3)],
        )
    cut = vaekit.load_run(tmp_path / "cut")
    assert cut.trained_epochs() == 3
    resumed = _model(digits)
    fit(resumed, Objective.from_config(cfg), digits, cfg, callbacks=[RunWriter(cut)], resume=cut.load_checkpoint())
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    rows_cut = vaekit.load_run(tmp_path / "cut").metrics()
    assert [r["lr"] for r in rows_cut] == [r["lr"] for r in rows_full]
    if schedule == "plateau":
        assert "schedule" in vaekit.load_run(tmp_path / "cut").load_checkpoint().loop


def test_a_time_limit_ends_the_run_and_the_schedule(tmp_path):
    vaekit.train("digits", out=tmp_path / "r", epochs=20, time_limit=1e-6, **TINY)
    rows = vaekit.load_run(tmp_path / "r").metrics()
    assert len(rows) == 1  # the first epoch alone overran the limit
    state = vaekit.load_run(tmp_path / "r").load_checkpoint().loop
    assert state["schedule"]["last_epoch"] == 1 and state["seconds"] > 0  # the plan ended with it
    vaekit.train("digits", out=tmp_path / "long", epochs=2, time_limit=1e6, **TINY)
    assert len(vaekit.load_run(tmp_path / "long").metrics()) == 2  # a generous limit changes nothing


def test_cli_schedule_and_time_limit_reach_the_config(tmp_path):
    from typer.testing import CliRunner

    from vaekit.cli import app

    out = tmp_path / "r"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--data",
            "digits",
            "--epochs",
            "1",
            "--arch",
            "mlp",
            "--hidden",
            "16",
            "--latent-dim",
            "3",
            "--lr-schedule",
            "plateau",
            "--time-limit",
            "3600",
            "--out",
            str(out),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    cfg = vaekit.load_run(out).config
    assert (cfg.train.lr_schedule, cfg.train.time_limit) == ("plateau", 3600.0)


def test_a_run_saved_before_schedules_resumes_at_a_constant_rate():
    from vaekit.config import RunConfig

    old = RunConfig().to_dict()
    del old["train"]["lr_schedule"], old["train"]["time_limit"]
    assert RunConfig.from_dict(old).train.lr_schedule == "constant"
    assert RunConfig.from_dict(RunConfig().to_dict()).train.lr_schedule == "auto"


def test_auto_is_cosine_under_a_time_limit_and_constant_otherwise():
    timed = LRSchedule("auto", lr=1.0, steps_per_epoch=10, epochs=4, time_limit=1e6)
    plain = LRSchedule("auto", lr=1.0, steps_per_epoch=10, epochs=4)
    cosine = LRSchedule("cosine", lr=1.0, steps_per_epoch=10, epochs=4)
    assert (timed.kind, plain.kind) == ("cosine", "constant")
    assert [timed.lr_at(s) for s in range(40)] == [cosine.lr_at(s) for s in range(40)]
    assert {plain.lr_at(s) for s in range(40)} == {1.0}
