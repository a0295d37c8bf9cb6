"""Learning-rate schedules and the run's plan: how many epochs it will train.

    auto      (the default) cosine when the run has a time limit, constant otherwise: a run
              bounded by --epochs can then be extended with --resume to exactly the weights of
              one longer run, and a run bounded by the clock still ends its rate with the clock.
    constant  Adam at cfg.lr throughout.
    cosine    lr_t = cfg.lr * (1 + cos(pi * t / T)) / 2 over the run's T planned steps (Loshchilov &
              Hutter 2017): the same start, a gently falling middle, and a last stretch at a
              small step size that settles the weights. Without a time limit T is every step of
              cfg.epochs, so the rate is a pure function of the step count and a resumed run is
              exact; with --epochs raised on resume, T grows and the rest of the curve stretches.
    plateau   halve the rate after every PLATEAU_PATIENCE epochs without a better validation
              loss (ReduceLROnPlateau, as pythae's recipes use it); its state is saved in the
              checkpoint.

A time limit (cfg.time_limit, seconds of the whole fit: training and validation) is a budget.
The run's progress (`progress(step)`, 0 -> 1) is then measured by the clock: the seconds spent
by the end of the last epoch, plus the part of the current epoch done at the mean epoch time so
far (host arithmetic on numbers every rank shares, so all ranks agree), or by the steps of
--epochs, whichever is further. The cosine curve and the cyclical KL schedule (vaekit.core.
objectives) follow that progress, so they end with the budget and move smoothly however the
epoch times wander (a plan re-counted in epochs after every epoch would stretch and shrink the
curve with them). After each epoch the run plans the epochs that still fit; it stops when
another one would not (or at --epochs). Until the first epoch has been timed the clock's part
is unknown and counts as 0: the rate stays at cfg.lr. Where a run stops depends on the
machine's speed (as with any time limit), so such a run is reproducible only up to that point.
"""

from __future__ import annotations

import math
from typing import Any

from ..config import TrainConfig

PLATEAU_PATIENCE = 3  # epochs without a better validation loss before the rate is halved
PLATEAU_FACTOR = 0.5


def resolve(kind: str, time_limit: float | None) -> str:
    """The schedule a run follows: "auto" becomes cosine under a time limit, constant otherwise."""
    if kind == "auto":
        return "cosine" if time_limit is not None else "constant"
    return kind


class LRSchedule:
    """The learning rate of every step and the run's planned last epoch.

    State (saved in the checkpoint's JSON loop state): `last_epoch`, the epoch the run plans to
    end with (cfg's epoch count unless a time limit shortens it; None while open); `scale`, the
    plateau rule's factor. The clock's part of the progress (`done_epochs`, `done_seconds`) is
    renewed by `plan` after every epoch and on resume."""

    def __init__(
        self, kind: str, *, lr: float, steps_per_epoch: int, epochs: int | None, time_limit: float | None = None
    ):
        self.kind, self.lr, self.steps_per_epoch = resolve(kind, time_limit), lr, steps_per_epoch
        self.epochs, self.time_limit = epochs, time_limit
        self.last_epoch: float = math.inf if epochs is None else epochs
        self.scale = 1.0
        self.done_epochs, self.done_seconds = 0, 0.0  # by the end of the last epoch (time limit only)

    @classmethod
    def from_config(cls, cfg: TrainConfig, *, steps_per_epoch: int) -> LRSchedule:
        return cls(
            cfg.lr_schedule,
            lr=cfg.lr,
            steps_per_epoch=steps_per_epoch,
            epochs=cfg.max_epochs,
            time_limit=cfg.time_limit,
        )

    def progress(self, step: int) -> float:
        """How much of the run is done at its batch `step` (0-based, every batch of every epoch):
        by the steps of its epoch count, and under a time limit by the clock, the further of
        the two; in [0, 1]."""
        by_steps = step / (self.epochs * self.steps_per_epoch) if self.epochs is not None else 0.0
        by_clock = 0.0
        if self.time_limit is not None and self.done_epochs > 0:
            per_epoch = self.done_seconds / self.done_epochs
            into_epoch = (step - self.done_epochs * self.steps_per_epoch) / self.steps_per_epoch
            by_clock = (self.done_seconds + max(into_epoch, 0.0) * per_epoch) / self.time_limit
        return min(max(by_steps, by_clock), 1.0)

    def lr_at(self, step: int) -> float:
        """The rate of the run's batch `step` (0-based, counting every batch of every epoch)."""
        if self.kind == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * self.progress(step)))
        return self.lr * self.scale

    def end_epoch(self, epoch: int, *, bad_epochs: int, seconds: float) -> bool:
        """After epoch `epoch` (1-based), `bad_epochs` epochs since the best validation loss and
        `seconds` spent by the run so far: renew the plan; True when the run should stop now."""
        if self.kind == "plateau" and bad_epochs > 0 and bad_epochs % PLATEAU_PATIENCE == 0:
            self.scale *= PLATEAU_FACTOR
        self.plan(epoch, seconds)
        return self.last_epoch <= epoch

    def plan(self, epoch: int, seconds: float) -> None:
        """Under a time limit, after `epoch` epochs that took `seconds`: the last epoch that fits."""
        if self.time_limit is None or epoch < 1:
            return
        self.done_epochs, self.done_seconds = epoch, seconds
        per_epoch = seconds / epoch  # mean over the run so far: steadier than the last epoch alone
        fits = int((self.time_limit - seconds) // per_epoch) if seconds < self.time_limit else 0
        self.last_epoch = epoch + max(fits, 0)
        if self.epochs is not None:
            self.last_epoch = min(self.epochs, self.last_epoch)

    def state_dict(self) -> dict[str, Any]:
        return {"last_epoch": None if math.isinf(self.last_epoch) else self.last_epoch, "scale": self.scale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The plateau factor; the plan is renewed by the caller (`plan`), since a resume may
        raise the epoch count or the time limit."""
        self.scale = state["scale"]
