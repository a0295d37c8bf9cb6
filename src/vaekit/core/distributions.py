"""Posterior distributions q(z|x) over the latent code.

DiagonalGaussian is the VAE posterior; PointMass is the AE's "posterior" (the same
interface, no noise and no KL), so the AE is the VAE's parts without sampling; QuantizedCode is
the codec's (a point sent as integers, with uniform noise standing in for rounding in training).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# exp(logvar) must stay finite in float32 and sigma must not underflow to 0: the same
# bounds as diffusers' DiagonalGaussianDistribution.
LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0
LOG_2PI = math.log(2 * math.pi)


class DiagonalGaussian:
    """N(mu, diag(exp(logvar))) over the last dimension; mu, logvar: (..., D)."""

    stochastic = True

    def __init__(self, mu: Tensor, logvar: Tensor):
        self.mu = mu
        self.logvar = logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)

    @property
    def std(self) -> Tensor:
        return torch.exp(0.5 * self.logvar)

    @property
    def var(self) -> Tensor:
        return torch.exp(self.logvar)

    def rsample(
        self, n: int | None = None, *, generator: torch.Generator | None = None, eps: Tensor | None = None
    ) -> Tensor:
        """Reparameterized sample z = mu + sigma * eps, eps ~ N(0, I): gradients reach mu and logvar.

        n=None gives one sample (..., D); an int gives n samples stacked first (n, ..., D).
        eps: the standard-normal noise itself, when the caller draws it (same shape)."""
        shape = self.mu.shape if n is None else (n, *self.mu.shape)
        if eps is None:
            eps = torch.randn(shape, generator=generator, dtype=self.mu.dtype, device=self.mu.device)
        return self.mu + self.std * eps.to(self.mu.dtype)

    sample = rsample

    def mode(self) -> Tensor:
        return self.mu

    mean = property(mode)

    def log_prob(self, z: Tensor) -> Tensor:
        """log q(z), summed over D: z (..., D) -> (...)."""
        return -0.5 * (LOG_2PI + self.logvar + (z - self.mu) ** 2 / self.var).sum(-1)

    def kl_per_dim(self, other: DiagonalGaussian | None = None) -> Tensor:
        """KL(self || other) per latent dimension, (..., D); other=None means N(0, I)."""
        if other is None:
            return 0.5 * (self.mu**2 + self.var - 1.0 - self.logvar)
        return 0.5 * (other.logvar - self.logvar + (self.var + (self.mu - other.mu) ** 2) / other.var - 1.0)

    def kl(self, other: DiagonalGaussian | None = None) -> Tensor:
        """KL(self || other) summed over D, (...); other=None means N(0, I)."""
        return self.kl_per_dim(other).sum(-1)

    def entropy(self) -> Tensor:
        return 0.5 * (LOG_2PI + 1.0 + self.logvar).sum(-1)

    def __repr__(self) -> str:
        return f"DiagonalGaussian(shape={tuple(self.mu.shape)})"


class PointMass:
    """A deterministic code: every sample is mu and the KL term is zero (the AE baseline)."""

    stochastic = False

    def __init__(self, mu: Tensor):
        self.mu = mu

    def rsample(
        self, n: int | None = None, *, generator: torch.Generator | None = None, eps: Tensor | None = None
    ) -> Tensor:
        return self.mu if n is None else self.mu.expand(n, *self.mu.shape)

    sample = rsample

    def mode(self) -> Tensor:
        return self.mu

    mean = property(mode)

    @property
    def std(self) -> Tensor:
        return torch.zeros_like(self.mu)

    @property
    def logvar(self) -> Tensor:
        return torch.full_like(self.mu, -math.inf)

    def kl_per_dim(self, other=None) -> Tensor:
        return torch.zeros_like(self.mu)

    def kl(self, other=None) -> Tensor:
        return torch.zeros(self.mu.shape[:-1], dtype=self.mu.dtype, device=self.mu.device)

    def log_prob(self, z: Tensor) -> Tensor:
        raise ValueError("a point-mass code (AE) has no density; use a VAE for likelihoods")

    def __repr__(self) -> str:
        return f"PointMass(shape={tuple(self.mu.shape)})"


class QuantizedCode(PointMass):
    """A codec's code (Balle et al. 2017): the encoder's y is sent as round(y). Rounding has no
    gradient, so training uses y + u, u ~ U(-1/2, 1/2) instead: a box posterior of density 1,
    whose -ELBO is the rate -log p(y + u) plus the distortion. The noise is drawn as N(0, 1) like
    every model's (the training loop draws it for the global batch) and mapped to U(-1/2, 1/2)
    by the normal CDF."""

    def rsample(
        self, n: int | None = None, *, generator: torch.Generator | None = None, eps: Tensor | None = None
    ) -> Tensor:
        """y + uniform noise when noise is asked for (eps, or a generator to draw it), else round(y)."""
        if eps is None and generator is None:
            return super().rsample(n).round()
        shape = self.mu.shape if n is None else (n, *self.mu.shape)
        if eps is None:
            eps = torch.randn(shape, generator=generator, dtype=self.mu.dtype, device=self.mu.device)
        return self.mu + (torch.special.ndtr(eps.to(self.mu.dtype)) - 0.5)

    sample = rsample

    def mode(self) -> Tensor:
        return self.mu.round()

    mean = property(mode)

    def __repr__(self) -> str:
        return f"QuantizedCode(shape={tuple(self.mu.shape)})"
