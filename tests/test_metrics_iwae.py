"""The importance-sampled log-likelihood against probabilistic PCA, whose log p(x) is known in
closed form: z ~ N(0, I), x = W z + b + sigma * eps. Built from vaekit parts (VAE, Gaussian
likelihood, standard-normal prior) with linear encoder and decoder modules."""

import math

import pytest
import torch
from torch import nn
from torch.distributions import MultivariateNormal

from vaekit.config import ModelConfig
from vaekit.core.likelihoods import GaussianLikelihood
from vaekit.core.model import VAE
from vaekit.core.priors import StandardNormal
from vaekit.errors import VaekitError
from vaekit.evaluation import likelihood as metrics

DX, DZ, SIGMA = 6, 2, 0.5


class LinearDecoder(nn.Module):
    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = nn.Parameter(w), nn.Parameter(b)

    def forward(self, z, y_onehot=None):  # (B, DZ) -> (B, 1, DX)
        return (z @ self.w.T + self.b)[:, None]


class AffineEncoder(nn.Module):
    """q(z|x) = N(A (x - b) + shift, diag(var)): the exact PPCA posterior's mean map, optionally
    shifted, with a fixed diagonal variance."""

    def __init__(self, a, b, shift, var):
        super().__init__()
        self.a, self.b, self.shift, self.logvar = a, b, shift, var.log()

    def forward(self, x, y_onehot=None):  # (B, DX) -> (B, 2 DZ)
        mu = (x - self.b) @ self.a.T + self.shift
        return torch.cat([mu, self.logvar.expand_as(mu)], 1)


def ppca(w, b, *, shift=0.0, var_scale=1.0, sigma=SIGMA):
    """A VAE whose decoder is PPCA and whose encoder is the exact posterior mean (+ shift) with
    the diagonal of the exact posterior covariance (* var_scale)."""
    dz = w.shape[1]
    m = w.T @ w + sigma**2 * torch.eye(dz)
    a = torch.linalg.solve(m, w.T)  # posterior mean map M^-1 W^T
    var = torch.diagonal(sigma**2 * torch.linalg.inv(m)) * var_scale
    cfg = ModelConfig(arch="mlp", latent_dim=dz, likelihood="gaussian", sigma=sigma, data_shape=[w.shape[0]])
    enc = AffineEncoder(a, b, torch.full((dz,), shift), var)
    return VAE(enc, LinearDecoder(w, b), GaussianLikelihood([w.shape[0]], sigma=sigma), StandardNormal(dz), cfg).eval()


def true_log_px(w, b, x, sigma=SIGMA):
    return MultivariateNormal(b, w @ w.T + sigma**2 * torch.eye(w.shape[0])).log_prob(x)


def analytic_elbo(model, w, b, x, sigma=SIGMA):
    """E_q[log p(x|z)] - KL(q || N(0, I)) in closed form for a linear Gaussian decoder."""
    q = model.encode(x)
    resid = x - q.mu @ w.T - b
    trace = (w**2 @ q.var.T).T.sum(1)  # tr(W diag(v) W^T) per example
    d = w.shape[0]
    exp_log_lik = -0.5 * d * math.log(2 * math.pi * sigma**2) - 0.5 * ((resid**2).sum(1) + trace) / sigma**2
    return exp_log_lik - q.kl()


@pytest.fixture
def problem():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(DX, DZ, generator=g)
    b = torch.randn(DX, generator=g) * 0.5
    x = torch.randn(3000, DZ, generator=g) @ w.T + b + SIGMA * torch.randn(3000, DX, generator=g)
    return w, b, x


def test_iwae_converges_to_the_true_log_likelihood(problem):
    w, b, x = problem
    model = ppca(w, b, shift=0.4, var_scale=2.0)  # a deliberately poor posterior
    x = x[:200]
    truth = true_log_px(w, b, x).double()
    gen = torch.Generator().manual_seed(0)
    gaps = {k: (truth - metrics.iwae_log_likelihood(model, x, k=k, generator=gen)).mean().item() for k in (1, 20000)}
    assert gaps[1] > 0.2  # the ELBO is far from log p(x) with this encoder ...
    assert abs(gaps[20000]) < 0.01  # ... and the IWAE estimate is close to it (noise either side)


def test_exact_posterior_makes_every_weight_equal_to_p_x(problem):
    # with orthogonal columns the exact posterior is diagonal, so w_i = p(x) for every sample and
    # the estimator is exact at any k, even where every p(x|z) underflows in float32
    w = torch.linalg.qr(problem[0])[0] * torch.tensor([3.0, 1.5])
    b = problem[1]
    sigma = 1e-3
    x = torch.randn(50, DX, generator=torch.Generator().manual_seed(2)) * 3  # far off the subspace
    model = ppca(w, b, sigma=sigma)
    est = metrics.iwae_log_likelihood(model, x, k=64, chunk=5)
    truth = true_log_px(w.double(), b.double(), x.double(), sigma=sigma)
    assert truth.max() < -1e5  # exp() of these is 0 in any float
    assert torch.allclose(est, truth, rtol=1e-5)


def test_bounds_are_ordered_elbo_iwae_k_iwae_2k(problem):
    w, b, x = problem
    model = ppca(w, b, shift=0.4, var_scale=2.0)
    gen = torch.Generator().manual_seed(0)
    elbo = analytic_elbo(model, w, b, x).double()
    # IWAE_1 is an unbiased estimate of the ELBO
    iwae1 = metrics.iwae_log_likelihood(model, x, k=1, generator=gen)
    assert abs((iwae1 - elbo).mean()) < 3 * (iwae1 - elbo).std() / math.sqrt(len(x))
    previous = elbo
    for k in (2, 4, 8, 16, 32):
        est = metrics.iwae_log_likelihood(model, x, k=k, generator=gen)
        diff = est - previous
        assert diff.mean() > 3 * diff.std() / math.sqrt(len(x)), k  # significantly higher, not noise
        previous = est
    assert previous.mean() < true_log_px(w, b, x).mean()


def test_chunking_does_not_change_the_estimate(problem):
    # the random stream is consumed differently per chunk size, so compare in distribution
    w, b, x = problem
    model = ppca(w, b, shift=0.4, var_scale=2.0)
    one, many = (
        metrics.iwae_log_likelihood(model, x, k=10, chunk=c, generator=torch.Generator().manual_seed(c))
        for c in (1, 10)
    )
    se = math.sqrt((one.var() + many.var()) / len(x))
    assert abs(one.mean() - many.mean()) < 4 * se


def test_log_weights_shape_and_likelihood_metrics(problem):
    w, b, x = problem
    model = ppca(w, b, shift=0.4, var_scale=2.0)
    assert metrics.iwae_log_weights(model, x[:5], k=9, chunk=4).shape == (9, 5)
    from vaekit.data import Dataset

    res = metrics.likelihood_metrics(model, Dataset(x[:300]), iw_samples=100)
    assert list(res["nll_by_k"]) == ["1", "10", "100"]
    by_k = list(res["nll_by_k"].values())
    assert by_k[0] > by_k[1] > by_k[2]  # nested prefixes: weakly decreasing in k
    assert res["nll"] <= res["nelbo"] and not res["discrete"] and "nll_bits_per_dim" not in res
    assert res["nll"] == pytest.approx(-true_log_px(w, b, x[:300]).mean().item(), abs=0.05)


def test_an_autoencoder_has_no_likelihood():
    cfg = ModelConfig(kind="ae", arch="mlp", latent_dim=2, hidden=[8], data_shape=[4])
    ae = VAE.from_config(cfg)
    with pytest.raises(VaekitError, match="autoencoder"):
        metrics.iwae_log_likelihood(ae, torch.rand(3, 4), k=5)
    with pytest.raises(VaekitError, match="at least 1"):
        metrics.iwae_log_likelihood(
            VAE.from_config(ModelConfig(arch="mlp", latent_dim=2, hidden=[8], data_shape=[4])), torch.rand(3, 4), k=0
        )
