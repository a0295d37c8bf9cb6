"""Priors p(z). The KL term of the objective always uses N(0, I); a fitted prior (later)
only changes where generation draws its codes from."""

from __future__ import annotations

import math

import torch
from torch import Tensor


class StandardNormal:
    """p(z) = N(0, I) over latent_dim dimensions."""

    def __init__(self, latent_dim: int):
        self.latent_dim = latent_dim

    def sample(
        self,
        n: int,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """(n, latent_dim); temperature scales the standard deviation."""
        # draw on the generator's own device so a seeded CPU generator works for any model
        at = generator.device if generator is not None else device
        z = torch.randn(n, self.latent_dim, generator=generator, device=at, dtype=dtype)
        return z.to(device) * temperature

    def log_prob(self, z: Tensor) -> Tensor:
        """(..., D) -> (...)"""
        return -0.5 * (z**2 + math.log(2 * math.pi)).sum(-1)
