"""Sample quality: the Frechet distance between two sets of examples in a feature classifier's
features (FD; not FID: no Inception weights here), precision and recall in the same features
(vaekit.evaluation.precision_recall), sharpness (vaekit.evaluation.sharpness), and how
recognisable samples are."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..core.model import VAE
from ..core.sampling import decode, reconstruct, sample
from ..data import DataSplits
from ..errors import VaekitError
from . import sharpness
from .common import labels_for
from .precision_recall import K_NEAREST, knn_radii, precision_recall


def gaussian_stats(features: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and covariance (F, F) of features (N, F), in float64."""
    f = np.asarray(features.detach().cpu() if isinstance(features, Tensor) else features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise VaekitError("Gaussian statistics need at least 2 feature vectors (N, F)")
    return f.mean(0), np.cov(f, rowvar=False)


def _psd_sqrt(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Frechet (2-Wasserstein squared) distance between N(mu1, cov1) and N(mu2, cov2):
    |mu1 - mu2|^2 + tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2)).

    tr((cov1 cov2)^(1/2)) is computed as the sum of the square roots of the eigenvalues of the
    symmetric PSD matrix cov1^(1/2) cov2 cov1^(1/2) (same spectrum), which needs no complex
    arithmetic and never returns a negative distance from round-off."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(np.asarray(cov2, np.float64))
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (mu1.size, mu1.size):
        raise VaekitError("the two Gaussians must have means (F,) and covariances (F, F) of the same F")
    s1 = _psd_sqrt(cov1)
    eig = np.linalg.eigvalsh(s1 @ cov2 @ s1)
    tr_sqrt = np.sqrt(np.clip(eig, 0, None)).sum()
    return float(max(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * tr_sqrt, 0.0))


def feature_frechet_distance(classifier, a: Tensor, b: Tensor) -> float:
    """FD (classifier features) between two sets of examples (N, *data_shape)."""
    return frechet_distance(*gaussian_stats(classifier.features(a)), *gaussian_stats(classifier.features(b)))


def generate(model: VAE, n: int, *, seed: int = 0, z: Tensor | None = None, prior=None) -> Tensor:
    """n examples decoded (likelihood means) from z ~ prior (N(0, I) unless a fitted prior from
    vaekit.core.priors is given), or from the given codes z (n, D); a conditional model gets labels
    0, 1, ..., K-1, 0, 1, ... -> (n, *data_shape) on the CPU."""
    k = model.config.num_classes
    y = None if k == 0 else torch.arange(n) % k
    if z is None:
        return sample(model, n, seed=seed, y=y, prior=prior)
    return torch.cat(
        [decode(model, zz, None if y is None else y[i : i + 1024]) for i, zz in zip(range(0, n, 1024), z.split(1024))]
    )


def class_confidence(classifier, x: Tensor) -> dict[str, float]:
    """How recognisable generated examples are to the classifier: mean top-class probability,
    and the entropy of the predicted-class histogram relative to log K (1: every class equally)."""
    p = classifier.probabilities(x)  # (N, K)
    counts = torch.bincount(p.argmax(1), minlength=p.shape[1]).double()
    freq = counts / counts.sum()
    ent = -(freq[freq > 0] * freq[freq > 0].log()).sum()
    return {"confidence": float(p.max(1).values.mean()), "class_coverage": float(ent / math.log(p.shape[1]))}


def sample_metrics(
    model,
    data: DataSplits,
    classifier,
    *,
    split: str = "test",
    n: int | None = None,
    seed: int = 0,
    prior=None,
    k: int | None = K_NEAREST,
) -> dict[str, Any]:
    """Samples from the prior against the split's examples (n of each): FD (classifier features),
    precision and recall (k-nearest-neighbour manifolds in the same features; k=None skips them)
    and, for images, the sharpness ratio; with the same measures for two references: the model's
    reconstructions of those examples, and training examples (the floor that a perfect generator
    would reach, up to sampling noise). prior: what samples are drawn from (None: N(0, I)); with
    a fitted prior (vaekit.core.priors) the FD of N(0, I) samples is reported too, as
    fd_samples_standard."""
    ref = data.split(split)
    n = min(n or len(ref), len(ref))
    if n < 2:
        raise VaekitError("sample quality needs at least 2 examples in the split")
    ref_x = ref.x[:n]
    ref_f = classifier.features(ref_x)
    ref_stats = gaussian_stats(ref_f)
    fd = lambda f: frechet_distance(*gaussian_stats(f), *ref_stats)  # noqa: E731
    samples = generate(model, n, seed=seed, prior=prior)
    kind = "standard" if prior is None else prior.kind
    recon = torch.cat(
        [reconstruct(model, x, labels_for(model, y)) for x, y in ref.subset(torch.arange(n)).batches(512)]
    )
    train_x = data.train.x[torch.randperm(len(data.train), generator=torch.Generator().manual_seed(seed))[:n]]
    sets = {"samples": samples, "reconstructions": recon, "train_reference": train_x}
    feats = {name: classifier.features(x) for name, x in sets.items()}
    res: dict[str, Any] = {"n": n, "prior": kind, **{f"fd_{name}": fd(f) for name, f in feats.items()}}
    if kind != "standard":
        res["fd_samples_standard"] = fd(classifier.features(generate(model, n, seed=seed)))
    if k is not None and n > k:
        res["k"] = k
        radii = knn_radii(ref_f, k)
        for name in ("samples", "train_reference"):
            for what, value in precision_recall(ref_f, feats[name], k=k, real_radii=radii).items():
                res[f"{what}_{name}"] = value
    if sharpness.is_measurable(list(ref_x.shape[1:])):
        for name in ("samples", "reconstructions", "train_reference"):
            res[f"sharpness_{name}"] = sharpness.sharpness_ratio(sets[name], ref_x)
    return {
        **res,
        **{f"samples_{key}": v for key, v in class_confidence(classifier, samples).items()},
        "classifier_test_accuracy": classifier.meta.get("test_accuracy"),
        "classifier": classifier.describe(),
    }
