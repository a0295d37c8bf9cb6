"""Likelihoods against torch.distributions / closed forms."""

import math

import pytest
import torch
import torch.nn.functional as F

from vaekit.config import ModelConfig
from vaekit.core.likelihoods import BernoulliLikelihood, GaussianLikelihood, build_likelihood
from vaekit.errors import VaekitError


def test_bernoulli_log_prob_is_negative_bce_summed_per_example():
    logits = torch.randn(3, 1, 1, 4, 4)
    x = torch.rand(3, 1, 4, 4)
    lik = BernoulliLikelihood([1, 4, 4])
    ref = -F.binary_cross_entropy_with_logits(logits[:, 0], x, reduction="none").sum((1, 2, 3))
    torch.testing.assert_close(lik(logits).log_prob(x), ref)
    torch.testing.assert_close(lik.mean(logits), torch.sigmoid(logits[:, 0]))


def test_bernoulli_on_binary_data_sums_to_one_over_outcomes():
    lik = BernoulliLikelihood([2])
    logits = torch.randn(1, 1, 2)
    total = sum(lik(logits).log_prob(torch.tensor([[a, b]], dtype=torch.float)).exp() for a in (0, 1) for b in (0, 1))
    assert total.item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("learn", ["none", "global", "channel"])
def test_gaussian_log_prob_matches_closed_form(learn):
    lik = GaussianLikelihood([3, 2, 2], sigma=0.5, learn=learn)
    loc = torch.randn(2, 1, 3, 2, 2)
    x = torch.randn(2, 3, 2, 2)
    d = 12
    ref = -0.5 * (((x - loc[:, 0]) / 0.5) ** 2).sum((1, 2, 3)) - d * math.log(0.5) - 0.5 * d * math.log(2 * math.pi)
    torch.testing.assert_close(lik(loc).log_prob(x), ref)
    n_params = sum(p.numel() for p in lik.parameters())
    assert n_params == {"none": 0, "global": 1, "channel": 3}[learn]


def test_learned_sigma_receives_gradient_and_stays_finite():
    lik = GaussianLikelihood([1, 2, 2], learn="global")
    with torch.no_grad():
        lik.log_sigma.fill_(-1e6)  # would underflow without the clamp
    lp = lik(torch.zeros(1, 1, 1, 2, 2)).log_prob(torch.zeros(1, 1, 2, 2))
    assert torch.isfinite(lp).all()
    lik2 = GaussianLikelihood([1, 2, 2], learn="channel")
    lik2(torch.zeros(1, 1, 1, 2, 2)).log_prob(torch.ones(1, 1, 2, 2)).sum().backward()
    assert lik2.log_sigma.grad is not None and lik2.log_sigma.grad.abs().sum() > 0


def test_unknown_likelihood_is_a_user_error():
    # configs validate on construction: the option is refused before any likelihood is built
    with pytest.raises(VaekitError, match=r"^unknown --likelihood 'poisson'; choose bernoulli, gaussian"):
        build_likelihood(ModelConfig(likelihood="poisson"))
