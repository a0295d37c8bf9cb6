"""KL controls: each schedule follows its formula; free bits and capacity change the loss as claimed."""

import pytest
import torch

from vaekit.config import Capacity, TrainConfig
from vaekit.core.distributions import DiagonalGaussian
from vaekit.core.model import ModelOutput
from vaekit.core.objectives import Objective, free_bits_kl
from vaekit.errors import VaekitError


def _out(kl_per_dim, recon=None):
    b = kl_per_dim.shape[0]
    q = DiagonalGaussian(torch.zeros_like(kl_per_dim), torch.zeros_like(kl_per_dim))
    return ModelOutput(q, q.mu, None, torch.full((b,), 10.0) if recon is None else recon, kl_per_dim)


def test_constant_beta_is_the_beta_vae_loss():
    out = _out(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert Objective(beta=0.5).loss(out, 0).item() == pytest.approx(10 + 0.5 * 5)


def test_warmup_is_linear_then_flat():
    c = Objective(beta=2.0, warmup=100)
    assert [c.weight(s) for s in (0, 25, 50, 100, 1000)] == [0.0, 0.5, 1.0, 2.0, 2.0]


def test_cycles_rise_over_half_of_each_cycle_then_hold():
    c = Objective(beta=1.0, cycles=4)  # over 400 steps: period 100, ramp 50
    weights = [c.weight(s, progress=s / 400) for s in (0, 25, 50, 99, 100, 125, 399)]
    assert weights == pytest.approx([0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0])


def test_free_bits_only_counts_dimensions_above_the_floor():
    kl = torch.tensor([[0.1, 2.0, 0.0], [0.3, 4.0, 0.0]])  # batch means 0.2, 3.0, 0.0
    assert free_bits_kl(kl, 0.5).item() == pytest.approx(0.5 + 3.0 + 0.5)
    # below the floor the KL term has no gradient: nothing pushes those dimensions to collapse
    kl = kl.clone().requires_grad_(True)
    free_bits_kl(kl, 0.5).backward()
    assert kl.grad[:, 0].abs().sum() == 0 and kl.grad[:, 1].abs().sum() > 0


def test_capacity_penalises_distance_from_a_rising_target():
    assert TrainConfig(capacity="25:100").capacity == Capacity.parse("25:100") == Capacity(25.0, 100)
    c = Objective(beta=10.0, capacity=Capacity.parse("25:100"))
    assert c.target(0) == 0 and c.target(50) == 12.5 and c.target(500) == 25
    out = _out(torch.full((2, 1), 12.5))
    assert c.loss(out, 50).item() == pytest.approx(10.0)  # KL exactly on target: recon only
    assert c.loss(out, 100).item() == pytest.approx(10.0 + 10.0 * 12.5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(kl_warmup=10, kl_cycles=2), "choose one"),
        (dict(kl_warmup=0), "at least 1"),
        (dict(free_bits=-1.0), "zero or positive"),
        (dict(capacity="lots"), "NATS:STEPS"),
    ],
)
def test_bad_kl_options(kwargs, message):
    with pytest.raises(VaekitError, match=message):
        Objective.from_config(TrainConfig(**kwargs))
