"""Input corruptions for denoising training: the model sees corrupt(x) and must reconstruct x.

Specs: gaussian:SIGMA (additive N(0, SIGMA^2), clipped to [0, 1] for images),
saltpepper:P (each value set to 0 or 1 with probability P), mask:P (each value zeroed
with probability P), uniform:P (each value replaced by a uniform draw from [0, 1] with
probability P: the mutation Ren et al. 2019 train their background model on)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import VaekitError

KINDS = ("gaussian", "saltpepper", "mask", "uniform")


@dataclass(frozen=True)
class Corruption:
    kind: str
    level: float
    clip: tuple[float, float] | None = (0.0, 1.0)

    @classmethod
    def parse(cls, spec: str, *, clip: tuple[float, float] | None = (0.0, 1.0)) -> "Corruption":
        kind, _, level = spec.partition(":")
        if kind not in KINDS:
            raise VaekitError(f"unknown corruption {kind!r} in {spec!r}; use gaussian:SIGMA, saltpepper:P, mask:P or uniform:P")
        try:
            value = float(level)
        except ValueError:
            raise VaekitError(f"{spec!r}: the level after ':' must be a number") from None
        if value < 0 or (kind != "gaussian" and value > 1):
            raise VaekitError(f"{spec!r}: the level must be >= 0 (and <= 1 for a probability)")
        return cls(kind, value, clip)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.kind == "gaussian":
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            y = x + self.level * noise
            return y.clamp(*self.clip) if self.clip else y
        u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if self.kind == "mask":
            return torch.where(u < self.level, torch.zeros_like(x), x)
        lo, hi = self.clip or (0.0, 1.0)
        if self.kind == "uniform":
            fresh = lo + (hi - lo) * torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            return torch.where(u < self.level, fresh, x)
        salt = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) < 0.5
        return torch.where(u < self.level, torch.where(salt, torch.full_like(x, hi), torch.full_like(x, lo)), x)

    def __str__(self) -> str:
        return f"{self.kind}:{self.level:g}"
