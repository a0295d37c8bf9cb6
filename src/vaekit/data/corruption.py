"""Input corruptions for denoising training and the likelihood-ratio background model: the model
sees corrupt(x) and must reconstruct x. What to do is a config.Corruption (kind, level):

  gaussian:SIGMA   additive N(0, SIGMA^2), clipped to the data's range for images
  saltpepper:P     each value set to the range's low or high end with probability P
  mask:P           each value zeroed with probability P
  uniform:P        each value replaced by a uniform draw from the range with probability P
                   (the mutation Ren et al. 2019 train their background model on)
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..config import Corruption

UNIT_RANGE = (0.0, 1.0)


def corrupt(
    x: Tensor,
    how: Corruption,
    *,
    generator: torch.Generator | None = None,
    clip: tuple[float, float] | None = UNIT_RANGE,
) -> Tensor:
    """x (B, ...) -> a corrupted copy. clip: the data's range (images: [0, 1]); None for
    unbounded vectors, where additive noise is not clipped and the other kinds use [0, 1]."""
    if how.kind == "gaussian":
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        y = x + how.level * noise
        return y.clamp(*clip) if clip else y
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if how.kind == "mask":
        return torch.where(u < how.level, torch.zeros_like(x), x)
    lo, hi = clip or UNIT_RANGE
    if how.kind == "uniform":
        fresh = lo + (hi - lo) * torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return torch.where(u < how.level, fresh, x)
    salt = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) < 0.5
    return torch.where(u < how.level, torch.where(salt, torch.full_like(x, hi), torch.full_like(x, lo)), x)
