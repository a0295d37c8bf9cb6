"""What every metric needs of a model: that it has a posterior, and the labels it takes."""

from __future__ import annotations

import math

from torch import Tensor

from ..core.model import VAE
from ..errors import VaekitError


def require_posterior(model: VAE) -> None:
    if not model.stochastic:
        raise VaekitError(
            "this is an autoencoder (a point-mass code has no density), so it has no ELBO or "
            "log-likelihood; train a VAE to get them"
        )


def labels_for(model: VAE, y: Tensor | None) -> Tensor | None:
    """The labels a (conditional) model takes, else None."""
    if model.config.num_classes == 0:
        return None
    if y is None:
        raise VaekitError("this model is conditional: the data must have labels")
    return y


def mean_of(t: Tensor) -> float:
    return float(t.double().mean())


def standard_error(t: Tensor) -> float:
    """Of the mean of t, over its elements (NaN for one element)."""
    return float(t.double().std() / math.sqrt(len(t))) if len(t) > 1 else float("nan")
