"""Denoising with a trained run: clean images, and measure how much cleaner they get.

A denoising run is trained with `vaekit train --denoise gaussian:0.3` (or saltpepper:P,
mask:P): the model sees corrupt(x) and learns to reconstruct x. Cleaning an image is then
its reconstruction from the posterior mean (no sampling), vaekit.core.sampling.reconstruct.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ..config import Corruption
from ..core.model import VAE
from ..core.sampling import reconstruct
from ..data import corrupt, read_examples
from ..errors import VaekitError
from ..evaluation.reconstruction import psnr, ssim
from ..plots import save_image
from ..runs import Run


def denoise(model: VAE, x: Tensor, *, batch_size: int = 256) -> Tensor:
    """Cleaned x: (N, *shape) -> (N, *shape) on the CPU, images clipped to [0, 1]."""
    if model.config.num_classes:
        raise VaekitError("denoising needs an unconditional model; this one is conditioned on labels")
    if x.shape[0] == 0:
        return x.clone()
    return torch.cat([reconstruct(model, x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)])


def denoise_files(run: Run, source: str, out: str | Path, *, batch_size: int = 256) -> list[Path]:
    """Clean every image of `source` (a folder of images, one image file, or SOURCE:SPLIT) with
    the run's model and write each as a PNG under `out`, keeping a folder's relative paths.
    Returns the paths."""
    model = run.model
    if len(model.data_shape) != 3:
        raise VaekitError("denoise writes images, and this model was trained on feature vectors")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise VaekitError(f"--out {out} is a file; give a folder")
    examples = read_examples(source, data_shape=model.data_shape, like=run.config.data)
    cleaned = denoise(model, examples.x, batch_size=batch_size)
    from_folder = Path(source).is_dir() or Path(source).is_file()
    paths = []
    for i, (name, img) in enumerate(zip(examples.names, cleaned)):
        rel = Path(name).with_suffix(".png") if from_folder else Path(f"{i:05d}.png")
        paths.append(save_image(out / rel, img))
    return paths


def denoising_quality(
    model, clean: Tensor, corruption: str | Corruption, *, seed: int = 0, batch_size: int = 256
) -> dict[str, float]:
    """PSNR (dB) and SSIM of the corrupted inputs and of the model's cleaned outputs against
    the clean images, averaged over examples: how much the model removes. clean (N, C, H, W)."""
    c = Corruption.parse(corruption) if isinstance(corruption, str) else corruption
    noisy = corrupt(clean, c, generator=torch.Generator().manual_seed(seed))
    cleaned = denoise(model, noisy, batch_size=batch_size)
    return {
        "noise": str(c),
        "psnr_noisy": float(psnr(noisy, clean).mean()),
        "psnr_denoised": float(psnr(cleaned, clean).mean()),
        "ssim_noisy": float(ssim(noisy, clean).mean()),
        "ssim_denoised": float(ssim(cleaned, clean).mean()),
        "n": int(clean.shape[0]),
    }
