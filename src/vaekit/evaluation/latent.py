"""Latent health: unit activity and active units (Burda et al. 2015), KL per dimension, posterior
collapse in words, and how far the aggregate posterior lies from N(0, I). The one home of the
active-unit statistic and its threshold (the explorer's sliders use it too)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..core.model import VAE
from ..core.sampling import encode_dataset
from ..data import Dataset
from ..errors import VaekitError

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. 2015: unit d is active when Cov_x(E_q[z_d]) > 0.01
COLLAPSED_KL = 0.01  # nats: a latent dimension whose mean KL is below this carries no information


def unit_activity(mu: Tensor) -> Tensor:
    """Cov_x(E_q[z_d]): the variance over examples of each posterior mean, mu (N, D) -> (D,)."""
    if mu.shape[0] < 2:
        raise VaekitError("unit activity needs at least 2 examples")
    return mu.double().var(0, correction=1)


def active_units(mu: Tensor, *, threshold: float = ACTIVE_UNIT_THRESHOLD) -> int:
    """How many latent dimensions are active (Burda et al. 2015): Cov_x(E_q[z_d]) > threshold.
    mu (N, D): posterior means of N examples."""
    return int((unit_activity(mu) > threshold).sum())


def collapse_warnings(
    kl_per_dim: Sequence[float] | None,
    activity: Sequence[float],
    *,
    threshold: float = ACTIVE_UNIT_THRESHOLD,
) -> list[str]:
    """Posterior-collapse diagnostics in words; kl_per_dim (D,) mean KL per dimension in nats
    (None for an AE), activity (D,) from unit_activity."""
    d = len(activity)
    inactive = [i for i, a in enumerate(activity) if a <= threshold]
    notes = []
    if kl_per_dim is not None:
        total = float(sum(kl_per_dim))
        if total < COLLAPSED_KL * d:
            notes.append(
                f"posterior collapse: KL(q(z|x) || p(z)) is {total:.3g} nats per example in all, so q(z|x) is "
                "the prior for every x and the decoder ignores z"
            )
        else:
            collapsed = [i for i, v in enumerate(kl_per_dim) if v < COLLAPSED_KL]
            if collapsed:
                notes.append(
                    f"{len(collapsed)} of {d} latent dimensions have collapsed to the prior (mean KL < "
                    f"{COLLAPSED_KL} nats): {_dims(collapsed)}"
                )
    if inactive and not (notes and notes[0].startswith("posterior collapse")):
        notes.append(
            f"{len(inactive)} of {d} latent dimensions are inactive (Cov_x(E_q[z_d]) <= {threshold}): {_dims(inactive)}"
        )
    return notes


def _dims(idx: list[int]) -> str:
    shown = ", ".join(str(i) for i in idx[:12])
    return shown + (f" and {len(idx) - 12} more" if len(idx) > 12 else "")


def prior_mismatch(mu: Tensor, var: Tensor | None = None) -> float:
    """KL(N(m, S) || N(0, I)) in nats, where N(m, S) matches the mean and covariance of the
    aggregate posterior q(z) = mean_x q(z|x): S = Cov(mu) + mean(var). mu, var (N, D); var=None
    for an AE's point codes. How far the codes the decoder was trained on lie from where N(0, I)
    samples fall: near 0 for a well-fitted VAE, large for an AE."""
    mu = mu.double()
    m = mu.mean(0)
    s = torch.cov(mu.T).reshape(mu.shape[1], mu.shape[1])
    if var is not None:
        s = s + torch.diag(var.double().mean(0))
    d = mu.shape[1]
    logdet = torch.linalg.slogdet(s + 1e-12 * torch.eye(d, dtype=s.dtype))[1]
    return float(0.5 * (torch.trace(s) + m @ m - d - logdet))


def latent_metrics(model: VAE, data: Dataset, *, batch_size: int = 1024) -> dict[str, Any]:
    """KL per latent dimension (nats, analytic, mean over data), unit activity, active units,
    posterior-collapse warnings, and how far the aggregate posterior is from N(0, I)."""
    enc = encode_dataset(model, data if model.config.num_classes else Dataset(data.x), batch_size=batch_size)
    mu = enc["mu"]
    activity = unit_activity(mu)
    kl_per_dim = None
    var = None
    if model.stochastic:
        var = enc["logvar"].double().exp()
        kl_per_dim = (0.5 * (mu.double() ** 2 + var - 1.0 - enc["logvar"].double())).mean(0).tolist()
    return {
        "latent_dim": model.latent_dim,
        "active_units": int((activity > ACTIVE_UNIT_THRESHOLD).sum()),
        "active_unit_threshold": ACTIVE_UNIT_THRESHOLD,
        "activity": activity.tolist(),
        "kl_per_dim": kl_per_dim,
        "code_std": mu.double().std(0).tolist(),
        "prior_mismatch": prior_mismatch(mu, var),
        "warnings": collapse_warnings(kl_per_dim, activity.tolist()),
    }
