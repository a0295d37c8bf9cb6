"""Active units, posterior-collapse warnings and the prior mismatch on constructed cases."""

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from vaekit.config import ModelConfig
from vaekit.core.model import VAE
from vaekit.data import Dataset
from vaekit.evaluation import latent as metrics


def test_active_units_on_a_constructed_case():
    g = torch.Generator().manual_seed(0)
    # dimensions whose posterior means vary across examples with variance 1, 0.5, 0.05, 0.002, 0
    scales = torch.tensor([1.0, 0.5**0.5, 0.05**0.5, 0.002**0.5, 0.0])
    mu = torch.randn(20000, 5, generator=g) * scales + torch.tensor([3.0, -1.0, 0.0, 5.0, 2.0])
    activity = metrics.unit_activity(mu)
    assert torch.allclose(activity, scales.double() ** 2, rtol=0.05, atol=1e-6)
    assert metrics.active_units(mu) == 3  # 1, 0.5 and 0.05 exceed 0.01; 0.002 and 0 do not
    assert metrics.active_units(mu, threshold=0.001) == 4


def test_collapse_warnings():
    everything = metrics.collapse_warnings([0.001, 0.0, 0.002], [0.0, 0.0, 0.0])
    assert len(everything) == 1 and everything[0].startswith("posterior collapse")
    some = metrics.collapse_warnings([3.0, 0.001, 2.0], [1.0, 0.001, 0.5])
    assert any("1 of 3 latent dimensions have collapsed" in w and ": 1" in w for w in some)
    assert any("1 of 3 latent dimensions are inactive" in w for w in some)
    assert metrics.collapse_warnings([3.0, 2.0], [1.0, 0.5]) == []
    assert metrics.collapse_warnings(None, [1.0, 0.0])[0].startswith("1 of 2 latent dimensions are inactive")


def test_prior_mismatch_closed_form():
    g = torch.Generator().manual_seed(0)
    # codes from N(m, diag(s^2)): KL(N(m, S) || N(0, I)) = 0.5 * sum(s^2 + m^2 - 1 - log s^2)
    m, s = torch.tensor([1.0, 0.0, -2.0]), torch.tensor([0.5, 1.0, 3.0])
    mu = torch.randn(200_000, 3, generator=g) * s + m
    expected = 0.5 * float((s**2 + m**2 - 1 - torch.log(s**2)).sum())
    assert metrics.prior_mismatch(mu) == pytest.approx(expected, rel=0.02)
    # a VAE's aggregate posterior adds the mean posterior variance
    var = torch.full_like(mu, 0.75)
    s2 = s**2 + 0.75
    assert metrics.prior_mismatch(mu, var) == pytest.approx(
        0.5 * float((s2 + m**2 - 1 - torch.log(s2)).sum()), rel=0.02
    )


def test_latent_metrics_kl_per_dim_matches_torch_distributions():
    model = VAE.from_config(ModelConfig(arch="mlp", latent_dim=3, hidden=[16], data_shape=[5])).eval()
    x = torch.rand(300, 5)
    res = metrics.latent_metrics(model, Dataset(x))
    q = model.encode(x)
    ref = kl_divergence(Normal(q.mu, q.std), Normal(0.0, 1.0)).mean(0)
    assert torch.allclose(torch.tensor(res["kl_per_dim"], dtype=torch.float64), ref.double(), rtol=1e-4)
    assert res["active_units"] == int((q.mu.var(0) > 0.01).sum())
    assert len(res["activity"]) == 3 and math.isfinite(res["prior_mismatch"])
