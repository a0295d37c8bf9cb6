"""The tabular likelihood against torch.distributions: per-column log-probabilities, masking of
missing cells, means, draws (Monte Carlo), and the decoder's parameter layout."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Categorical, Normal

from vaekit.config import ModelConfig
from vaekit.core.likelihoods import TabularLikelihood
from vaekit.core.model import VAE
from vaekit.core.tabular import TableLayout
from vaekit.errors import VaekitError

HEADS = ["gaussian", "categorical:3", "bernoulli", "gaussian", "categorical:2"]
# encoded row: g0 [0,1] | c1 [2,3,4 | 5] | b2 [6 | 7] | g3 [8 | 9] | c4 [10,11 | 12]  -> 13 values
# parameters:  g0 0 | c1 1,2,3 | b2 4 | g3 5 | c4 6,7                                 -> 8


def _rows(b: int, gen: torch.Generator) -> torch.Tensor:
    x = torch.zeros(b, 13)
    x[:, 0], x[:, 8] = torch.randn(b, generator=gen), torch.randn(b, generator=gen)
    c1 = torch.randint(0, 3, (b,), generator=gen)
    c4 = torch.randint(0, 2, (b,), generator=gen)
    x[torch.arange(b), 2 + c1] = 1.0
    x[torch.arange(b), 10 + c4] = 1.0
    x[:, 6] = torch.randint(0, 2, (b,), generator=gen).float()
    x[:, [1, 5, 7, 9, 12]] = 1.0
    return x


def test_layout_places_values_flags_and_parameters():
    layout = TableLayout.parse(HEADS)
    assert layout.data_dim == 13 and layout.num_params == 8
    assert [(h.start, h.flag, h.param) for h in layout.heads] == [
        (0, 1, 0),
        (2, 5, 1),
        (6, 7, 4),
        (8, 9, 5),
        (10, 12, 6),
    ]
    with pytest.raises(VaekitError, match="categorical:K"):
        TableLayout.parse(["categorical:1"])


def test_log_prob_is_the_sum_of_torch_distributions_over_observed_cells():
    gen = torch.Generator().manual_seed(0)
    lik = TabularLikelihood([13], HEADS)
    with torch.no_grad():
        lik.log_sigma.copy_(torch.tensor([math.log(0.3), math.log(2.0)]))
    x = _rows(6, gen)
    params = torch.randn(6, 8, generator=gen)
    per_col = lik(params).column_log_prob(x)
    expected = torch.stack(
        [
            Normal(params[:, 0], 0.3).log_prob(x[:, 0]),
            Categorical(logits=params[:, 1:4]).log_prob(x[:, 2:5].argmax(1)),
            Bernoulli(logits=params[:, 4]).log_prob(x[:, 6]),
            Normal(params[:, 5], 2.0).log_prob(x[:, 8]),
            Categorical(logits=params[:, 6:8]).log_prob(x[:, 10:12].argmax(1)),
        ],
        dim=1,
    )
    assert torch.allclose(per_col, expected, atol=1e-5)
    assert torch.allclose(lik(params).log_prob(x), expected.sum(1), atol=1e-5)
    # a missing cell (flag 0) adds nothing, whatever its values hold
    x[0, 1], x[0, 0] = 0.0, 1e6
    x[1, 5], x[1, 2:5] = 0.0, 0.0
    got = lik(params).column_log_prob(x)
    assert got[0, 0] == 0 and got[1, 1] == 0 and torch.allclose(got[2:], expected[2:], atol=1e-5)


def test_mean_and_value_mask():
    gen = torch.Generator().manual_seed(1)
    lik = TabularLikelihood([13], HEADS)
    params = torch.randn(4, 8, generator=gen)
    m = lik(params).mean
    assert torch.allclose(m[:, 0], params[:, 0]) and torch.allclose(m[:, 8], params[:, 5])
    assert torch.allclose(m[:, 2:5], torch.softmax(params[:, 1:4], 1))
    assert torch.allclose(m[:, 6], torch.sigmoid(params[:, 4]))
    assert torch.all(m[:, [1, 5, 7, 9, 12]] == 1)
    x = _rows(4, gen)
    x[0, 5] = 0.0  # the categorical of row 0 is missing
    mask = lik.value_mask(x)
    assert mask[0, 2:6].sum() == 0 and mask[1, 2:5].sum() == 3 and mask[:, [1, 7, 9, 12]].sum() == 0


def test_draws_follow_the_heads_monte_carlo():
    lik = TabularLikelihood([13], HEADS)
    params = torch.tensor([[1.5, 0.0, 1.0, -1.0, 0.5, -2.0, 0.3, -0.3]]).repeat(20000, 1)
    draws = lik(params).sample(generator=torch.Generator().manual_seed(2))
    sigma = lik.sigma().detach()
    assert abs(float(draws[:, 0].mean()) - 1.5) < 0.02 and abs(float(draws[:, 0].std()) - float(sigma[0])) < 0.02
    freq = draws[:, 2:5].mean(0)
    assert torch.allclose(freq, torch.softmax(torch.tensor([0.0, 1.0, -1.0]), 0), atol=0.015)
    assert (
        torch.all(draws[:, 2:5].sum(1) == 1)
        and abs(float(draws[:, 6].mean()) - float(torch.sigmoid(torch.tensor(0.5)))) < 0.015
    )
    assert torch.all(draws[:, [1, 5, 7, 9, 12]] == 1)


def test_a_tabular_model_trains_its_every_parameter():
    cfg = ModelConfig(likelihood="tabular", heads=HEADS, data_shape=[13], hidden=[16], latent_dim=2, arch="mlp")
    model = VAE.from_config(cfg)
    x = _rows(8, torch.Generator().manual_seed(3))
    out = model(x, generator=torch.Generator().manual_seed(0))
    (out.recon + out.kl).mean().backward()
    assert out.recon.shape == (8,) and all(p.grad is not None for p in model.parameters())
    with pytest.raises(VaekitError, match="tabular likelihood"):
        ModelConfig(likelihood="tabular", data_shape=[13])
