"""Objectives: pure functions from a ModelOutput (and the training step) to a scalar loss.

Units: every per-example term is summed over that example's dimensions (nats per example)
and the batch is averaged.

KL controls (all settings of TrainConfig, combinable with beta):
  kl_warmup N     weight rises linearly from 0 to beta over N steps (Bowman et al. 2016)
  kl_cycles M     cyclical annealing: M cycles over the run; in each the weight rises from 0
                  to beta over the first half, then holds (Fu et al. 2019); the cycle
                  length follows the run's --epochs, so resuming to a larger total
                  stretches the cycles still to come
  free_bits L     each latent dimension's batch-mean KL counts as at least L nats
                  (Kingma et al. 2016), so the optimiser gains nothing by collapsing it
  capacity C:N    loss = recon + beta * |KL - C_t|, C_t rising linearly from 0 to C nats
                  over N steps (Burgess et al. 2018)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import VaekitError
from .model import ModelOutput

CYCLE_RAMP = 0.5  # fraction of each cycle spent increasing the weight (Fu et al. use R = 0.5)


def negative_elbo(out: ModelOutput) -> Tensor:
    """-ELBO = recon + KL per example, (B,): an upper bound on -log p(x) for a VAE."""
    return out.recon + out.kl


def beta_vae_loss(out: ModelOutput, *, beta: float = 1.0) -> Tensor:
    """recon + beta * KL, averaged over the batch: the tutorial's loss. beta=1 is the ELBO."""
    return (out.recon + beta * out.kl).mean()


def free_bits_kl(kl_per_dim: Tensor, free_bits: float) -> Tensor:
    """sum_d max(L, mean_batch KL_d): (B, D) -> scalar (Kingma et al. 2016, eq. 15)."""
    return kl_per_dim.mean(0).clamp_min(free_bits).sum()


def parse_capacity(spec: str | None) -> tuple[float, int] | None:
    """"25:10000" -> (25.0 nats, 10000 steps)."""
    if spec is None:
        return None
    try:
        c, n = spec.split(":")
        c_max, steps = float(c), int(n)
    except ValueError:
        raise VaekitError(f"--capacity takes NATS:STEPS such as 25:10000, not {spec!r}") from None
    if c_max < 0 or steps < 1:
        raise VaekitError("--capacity needs NATS >= 0 and STEPS >= 1")
    return c_max, steps


@dataclass
class KLControl:
    """The KL term's weight and target at a training step; built from a TrainConfig."""

    beta: float = 1.0
    warmup: int | None = None
    cycles: int | None = None
    free_bits: float | None = None
    capacity: tuple[float, int] | None = None
    total_steps: int = 1

    @classmethod
    def from_config(cls, cfg, total_steps: int) -> "KLControl":
        if cfg.kl_warmup is not None and cfg.kl_cycles is not None:
            raise VaekitError("choose one of --kl-warmup and --kl-cycles")
        if cfg.kl_warmup is not None and cfg.kl_warmup < 1:
            raise VaekitError("--kl-warmup must be at least 1 step")
        if cfg.kl_cycles is not None and cfg.kl_cycles < 1:
            raise VaekitError("--kl-cycles must be at least 1")
        if cfg.free_bits is not None and cfg.free_bits < 0:
            raise VaekitError("--free-bits must be zero or positive")
        return cls(cfg.beta, cfg.kl_warmup, cfg.kl_cycles, cfg.free_bits, parse_capacity(cfg.capacity),
                   max(total_steps, 1))  # fmt: skip

    def weight(self, step: int) -> float:
        """The KL weight at a step (0-based count of optimiser steps taken so far)."""
        if self.warmup is not None:
            return self.beta * min(1.0, step / self.warmup)
        if self.cycles is not None:
            period = self.total_steps / self.cycles
            tau = (step % period) / period
            return self.beta * min(1.0, tau / CYCLE_RAMP)
        return self.beta

    def target(self, step: int) -> float | None:
        """The capacity C_t in nats, or None without a capacity schedule."""
        if self.capacity is None:
            return None
        c_max, steps = self.capacity
        return c_max * min(1.0, step / steps)

    def loss(self, out: ModelOutput, step: int) -> Tensor:
        recon = out.recon.mean()
        kl = free_bits_kl(out.kl_per_dim, self.free_bits) if self.free_bits else out.kl.mean()
        c = self.target(step)
        if c is not None:
            return recon + self.weight(step) * (kl - c).abs()
        return recon + self.weight(step) * kl
