"""The codec's learned entropy model (vaekit.core.entropy): a proper CDF per dimension, masses
and densities that integrate to one (scipy quadrature), an inverse CDF and samples that follow
it (Kolmogorov-Smirnov), and a fit by maximum likelihood that reaches a known entropy."""

import math

import numpy as np
import torch
from scipy import integrate, stats

from vaekit.core.entropy import FactorizedDensity


def trained_like(seed: int = 0) -> FactorizedDensity:
    """A density whose parameters are random, not at their initial values."""
    torch.manual_seed(seed)
    d = FactorizedDensity(3).double()
    with torch.no_grad():
        for p in d.parameters():
            p.add_(torch.randn_like(p) * 0.7)
    return d


def test_each_dimension_has_a_monotone_cdf_from_zero_to_one():
    d = trained_like()
    v = torch.linspace(-60, 60, 4001, dtype=torch.float64)[:, None].expand(-1, 3)
    with torch.no_grad():
        c = d.cdf(v)
        far = d.cdf(torch.tensor([[-1e6] * 3, [1e6] * 3], dtype=torch.float64))
    assert (torch.diff(c, dim=0) >= 0).all()
    assert far[0].max() < 1e-12 and far[1].min() > 1 - 1e-12


def test_log_mass_is_the_log_of_the_cdf_difference_and_integrates_to_one():
    d = trained_like(1)
    y = torch.linspace(-8, 8, 161, dtype=torch.float64)[:, None].expand(-1, 3)
    with torch.no_grad():
        naive = torch.log(d.cdf(y + 0.5) - d.cdf(y - 0.5))  # the plain formula, where it is accurate
        ours = d.log_mass(y)
    ok = naive > -25
    assert ok.sum() > 300
    torch.testing.assert_close(ours[ok], naive[ok], atol=1e-9, rtol=1e-9)
    d.requires_grad_(False)
    for dim in range(3):
        density = lambda t, dim=dim: float(d.log_mass(torch.full((1, 3), t, dtype=torch.float64))[0, dim].exp())
        lo, hi = float(d.quantile(1e-12)[dim]) - 1, float(d.quantile(1 - 1e-12)[dim]) + 1
        total, _ = integrate.quad(density, lo, hi, limit=200)
        assert abs(total - 1) < 1e-6  # the noisy code's density: the law convolved with a unit box
        ks = torch.arange(math.floor(lo), math.ceil(hi) + 1, dtype=torch.float64)
        masses = d.log_mass(ks[:, None].expand(-1, 3))[:, dim].exp()
        assert abs(float(masses.sum()) - 1) < 1e-9  # the rounded code's masses


def test_quantiles_invert_the_cdf_and_samples_follow_it():
    d = trained_like(2)
    p = torch.tensor([1e-6, 0.1, 0.5, 0.93], dtype=torch.float64)[:, None]
    with torch.no_grad():
        torch.testing.assert_close(d.cdf(d.quantile(p.expand(-1, 3))), p.expand(-1, 3), atol=1e-9, rtol=0)
    z = d.sample(3000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for dim in range(3):
        cdf = lambda t, dim=dim: (
            d.cdf(torch.as_tensor(t, dtype=torch.float64)[:, None].expand(-1, 3))[:, dim].detach().numpy()
        )
        assert stats.kstest(z[:, dim].numpy(), cdf).pvalue > 0.01
    lo, hi = d.integer_range()
    assert (lo < hi).all() and lo.dtype == torch.int64


def test_fitting_noisy_gaussian_codes_reaches_their_entropy():
    """y ~ N(2, 3^2) plus U(-1/2, 1/2) noise has differential entropy close to that of
    N(2, 3^2 + 1/12); a density fitted by maximum likelihood should come within 0.03 nats."""
    torch.manual_seed(0)
    y = 2 + 3 * torch.randn(4096, 1) + torch.rand(4096, 1) - 0.5
    d = FactorizedDensity(1)
    opt = torch.optim.Adam(d.parameters(), lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        loss = -d.log_prob(y).mean()
        loss.backward()
        opt.step()
    entropy = 0.5 * np.log(2 * np.pi * np.e * (9 + 1 / 12))
    fresh = 2 + 3 * torch.randn(8192, 1) + torch.rand(8192, 1) - 0.5
    with torch.no_grad():
        assert abs(float(-d.log_prob(fresh).mean()) - entropy) < 0.03
