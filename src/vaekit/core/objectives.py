"""The objective: a ModelOutput (and the training step) -> a scalar loss.

Units: every per-example term is summed over that example's dimensions (nats per example)
and the batch is averaged.

KL controls (settings of TrainConfig, combinable with beta):
  kl_warmup N     weight rises linearly from 0 to beta over N steps (Bowman et al. 2016)
  kl_cycles M     cyclical annealing: M cycles over the run; in each the weight rises from 0
                  to beta over the first half, then holds (Fu et al. 2019); the cycles span the
                  run's progress (0 -> 1, which the training loop passes in: by its steps, or by
                  the clock when a time budget sets the run's length)
  free_bits L     each latent dimension's batch-mean KL counts as at least L nats
                  (Kingma et al. 2016), so the optimiser gains nothing by collapsing it; in a
                  hierarchical VAE each latent group's (as NVAE and VDVAE do: a group of
                  thousands of numbers would otherwise be held at thousands of nats)
  capacity C:N    loss = recon + beta * |KL - C_t|, C_t rising linearly from 0 to C nats
                  over N steps (Burgess et al. 2018)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..config import Capacity, TrainConfig
from .model import ModelOutput

CYCLE_RAMP = 0.5  # fraction of each cycle spent increasing the weight (Fu et al. use R = 0.5)


def negative_elbo(out: ModelOutput) -> Tensor:
    """-ELBO = recon + KL per example, (B,): an upper bound on -log p(x) for a VAE."""
    return out.recon + out.kl


def free_bits_kl(kl_per_dim: Tensor, free_bits: float, groups: list[int] | None = None) -> Tensor:
    """sum_d max(L, mean_batch KL_d): (B, D) -> scalar (Kingma et al. 2016, eq. 15); with groups
    (numbers per group, summing to D) sum_g max(L, mean_batch KL_g), KL_g summed over the group."""
    kl = kl_per_dim.mean(0)  # (D,)
    if groups is not None:
        kl = torch.stack([part.sum() for part in kl.split(groups)])  # (G,)
    return kl.clamp_min(free_bits).sum()


@dataclass
class Objective:
    """recon + (scheduled) beta * KL, with the KL controls above."""

    beta: float = 1.0
    warmup: int | None = None
    cycles: int | None = None
    free_bits: float | None = None
    capacity: Capacity | None = None

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> Objective:
        return cls(cfg.beta, cfg.kl_warmup, cfg.kl_cycles, cfg.free_bits, cfg.capacity)

    def weight(self, step: int, progress: float = 0.0) -> float:
        """The KL weight at a step (0-based count of optimiser steps taken so far), `progress`
        (0 -> 1) into the run."""
        if self.warmup is not None:
            return self.beta * min(1.0, step / self.warmup)
        if self.cycles is not None:
            tau = (progress * self.cycles) % 1.0  # where in its cycle
            return self.beta * min(1.0, tau / CYCLE_RAMP)
        return self.beta

    def target(self, step: int) -> float | None:
        """The capacity C_t in nats, or None without a capacity schedule."""
        if self.capacity is None:
            return None
        return self.capacity.nats * min(1.0, step / self.capacity.steps)

    def loss(self, out: ModelOutput, step: int, progress: float = 0.0) -> Tensor:
        return self._combine(out.recon, out.kl_per_dim, self.weight(step, progress), self.target(step), out.groups)

    def final_loss(self, recon: Tensor, kl_per_dim: Tensor, groups: list[int] | None = None) -> Tensor:
        """The objective once every schedule has run its course (weight beta, capacity C):
        what validation measures, so the best epoch is judged by what training aims at.
        recon (B,), kl_per_dim (B, D), groups: see free_bits_kl -> scalar."""
        c = None if self.capacity is None else self.capacity.nats
        return self._combine(recon, kl_per_dim, self.beta, c, groups)

    def _combine(
        self, recon: Tensor, kl_per_dim: Tensor, weight: float, c: float | None, groups: list[int] | None = None
    ) -> Tensor:
        kl = free_bits_kl(kl_per_dim, self.free_bits, groups) if self.free_bits else kl_per_dim.sum(-1).mean()
        if c is not None:
            return recon.mean() + weight * (kl - c).abs()
        return recon.mean() + weight * kl
