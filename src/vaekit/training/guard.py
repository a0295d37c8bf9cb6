"""The non-finite guard: no step whose loss or gradient is not finite is ever applied, and a run
that keeps producing them stops with a clear message.

Per step: bad = the loss or the gradient norm is not finite, or the norm exceeds `skip_norm`
(--skip-norm: VDVAE skips such updates in deep hierarchies, where a rare gradient of a huge norm
would otherwise undo much of the training). The fused optimizer reads
`found_inf` (= bad) and leaves weights and moments untouched when it is set. Each step's flag
and (loss, recon, KL) sums go into preallocated buffers (a handful of device ops, no host sync);
every `sync_every` steps the host reads the new flags back, counts the skipped steps and stops
the run once `max_bad` steps in a row were bad. The count of bad steps in a row carries over
from one epoch to the next, so small data (a few steps per epoch) is guarded too."""

from __future__ import annotations

import torch

from ..errors import TrainingDiverged
from . import distributed


class Guard:
    def __init__(self, device: torch.device, ctx: distributed.Context, *, max_bad: int, skip_norm: float | None = None):
        self.ctx, self.device, self.max_bad = ctx, device, max_bad
        self.skip_norm = float("inf") if skip_norm is None else skip_norm
        self.found_inf = torch.zeros((), device=device)
        self.run = 0  # bad steps in a row, across epochs
        self.start_epoch(0)

    def start_epoch(self, steps: int) -> None:
        self.flags = torch.zeros(steps, device=self.device)  # 1.0 where the step was skipped
        self.terms = torch.zeros(steps, 3, device=self.device)  # per step: loss * n, recon sum, KL sum
        self.examples: list[int] = []  # per step, this rank's batch size (host-known)
        self.read_upto, self.skipped, self.applied_examples = 0, 0, 0

    def check(self, loss: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
        # loss + norm is finite exactly when both are (short of a 1e38 overflow, also worth skipping)
        bad = torch.isfinite(loss.detach().float() + norm).logical_not_() | (norm > self.skip_norm)
        self.found_inf.copy_(bad)
        # grads are all-reduced, but the loss is each rank's own: every rank must skip together
        distributed.all_reduce_max_(self.found_inf, self.ctx)
        return self.found_inf

    def record(self, i: int, n: int, loss: torch.Tensor, recon: torch.Tensor, kl: torch.Tensor) -> None:
        self.flags[i] = self.found_inf
        self.terms[i] = torch.stack(
            [loss.detach().float() * n, recon.detach().float().sum(), kl.detach().float().sum()]
        )
        self.examples.append(n)

    def read(self, upto: int, *, first_step: int) -> None:
        """Bring the flags of this epoch's steps [read_upto, upto) to the host (the only sync);
        raise TrainingDiverged once max_bad steps in a row were bad. first_step: the run's step
        number of this epoch's step 0, for the message."""
        for j, bad in enumerate(self.flags[self.read_upto : upto].tolist(), start=self.read_upto):
            if bad:
                self.skipped += 1
                self.run += 1
                if self.run >= self.max_bad:
                    raise TrainingDiverged(
                        f"training diverged at step {first_step + j + 1}: {self.run} steps in a row had a non-finite "
                        "loss or gradient (or one above --skip-norm); try a lower --lr, --grad-clip 1.0, a higher "
                        "--skip-norm, or check the data for huge values"
                    )
            else:
                self.run = 0
                self.applied_examples += self.examples[j]
        self.read_upto = upto

    @property
    def applied(self) -> int:
        return self.read_upto - self.skipped

    def sums(self, upto: int) -> list[float]:
        """(loss, recon, KL) summed over the applied steps so far (bad steps' NaNs left out)."""
        ok = (self.flags[:upto] == 0).unsqueeze(1)
        return torch.where(ok, self.terms[:upto], 0.0).double().sum(0).tolist()
