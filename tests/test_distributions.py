"""DiagonalGaussian against torch.distributions and Monte Carlo; PointMass for the AE."""

import math

import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

from vaekit.core.distributions import LOGVAR_MAX, LOGVAR_MIN, DiagonalGaussian, PointMass


def _random(b=5, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)


def _torch_normal(q: DiagonalGaussian):
    return Independent(Normal(q.mu, q.std), 1)


def test_kl_to_standard_normal_matches_torch():
    mu, logvar = _random()
    q = DiagonalGaussian(mu, logvar)
    ref = kl_divergence(_torch_normal(q), Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1))
    torch.testing.assert_close(q.kl(), ref)
    assert q.kl_per_dim().shape == (5, 4)
    torch.testing.assert_close(q.kl_per_dim().sum(-1), ref)


def test_kl_between_two_gaussians_matches_torch():
    q = DiagonalGaussian(*_random(seed=1))
    p = DiagonalGaussian(*_random(seed=2))
    torch.testing.assert_close(q.kl(p), kl_divergence(_torch_normal(q), _torch_normal(p)))


def test_kl_closed_form_one_dimension():
    # KL(N(m, s^2) || N(0, 1)) = 0.5 (m^2 + s^2 - 1 - log s^2)
    q = DiagonalGaussian(torch.tensor([[2.0]]), torch.tensor([[math.log(0.25)]]))
    expected = 0.5 * (4.0 + 0.25 - 1.0 - math.log(0.25))
    assert q.kl().item() == pytest.approx(expected, rel=1e-6)


def test_log_prob_and_entropy_match_torch():
    q = DiagonalGaussian(*_random())
    z = torch.randn(5, 4)
    torch.testing.assert_close(q.log_prob(z), _torch_normal(q).log_prob(z))
    torch.testing.assert_close(q.entropy(), _torch_normal(q).entropy())


def test_rsample_has_the_posterior_mean_and_variance():
    mu = torch.tensor([[1.5, -2.0, 0.0]])
    logvar = torch.log(torch.tensor([[0.25, 4.0, 1.0]]))
    q = DiagonalGaussian(mu, logvar)
    z = q.rsample(200_000, generator=torch.Generator().manual_seed(3))  # (n, 1, 3)
    assert z.shape == (200_000, 1, 3)
    torch.testing.assert_close(z.mean(0), mu, atol=0.02, rtol=0)
    torch.testing.assert_close(z.var(0), logvar.exp(), atol=0.03, rtol=0.02)


def test_reparameterization_passes_gradients_to_mu_and_logvar():
    mu = torch.zeros(3, 2, requires_grad=True)
    logvar = torch.zeros(3, 2, requires_grad=True)
    g = torch.Generator().manual_seed(0)
    z = DiagonalGaussian(mu, logvar).rsample(generator=g)
    z.sum().backward()
    # dz/dmu = 1, dz/dlogvar = 0.5 * sigma * eps
    torch.testing.assert_close(mu.grad, torch.ones(3, 2))
    eps = torch.randn(3, 2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(logvar.grad, 0.5 * eps)


def test_extreme_logvar_is_clamped_to_finite_values():
    q = DiagonalGaussian(torch.zeros(1, 2), torch.tensor([[1e4, -1e4]]))
    assert q.logvar.tolist() == [[LOGVAR_MAX, LOGVAR_MIN]]
    assert torch.isfinite(q.var).all() and (q.std > 0).all()
    assert torch.isfinite(q.kl()).all()


def test_point_mass_is_deterministic_with_zero_kl():
    mu = torch.randn(4, 3)
    q = PointMass(mu)
    assert torch.equal(q.rsample(), mu) and torch.equal(q.mode(), mu)
    assert torch.equal(q.kl(), torch.zeros(4))
    with pytest.raises(ValueError):
        q.log_prob(mu)
