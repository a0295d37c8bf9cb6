"""The discretized likelihoods for 8-bit data: proper probability masses over 256 bins, checked
against scipy's continuous CDFs in float64."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from vaekit.core.likelihoods import (
    LIKELIHOODS,
    DiscretizedGaussian,
    DiscretizedLogistic,
)

LAWS = {DiscretizedLogistic: stats.logistic, DiscretizedGaussian: stats.norm}
GRID = torch.arange(256) / 255.0

# (loc, log_scale): centred, at the edges, far outside [0, 1], tiny and huge scales
PARAMS = [(0.5, -3.0), (0.0, -6.0), (1.0, -1.0), (-0.3, 0.0), (1.4, 2.0), (0.2, -9.0), (0.7, 4.0), (0.37, -5.5)]


@pytest.mark.parametrize("law", LAWS)
def test_masses_sum_to_one_over_the_256_bins(law):
    loc = torch.tensor([p[0] for p in PARAMS])[:, None]
    log_scale = torch.tensor([p[1] for p in PARAMS])[:, None]
    lp = law(loc, log_scale).log_prob(GRID.expand(len(PARAMS), 256))  # (P, 256)
    assert torch.isfinite(lp).all()
    assert torch.allclose(lp.double().exp().sum(1), torch.ones(len(PARAMS), dtype=torch.float64), atol=1e-5)


@pytest.mark.parametrize("law", LAWS)
def test_log_prob_matches_scipy_cdf_differences(law):
    ref_law = LAWS[law]
    g = torch.Generator().manual_seed(0)
    loc = torch.rand(4000, generator=g) * 1.4 - 0.2
    log_scale = torch.rand(4000, generator=g) * 8 - 7
    k = torch.randint(0, 256, (4000,), generator=g)
    k[:200], k[200:400] = 0, 255  # both end bins, which take the tails
    lp = law(loc, log_scale).log_prob(k / 255.0).double().numpy()
    L, S, kk = loc.double().numpy(), log_scale.double().exp().numpy(), k.numpy()
    upper = np.where(kk == 255, 1.0, ref_law.cdf((kk + 0.5) / 255, L, S))
    lower = np.where(kk == 0, 0.0, ref_law.cdf((kk - 0.5) / 255, L, S))
    with np.errstate(divide="ignore"):
        ref = np.log(upper - lower)
    ok = ref > -20  # where the float64 difference of CDFs is itself accurate
    assert ok.sum() > 2000
    np.testing.assert_allclose(lp[ok], ref[ok], atol=2e-3, rtol=1e-4)
    assert np.all(lp <= 1e-6)


@pytest.mark.parametrize("law", LAWS)
def test_bin_masses_are_scipys_cdf_differences_and_sum_to_one(law):
    """The table an entropy coder gets (every bin at once) against scipy, in float64."""
    ref_law = LAWS[law]
    g = torch.Generator().manual_seed(1)
    loc = torch.cat([torch.tensor([p[0] for p in PARAMS]), torch.rand(300, generator=g) * 1.4 - 0.2]).double()
    log_scale = torch.cat([torch.tensor([p[1] for p in PARAMS]), torch.rand(300, generator=g) * 8 - 7]).double()
    masses = law(loc, log_scale).bin_masses().numpy()  # (P, 256)
    assert masses.shape == (len(loc), 256) and (masses >= 0).all()
    np.testing.assert_allclose(masses.sum(1), 1.0, atol=1e-12)
    L, S = loc.numpy()[:, None], log_scale.exp().numpy()[:, None]
    edges = ref_law.cdf((np.arange(1, 256) - 0.5) / 255, L, S)  # (P, 255)
    ref = np.diff(np.concatenate([np.zeros((len(L), 1)), edges, np.ones((len(L), 1))], 1), axis=1)
    np.testing.assert_allclose(masses, ref, atol=1e-12)
    # and the same law as log_prob, which computes each bin by another formula
    lp = law(loc[:, None], log_scale[:, None]).log_prob(GRID.double().expand(len(loc), 256)).exp().numpy()
    np.testing.assert_allclose(masses, lp, atol=1e-9)


@pytest.mark.parametrize("law", LAWS)
def test_mean_is_the_mean_of_the_bin_masses(law):
    g = torch.Generator().manual_seed(0)
    loc = torch.cat([torch.tensor([p[0] for p in PARAMS]), torch.rand(3000, generator=g) * 1.6 - 0.3])
    log_scale = torch.cat([torch.tensor([p[1] for p in PARAMS]), torch.rand(3000, generator=g) * 14 - 9.5])
    d = law(loc.double()[:, None], log_scale.double()[:, None])
    p = d.log_prob(GRID.double().expand(len(loc), 256)).exp()
    expected = (p * GRID.double()).sum(1)
    assert (d.mean.squeeze(1) - expected).abs().max() < 1e-6  # both the closed form and the sharp sum
    d32 = law(loc[:, None], log_scale[:, None])
    assert (d32.mean.squeeze(1).double() - expected).abs().max() < 2e-5


@pytest.mark.parametrize("law", LAWS)
def test_samples_follow_the_bin_masses(law):
    d = law(torch.full((20000,), 0.4), torch.full((20000,), math.log(0.01)))
    x = d.sample()
    assert torch.allclose(x * 255, (x * 255).round(), atol=1e-4)  # on the 8-bit grid
    k = (x * 255).round().long()
    freq = torch.bincount(k, minlength=256).double() / len(k)
    p = law(torch.tensor([0.4]), torch.tensor([math.log(0.01)])).log_prob(GRID[:, None]).exp().squeeze(1).double()
    assert (freq - p).abs().max() < 0.01


@pytest.mark.parametrize("law", LAWS)
def test_gradients_are_finite_at_the_edges_and_extremes(law):
    loc = torch.tensor([0.0, 1.0, 0.5, 5.0, -5.0, 0.5], requires_grad=True)
    log_scale = torch.tensor([-9.0, -9.0, 4.0, -9.0, -9.0, -1.0], requires_grad=True)
    x = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 0.5])
    lp = law(loc, log_scale).log_prob(x)
    assert torch.isfinite(lp).all()
    g_loc, g_scale = torch.autograd.grad(lp.sum(), [loc, log_scale])
    assert torch.isfinite(g_loc).all() and torch.isfinite(g_scale).all()


def test_registered_likelihoods_are_discrete_and_decode_their_params():
    # the mixture: K logits, locations and log-scales per value (K = 10 by default)
    for name, num_params in [
        ("discretized-logistic", 2),
        ("discretized-gaussian", 2),
        ("discretized-logistic-mixture", 30),
    ]:
        lik = LIKELIHOODS[name]([1, 4, 4])
        assert lik.num_params == num_params and lik.discrete and lik.support == (0.0, 1.0)
        params = torch.randn(3, num_params, 1, 4, 4)
        dist = lik(params)
        x = torch.randint(0, 256, (3, 1, 4, 4)) / 255.0
        assert dist.log_prob(x).shape == (3,)
        assert lik.mean(params).shape == (3, 1, 4, 4)


def test_bernoulli_is_discrete_only_on_binary_data():
    bern = LIKELIHOODS["bernoulli"]([4])
    assert bern.is_discrete_on(torch.tensor([[0.0, 1.0, 1.0, 0.0]]))
    assert not bern.is_discrete_on(torch.tensor([[0.0, 0.5, 1.0, 0.0]]))
    assert not LIKELIHOODS["gaussian"]([4]).is_discrete_on(torch.tensor([[0.0, 1.0, 1.0, 0.0]]))
