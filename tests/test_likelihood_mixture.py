"""The discretized logistic mixture: its masses, log-probabilities, mean and samples against a
brute-force mixture of scipy's logistic CDFs in float64; K=1 is the discretized logistic; a tiny
digits run trains, reports bits/dim and compresses losslessly."""

import math

import numpy as np
import pytest
import torch
from helpers import run_cli
from scipy import special, stats

import vaekit
from vaekit.core.likelihoods import (
    LIKELIHOODS,
    LOG_SCALE_MAX,
    LOG_SCALE_MIN,
    DiscretizedLogistic,
    DiscretizedLogisticMixture,
)
from vaekit.workflows import compress as codec
from vaekit.workflows.evaluate import evaluate_run

GRID = torch.arange(256) / 255.0
NAME = "discretized-logistic-mixture"


def random_params(n, k, seed, dtype=torch.float64):
    """(n, k) logits, locations and log-scales over the whole clamped range, locations well
    outside [0, 1] included; the first rows are extremes (tiny and huge scales, far locations)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g, dtype=dtype) * 3
    loc = torch.rand(n, k, generator=g, dtype=dtype) * 2.0 - 0.5
    log_scale = torch.rand(n, k, generator=g, dtype=dtype) * (LOG_SCALE_MAX - LOG_SCALE_MIN) + LOG_SCALE_MIN
    loc[:4], log_scale[:4] = torch.tensor([-3.0, 0.0, 1.0, 4.0], dtype=dtype)[:, None], LOG_SCALE_MIN
    loc[4:6], log_scale[4:6] = 0.5, LOG_SCALE_MAX
    logits[6] = torch.linspace(-40, 40, k, dtype=dtype)  # one weight ~1, the others ~e^-80
    return logits, loc, log_scale


def reference_masses(logits, loc, log_scale):
    """(n, 256) masses, independently: per component the differences of scipy's logistic CDF at
    the bins' edges, the first and last bins taking the tails, mixed with softmax weights."""
    L, S = loc.double().numpy()[..., None], np.exp(log_scale.double().numpy())[..., None]  # (n, k, 1)
    edges = stats.logistic.cdf((np.arange(1, 256) - 0.5) / 255, L, S)  # (n, k, 255)
    ones = np.ones((*edges.shape[:2], 1))
    comp = np.diff(np.concatenate([0 * ones, edges, ones], -1), axis=-1)  # (n, k, 256)
    w = special.softmax(logits.double().numpy(), axis=-1)[..., None]  # (n, k, 1)
    return (w * comp).sum(1)


def test_masses_sum_to_one_and_are_the_brute_force_mixture():
    logits, loc, log_scale = random_params(300, 5, seed=0)
    masses = DiscretizedLogisticMixture(logits, loc, log_scale).bin_masses()
    assert masses.shape == (300, 256) and (masses >= 0).all()
    np.testing.assert_allclose(masses.sum(1).numpy(), 1.0, atol=1e-12)
    np.testing.assert_allclose(masses.numpy(), reference_masses(logits, loc, log_scale), atol=1e-12)
    # float32 too, and through log_prob (another formula) over every bin
    d32 = DiscretizedLogisticMixture(logits[:, None].float(), loc[:, None].float(), log_scale[:, None].float())
    lp = d32.log_prob(GRID.expand(300, 256))  # (300, 256)
    assert torch.isfinite(lp).all()
    np.testing.assert_allclose(lp.double().exp().sum(1).numpy(), 1.0, atol=1e-5)


def test_log_prob_matches_the_brute_force_reference():
    n = 3000
    logits, loc, log_scale = random_params(n, 4, seed=1, dtype=torch.float32)
    k = torch.randint(0, 256, (n,), generator=torch.Generator().manual_seed(2))
    k[100:300], k[300:500] = 0, 255  # the end bins, which take the tails
    lp = DiscretizedLogisticMixture(logits, loc, log_scale).log_prob(k / 255.0)  # (n,)
    assert lp.shape == (n,) and (lp <= 1e-6).all()
    with np.errstate(divide="ignore"):
        ref = np.log(reference_masses(logits, loc, log_scale)[np.arange(n), k.numpy()])
    ok = ref > -20  # where the float64 sum of CDF differences is itself accurate
    assert ok.sum() > 1500
    np.testing.assert_allclose(lp.double().numpy()[ok], ref[ok], atol=2e-3, rtol=1e-4)
    # far in the tails log_prob stays finite (log-space per component, logsumexp over them)
    assert torch.isfinite(lp).all() and lp.min() < -50


def test_one_component_is_the_discretized_logistic():
    logits, loc, log_scale = random_params(500, 1, seed=3, dtype=torch.float32)
    mix, single = DiscretizedLogisticMixture(logits, loc, log_scale), DiscretizedLogistic(loc[:, 0], log_scale[:, 0])
    x = torch.randint(0, 256, (500,), generator=torch.Generator().manual_seed(4)) / 255.0
    assert torch.equal(mix.log_prob(x), single.log_prob(x))
    assert torch.equal(mix.mean, single.mean)
    assert torch.equal(mix.bin_masses(), single.bin_masses())
    # the likelihoods too: logit, location and log-scale vs location and log-scale
    params = torch.randn(2, 3, 1, 4, 4) * 2
    x = torch.randint(0, 256, (2, 1, 4, 4)) / 255.0
    one = LIKELIHOODS[NAME]([1, 4, 4], mixtures=1)
    assert torch.equal(
        one(params).log_prob(x), LIKELIHOODS["discretized-logistic"]([1, 4, 4])(params[:, 1:]).log_prob(x)
    )


def test_mean_is_the_mean_of_the_brute_force_masses():
    logits, loc, log_scale = random_params(400, 6, seed=5)
    expected = reference_masses(logits, loc, log_scale) @ (np.arange(256) / 255)
    assert np.abs(DiscretizedLogisticMixture(logits, loc, log_scale).mean.numpy() - expected).max() < 1e-6
    d32 = DiscretizedLogisticMixture(logits.float(), loc.float(), log_scale.float())
    assert np.abs(d32.mean.double().numpy() - expected).max() < 2e-5


def test_samples_follow_the_masses_and_the_global_generator():
    """Three separated modes of weights 0.5, 0.3, 0.2: the frequencies per bin, and per mode
    (which checks the component choice), against the masses."""
    n = 40000
    logits = torch.tensor([0.5, 0.3, 0.2]).log().expand(n, 3)
    loc = torch.tensor([0.2, 0.6, 0.9]).expand(n, 3)
    log_scale = torch.full((n, 3), math.log(0.015))
    d = DiscretizedLogisticMixture(logits, loc, log_scale)
    torch.manual_seed(0)
    x = d.sample()
    assert x.shape == (n,) and torch.allclose(x * 255, (x * 255).round(), atol=1e-4)  # on the 8-bit grid
    k = (x * 255).round().long()
    freq = torch.bincount(k, minlength=256).double() / n
    p = torch.from_numpy(reference_masses(logits[:1].double(), loc[:1].double(), log_scale[:1].double())[0])
    assert (freq - p).abs().max() < 0.006
    modes = [(k < 102).double().mean(), ((k >= 102) & (k < 191)).double().mean(), (k >= 191).double().mean()]
    assert torch.allclose(torch.stack(modes), torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64), atol=0.01)
    torch.manual_seed(0)
    assert torch.equal(d.sample(), x)
    assert d.sample((2, 5)).shape == (2, 5, n)


def test_gradients_are_finite_at_extreme_parameters():
    params = torch.tensor([[-60.0, 60.0, 0.0], [5.0, -5.0, 0.5], [-30.0, 30.0, 0.0]])  # logits | locations
    logits, loc = params[:, :2].clone().requires_grad_(), params[:, 2:].expand(3, 2).clone()
    loc[0] = torch.tensor([5.0, -5.0])
    loc.requires_grad_()
    log_scale = torch.tensor([[LOG_SCALE_MIN, LOG_SCALE_MIN], [LOG_SCALE_MAX, LOG_SCALE_MIN], [-1.0, LOG_SCALE_MIN]])
    log_scale.requires_grad_()
    x = torch.tensor([0.0, 1.0, 0.5])
    lp = DiscretizedLogisticMixture(logits, loc, log_scale).log_prob(x)
    assert torch.isfinite(lp).all()
    grads = torch.autograd.grad(lp.sum(), [logits, loc, log_scale])
    assert all(torch.isfinite(g).all() for g in grads)
    # and through the likelihood, whose clamp keeps huge decoder outputs tame
    raw = (torch.randn(2, 9, 1, 3, 3) * 1e4).requires_grad_()
    lp = LIKELIHOODS[NAME]([1, 3, 3], mixtures=3)(raw).log_prob(torch.rand(2, 1, 3, 3).mul(255).round() / 255)
    assert torch.isfinite(lp).all() and torch.isfinite(torch.autograd.grad(lp.sum(), raw)[0]).all()


def test_the_likelihood_decodes_3k_values_per_value():
    lik = LIKELIHOODS[NAME]([3, 2, 2], mixtures=4)
    assert lik.num_params == 12 and lik.param_shape() == [12, 3, 2, 2] and lik.discrete and lik.support == (0, 1)
    assert LIKELIHOODS[NAME]([3, 2, 2]).num_params == 30  # the default: 10 components
    params = torch.randn(5, 12, 3, 2, 2)
    law = lik(params).base_dist
    # layout (B, 3K, *data_shape): K logits, then K locations, then K log-scales
    assert torch.equal(law.logits[1, 2, 0, 1], params[1, 0:4, 2, 0, 1])
    assert torch.equal(law.components.loc[1, 2, 0, 1], params[1, 4:8, 2, 0, 1])
    assert torch.equal(
        law.components.log_scale[1, 2, 0, 1], params[1, 8:12, 2, 0, 1].clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)
    )
    assert lik.mean(params).shape == (5, 3, 2, 2) and lik(params).log_prob(params[:, 0].sigmoid()).shape == (5,)


def test_mixtures_must_be_1_to_64():
    for bad in (0, 65):
        with pytest.raises(vaekit.VaekitError, match="mixtures"):
            vaekit.ModelConfig(likelihood=NAME, mixtures=bad)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mixture") / "run"
    tiny = dict(epochs=1, latent_dim=4, hidden=[32], arch="mlp", batch_size=64, progress=False, figures=False)
    return vaekit.train("digits", out=folder, likelihood=NAME, mixtures=3, **tiny)


def test_a_digits_run_trains_and_reports_bits_per_dim(run):
    assert run.config.model.mixtures == 3 and run.model.likelihood.num_params == 9
    res = evaluate_run(vaekit.load_run(run.path), iw_samples=3, sample_quality=False)["likelihood"]
    assert res["discrete"] and math.isfinite(res["nll"]) and res["nll"] > 0
    assert res["nll_bits_per_dim"] == pytest.approx(res["nll"] / (64 * math.log(2)))
    assert 0 < res["nll_bits_per_dim"] < 8  # at most a uniform code over 256 levels, after one epoch


def test_compress_and_decompress_round_trip(run, tmp_path, capsys):
    file = tmp_path / "digits.vkc"
    code, out, err = run_cli(["compress", run.path, "--input", "digits:test", "--out", file, "-q"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["decompress", file, "--run", run.path, "--out", tmp_path / "d.npy", "-q"], capsys)
    assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "d.npy"), codec.to_pixels(run.data().test.x)[0])
