"""Decoder output -> p(x|z) as a torch Distribution whose log_prob sums over one example.

A likelihood is a small nn.Module (a learned sigma is a parameter). The decoder emits
`num_params` values per data dimension, laid out (B, P, *data_shape); the likelihood
turns them into a distribution with batch shape (B,) and event shape data_shape.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Distribution, Independent, Normal

from .errors import VaekitError

# A learned sigma lives in log space and is clamped so exp() can neither overflow nor
# let the Gaussian collapse onto a training pixel (sigma >= 1e-3).
LOG_SIGMA_MIN, LOG_SIGMA_MAX = math.log(1e-3), math.log(1e3)


class Likelihood(nn.Module):
    name: str = ""
    num_params: int = 1
    # the closed interval x must lie in, or None for the whole real line
    support: tuple[float, float] | None = None

    def __init__(self, data_shape: list[int]):
        super().__init__()
        self.data_shape = list(data_shape)

    def forward(self, params: Tensor) -> Distribution:  # params (B, P, *data_shape)
        raise NotImplementedError

    def mean(self, params: Tensor) -> Tensor:
        """E[x|z], (B, *data_shape): what we show as "the" decoded image."""
        return self(params).mean


class BernoulliLikelihood(Likelihood):
    """Pixels in [0, 1] as Bernoulli probabilities (the classic BCE loss)."""

    name = "bernoulli"
    support = (0.0, 1.0)

    def forward(self, params: Tensor) -> Distribution:
        base = Bernoulli(logits=params[:, 0], validate_args=False)
        return Independent(base, len(self.data_shape), validate_args=False)

    def mean(self, params: Tensor) -> Tensor:
        return torch.sigmoid(params[:, 0])


class GaussianLikelihood(Likelihood):
    """x ~ N(decoder output, sigma^2): sigma fixed, or learned globally or per channel."""

    name = "gaussian"

    def __init__(self, data_shape: list[int], *, sigma: float = 0.1, learn: str = "none"):
        super().__init__(data_shape)
        if learn not in ("none", "global", "channel"):
            raise VaekitError(f"learn_sigma must be none, global or channel, not {learn!r}")
        self.learn = learn
        # (C, 1, ..., 1) broadcasts over one example; channel = first data axis
        shape = [1] * len(data_shape)
        if learn == "channel":
            shape[0] = data_shape[0]
        log_sigma = torch.full(shape, math.log(sigma))
        if learn == "none":
            self.register_buffer("log_sigma", log_sigma)
        else:
            self.log_sigma = nn.Parameter(log_sigma)

    def sigma(self) -> Tensor:
        return self.log_sigma.clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX).exp()

    def forward(self, params: Tensor) -> Distribution:
        loc = params[:, 0]
        base = Normal(loc, self.sigma().expand_as(loc), validate_args=False)
        return Independent(base, len(self.data_shape), validate_args=False)

    def mean(self, params: Tensor) -> Tensor:
        return params[:, 0]


LIKELIHOODS: dict[str, type[Likelihood]] = {
    BernoulliLikelihood.name: BernoulliLikelihood,
    GaussianLikelihood.name: GaussianLikelihood,
}


def build_likelihood(config) -> Likelihood:
    """config: a ModelConfig."""
    if config.likelihood not in LIKELIHOODS:
        raise VaekitError(
            f"unknown likelihood {config.likelihood!r}; choose one of {', '.join(LIKELIHOODS)}"
        )
    kind = LIKELIHOODS[config.likelihood]
    if kind is GaussianLikelihood:
        return kind(config.data_shape, sigma=config.sigma, learn=config.learn_sigma)
    return kind(config.data_shape)
