"""Precision and recall of a sample distribution (Kynkaanniemi et al. 2019, "Improved precision
and recall metric for assessing generative models"), in a feature classifier's features.

Each set of feature vectors stands for a manifold: the union of balls around its points, each
ball's radius the distance to that point's k-th nearest neighbour in the same set (k = 3 by
default, as the paper recommends). Then

  precision = the fraction of generated points inside the real manifold  (are samples realistic?)
  recall    = the fraction of real points inside the generated manifold  (is the data covered?)

FD folds both failures into one number; these two tell a blurry-but-varied model (low
precision) from a sharp-but-narrow one (low recall). Distances are Euclidean, computed in float64
in row blocks, so 10,000 x 10,000 sets need no more than a block's memory.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import VaekitError

K_NEAREST = 3
BLOCK = 1024  # rows of the distance matrix computed at a time: (BLOCK, N) float64


def _distances(a: Tensor, b: Tensor) -> Tensor:
    """Euclidean distances (A, B) between rows of a (A, F) and b (B, F), float64. Via the
    matrix-product expansion |a|^2 + |b|^2 - 2 a.b (fast), clamped at 0 before the root."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return sq.clamp_min_(0.0).sqrt_()


def knn_radii(features: Tensor, k: int = K_NEAREST) -> Tensor:
    """Distance from each point to its k-th nearest neighbour in the same set, itself excluded:
    features (N, F) -> (N,)."""
    f = _as_features(features)
    if not 1 <= k < len(f):
        raise VaekitError(f"k-nearest-neighbour radii need 1 <= k < the {len(f)} points, not k={k}")
    radii = []
    for i in range(0, len(f), BLOCK):
        d = _distances(f[i : i + BLOCK], f)  # (b, N)
        d[torch.arange(d.shape[0]), torch.arange(i, i + d.shape[0])] = 0.0  # itself: exactly 0, ranked first
        radii.append(d.topk(k + 1, dim=1, largest=False).values[:, k])  # skip the 0 of itself
    return torch.cat(radii)


def coverage(query: Tensor, ref: Tensor, ref_radii: Tensor) -> float:
    """The fraction of query points (Q, F) that lie in the manifold of ref (R, F): within
    ref_radii[j] of some ref point j."""
    q, r = _as_features(query), _as_features(ref)
    radii = ref_radii.double()[None, :]  # (1, R)
    inside = [(_distances(q[i : i + BLOCK], r) <= radii).any(1) for i in range(0, len(q), BLOCK)]
    return float(torch.cat(inside).double().mean())


def precision_recall(
    real: Tensor, fake: Tensor, *, k: int = K_NEAREST, real_radii: Tensor | None = None
) -> dict[str, float]:
    """{"precision", "recall"} of generated features `fake` (M, F) against real features
    `real` (N, F), with k-nearest-neighbour manifolds (Kynkaanniemi et al. 2019). real_radii:
    knn_radii(real, k) when already computed (several generated sets against one real set)."""
    real, fake = _as_features(real), _as_features(fake)
    if real.shape[1] != fake.shape[1]:
        raise VaekitError(f"real and generated features differ in size ({real.shape[1]} vs {fake.shape[1]})")
    return {
        "precision": coverage(fake, real, knn_radii(real, k) if real_radii is None else real_radii),
        "recall": coverage(real, fake, knn_radii(fake, k)),
    }


def _as_features(x: Tensor) -> Tensor:
    f = torch.as_tensor(x).detach().cpu().double()
    if f.ndim != 2 or len(f) < 2:
        raise VaekitError("precision and recall need at least 2 feature vectors (N, F)")
    return f
