"""A learned entropy model for a codec's quantized latents: the factorized prior of Balle, Laparra
and Simoncelli (2017), with the flexible univariate densities of Balle et al. (2018, appendix 6.1).

Each latent dimension d has its own CDF c_d = sigmoid(f_K o ... o f_1), where
f_k(v) = g_k(softplus(H_k) v + b_k) and g_k(v) = v + tanh(a_k) * tanh(v) for k < K: the weights
are positive and each g_k has slope >= 0, so c_d rises from 0 to 1. What the codec sends is the
integer round(y_d), with mass P(k) = c_d(k + 1/2) - c_d(k - 1/2); in training y_d + u with
u ~ U(-1/2, 1/2) stands in for rounding, and its density is that same difference at y_d + u. The
rate is -log2 of it, summed over the dimensions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FILTERS = (3, 3, 3)  # hidden widths of each dimension's little monotone network (Balle et al. 2018)
INIT_SCALE = 10.0  # the initial density is roughly uniform over +-INIT_SCALE
TAIL = 1e-9  # coding ranges cover all but this much mass at each end
BISECTION_STEPS = 60


class FactorizedDensity(nn.Module):
    """p(y) = prod_d p_d(y_d) over latent_dim dimensions, each a learned univariate law."""

    kind = "entropy"  # the name a prior goes by in printed results

    def __init__(self, latent_dim: int, filters: tuple[int, ...] = FILTERS, init_scale: float = INIT_SCALE):
        super().__init__()
        self.latent_dim = latent_dim
        widths = (1, *filters, 1)
        scale = init_scale ** (1 / (len(widths) - 1))
        self.matrices, self.biases, self.factors = nn.ParameterList(), nn.ParameterList(), nn.ParameterList()
        for k in range(len(widths) - 1):
            init = math.log(math.expm1(1 / scale / widths[k + 1]))  # softplus(H) starts at 1 / (scale * width)
            self.matrices.append(nn.Parameter(torch.full((latent_dim, widths[k + 1], widths[k]), init)))
            self.biases.append(nn.Parameter(torch.rand(latent_dim, widths[k + 1], 1) - 0.5))
            if k < len(widths) - 2:
                self.factors.append(nn.Parameter(torch.zeros(latent_dim, widths[k + 1], 1)))

    def logits(self, v: Tensor) -> Tensor:
        """logit(c_d(v_d)) for every dimension: v (..., D) -> (..., D); increasing in v."""
        lead = v.shape[:-1]
        h = v.reshape(-1, self.latent_dim).t()[:, None, :]  # (D, 1, B)
        for k, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            h = torch.matmul(F.softplus(matrix), h) + bias  # (D, width, B)
            if k < len(self.factors):
                h = h + torch.tanh(self.factors[k]) * torch.tanh(h)
        return h[:, 0, :].t().reshape(*lead, self.latent_dim)

    def cdf(self, v: Tensor) -> Tensor:
        return torch.sigmoid(self.logits(v))

    def log_mass(self, y: Tensor) -> Tensor:
        """log (c_d(y_d + 1/2) - c_d(y_d - 1/2)), (..., D): the log mass of round(y) = k at y = k,
        and the log density of y + U(-1/2, 1/2) noise anywhere. Computed in log space from the
        logits (sigmoid(b) - sigmoid(a) = sigmoid(b) sigmoid(-a) (1 - e^(a - b))), so a value deep
        in a tail keeps a finite, accurate log mass and a gradient."""
        lo, hi = self.logits(y - 0.5), self.logits(y + 0.5)
        width = (lo - hi).clamp_max(-1e-7)  # a - b < 0: the CDF rises (flat only where it saturates)
        return -F.softplus(-hi) - F.softplus(lo) + torch.log(-torch.expm1(width))

    def log_prob(self, z: Tensor) -> Tensor:
        """(..., D) -> (...): the log density of a noisy code, summed over dimensions (nats)."""
        return self.log_mass(z).sum(-1)

    @torch.no_grad()
    def quantile(self, p: float | Tensor) -> Tensor:
        """v with c_d(v) = p for every dimension, by bisection: -> (D,) (or (..., D) for p (..., D))."""
        p = torch.as_tensor(p, dtype=self.matrices[0].dtype, device=self.matrices[0].device)
        target = torch.logit(p).expand(torch.broadcast_shapes(p.shape, (self.latent_dim,)))
        lo, hi = torch.full_like(target, -1.0), torch.full_like(target, 1.0)
        while bool((self.logits(lo) > target).any()) or bool((self.logits(hi) < target).any()):
            lo, hi = lo * 2, hi * 2  # widen until the root is bracketed
            if float(hi.max()) > 1e9:
                break
        for _ in range(BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            below = self.logits(mid) < target
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        return 0.5 * (lo + hi)

    def integer_range(self, tail: float = TAIL) -> tuple[Tensor, Tensor]:
        """The integers [lo_d, hi_d] a coder needs per dimension: outside them lies at most `tail`
        of the mass at each end. -> (lo, hi), (D,) int64 each."""
        lo = torch.floor(self.quantile(tail) + 0.5).long()
        hi = torch.ceil(self.quantile(1 - tail) - 0.5).long()
        return lo, torch.maximum(hi, lo + 1)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """(n, D) draws from the continuous laws (inverse CDF); temperature scales the spread
        around each dimension's median."""
        dev = generator.device if generator is not None else device
        u = torch.rand(n, self.latent_dim, generator=generator, device=dev).clamp(1e-6, 1 - 1e-6)
        z = self.quantile(u.to(self.matrices[0].device, self.matrices[0].dtype))
        median = self.quantile(0.5)
        return (median + temperature * (z - median)).to(device=device, dtype=dtype)
