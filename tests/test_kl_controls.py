"""Each KL control changes what it claims in real training, on small digits runs (a few seconds
each); the schedules' formulas alone are checked in test_objectives.py."""

import math

import pytest
import torch

import vaekit
from vaekit.config import TrainConfig
from vaekit.core.objectives import Objective
from vaekit.core.sampling import encode_dataset
from vaekit.evaluation.latent import latent_metrics
from vaekit.training import evaluate_loss

TINY = dict(arch="mlp", hidden=[128], latent_dim=8, progress=False, figures=False)
STEPS_PER_EPOCH = 12  # digits: 1455 training examples / batch 128


def _train(tmp_path, name, **kw):
    return vaekit.train("digits", out=tmp_path / name, **TINY, **kw)


def _test_kl_per_dim(run) -> torch.Tensor:
    """Mean KL(q(z|x) || N(0, I)) per latent dimension over the test split, (D,), with
    torch.distributions as the reference (the run's best-validation weights)."""
    enc = encode_dataset(run.model, run.data().test)
    q = torch.distributions.Normal(enc["mu"], torch.exp(0.5 * enc["logvar"]))
    return torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).mean(0)


def test_warmup_weight_follows_its_schedule_and_is_applied(tmp_path):
    run = _train(tmp_path, "warm", epochs=4, beta=2.0, kl_warmup=30)
    model = run.model
    rows = vaekit.load_run(run.path).metrics()
    assert [r["step"] for r in rows] == [12, 24, 36, 48]
    # logged after each epoch: the weight of the next step, 2 * min(1, step / 30)
    assert [r["kl_weight"] for r in rows] == pytest.approx([0.8, 1.6, 2.0, 2.0])
    assert all(r["capacity"] is None for r in rows)
    # the loss uses that weight: recon + w * KL, with the terms computed by hand
    control = Objective.from_config(run.config.train)
    x = run.data().test.x[:64]
    with torch.no_grad():
        out = model(x, generator=torch.Generator().manual_seed(0))
    q = torch.distributions.Normal(out.posterior.mu, out.posterior.std)
    kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)
    for step, w in [(0, 0.0), (15, 1.0), (29, 2 * 29 / 30), (300, 2.0)]:
        assert float(control.loss(out, step)) == pytest.approx(float(out.recon.mean() + w * kl.mean()), rel=1e-5)


def test_cyclical_weight_restarts_every_cycle(tmp_path):
    # 4 epochs x 12 steps, 2 cycles: period 24 steps, ramp over the first 12 of each
    run = _train(tmp_path, "cyc", epochs=4, beta=1.0, kl_cycles=2)
    rows = run.metrics()
    assert [r["kl_weight"] for r in rows] == pytest.approx([1.0, 0.0, 1.0, 0.0])


def test_free_bits_keeps_dimensions_alive_where_plain_training_collapses(tmp_path):
    # beta = 4 on 8x8 digits collapses the posterior: every dimension's KL goes to ~0
    plain_run = _train(tmp_path, "plain", epochs=15, beta=4.0)
    free_run = _train(tmp_path, "free", epochs=15, beta=4.0, free_bits=0.5)
    plain, free = _test_kl_per_dim(plain_run), _test_kl_per_dim(free_run)
    assert int((plain > 0.1).sum()) <= 1
    assert int((free > 0.1).sum()) >= 6
    assert float(free.sum()) > 5 * float(plain.sum()) + 1.0


def test_free_bits_keeps_more_active_units(tmp_path):
    """The same claim in the evaluation issue's terms: active units (Burda et al. 2015)."""
    units = {}
    for name, extra in [("plain", {}), ("free", {"free_bits": 0.5})]:
        run = _train(tmp_path, name, epochs=15, beta=4.0, **extra)
        units[name] = latent_metrics(run.model, run.data().test)["active_units"]
    assert units["plain"] <= 1 and units["free"] >= 6


def test_capacity_drives_the_kl_to_its_target(tmp_path):
    # beta = 20 alone collapses everything; beta * |KL - C| holds the KL near C = 10 nats
    plain = _test_kl_per_dim(_train(tmp_path, "plain20", epochs=15, beta=20.0)).sum()
    run = _train(tmp_path, "cap", epochs=15, beta=20.0, capacity="10:100")
    rows = run.metrics()
    assert [r["capacity"] for r in rows[:3]] == pytest.approx([1.2, 2.4, 3.6])  # 10 * step / 100
    assert rows[-1]["capacity"] == pytest.approx(10.0)
    kl = _test_kl_per_dim(run).sum()  # the best-validation weights, as vaekit.load gives them
    assert float(plain) < 0.5
    assert float(kl) == pytest.approx(10.0, abs=2.0)


def test_validation_loss_is_the_converged_objective(tmp_path):
    """Best-epoch selection must judge the objective training aims at: with a capacity that is
    recon + beta * |KL - C|, not recon + beta * KL (which would crown the first, KL-free epoch)."""
    run = _train(tmp_path, "m", epochs=1)
    model, data = run.model, run.data().val
    plain = evaluate_loss(model, data, Objective.from_config(TrainConfig(beta=3.0)), seed=0)
    assert plain["loss"] == pytest.approx(plain["recon"] + 3.0 * plain["kl"], rel=1e-6)
    cap = evaluate_loss(model, data, Objective.from_config(TrainConfig(beta=3.0, capacity="25:100")), seed=0)
    assert cap["loss"] == pytest.approx(plain["recon"] + 3.0 * abs(plain["kl"] - 25.0), rel=1e-6)
    # free bits over the whole set: each dimension's mean KL counts as at least L
    fb = evaluate_loss(model, data, Objective.from_config(TrainConfig(beta=1.0, free_bits=0.7)), seed=0)
    with torch.no_grad():
        out = model(data.x, generator=torch.Generator().manual_seed(0))
    per_dim = out.kl_per_dim.mean(0).double()
    expected = float(out.recon.double().mean()) + float(per_dim.clamp_min(0.7).sum())
    assert fb["loss"] == pytest.approx(expected, rel=1e-5)
    assert math.isfinite(fb["nelbo"])
