"""Reconstruction quality per example: MSE, PSNR and SSIM (as scikit-image computes it)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.model import VAE
from ..core.sampling import reconstruct
from ..data import Dataset
from ..errors import VaekitError
from .common import labels_for, mean_of

SSIM_WINDOW = 7  # scikit-image's default window for structural_similarity
SSIM_K1, SSIM_K2 = 0.01, 0.03


def mse(x: Tensor, x_hat: Tensor) -> Tensor:
    """Mean squared error per example, averaged over its dimensions: (N, ...) -> (N,)."""
    return ((x.double() - x_hat.double()) ** 2).flatten(1).mean(1)


def psnr(x: Tensor, x_hat: Tensor, *, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio per example in dB, 10 log10(range^2 / MSE): (N,). A perfect
    reconstruction is capped at 100 dB rather than infinity."""
    return 10.0 * torch.log10(data_range**2 / mse(x, x_hat).clamp_min(data_range**2 * 1e-10))


def ssim(x: Tensor, x_hat: Tensor, *, data_range: float = 1.0, window: int = SSIM_WINDOW) -> Tensor:
    """Structural similarity per image (Wang et al. 2004), as scikit-image computes it by default:
    a window x window uniform filter, sample covariances, K1 = 0.01, K2 = 0.03, averaged over the
    positions where the window fits and over channels. x, x_hat (N, C, H, W) -> (N,)."""
    if x.ndim != 4 or x.shape != x_hat.shape:
        raise VaekitError("SSIM needs two image batches of the same shape (N, C, H, W)")
    if min(x.shape[2:]) < window:
        raise VaekitError(f"SSIM needs images at least {window}x{window} pixels")
    a, b = x.double(), x_hat.double()
    n, c = a.shape[:2]

    def local_mean(t: Tensor) -> Tensor:  # (N, C, H, W) -> (N, C, H - w + 1, W - w + 1)
        return F.avg_pool2d(t.reshape(n * c, 1, *t.shape[2:]), window, stride=1).reshape(
            n, c, *[s - window + 1 for s in t.shape[2:]]
        )

    cov_norm = window**2 / (window**2 - 1)  # sample, not population, covariance
    ua, ub = local_mean(a), local_mean(b)
    va = cov_norm * (local_mean(a * a) - ua * ua)
    vb = cov_norm * (local_mean(b * b) - ub * ub)
    vab = cov_norm * (local_mean(a * b) - ua * ub)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = (2 * ua * ub + c1) * (2 * vab + c2) / ((ua**2 + ub**2 + c1) * (va + vb + c2))
    return s.flatten(1).mean(1)


def reconstruction_metrics(model: VAE, data: Dataset, *, classifier=None, batch_size: int = 512) -> dict[str, Any]:
    """MSE, and for images in [0, 1] PSNR (dB) and SSIM, of the posterior-mean reconstructions;
    with a FeatureClassifier also its accuracy on the originals and on the reconstructions."""
    sums: dict[str, list[Tensor]] = {"mse": [], "psnr": [], "ssim": []}
    correct = {"original": 0, "reconstruction": 0}
    images = len(model.data_shape) == 3
    can_ssim = images and min(model.data_shape[1:]) >= SSIM_WINDOW
    labelled = classifier is not None and data.y is not None
    for x, y in data.batches(batch_size):
        rec = reconstruct(model, x, labels_for(model, y))
        sums["mse"].append(mse(x, rec))
        if images:
            sums["psnr"].append(psnr(x, rec))
        if can_ssim:
            sums["ssim"].append(ssim(x, rec))
        if labelled:
            correct["original"] += int((classifier.predict(x) == y).sum())
            correct["reconstruction"] += int((classifier.predict(rec) == y).sum())
    res: dict[str, Any] = {k: (mean_of(torch.cat(v)) if v else None) for k, v in sums.items()}
    if labelled:
        res["classifier_accuracy_original"] = correct["original"] / len(data)
        res["classifier_accuracy_reconstruction"] = correct["reconstruction"] / len(data)
    return res
