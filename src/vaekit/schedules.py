"""Learning-rate schedules and the time budget of a run.

    auto      (the default) cosine when the run has a time limit, constant otherwise: a run
              bounded by --epochs can then be extended with --resume to exactly the weights of
              one longer run, and a run bounded by the clock still ends its rate with the clock.
    constant  Adam at cfg.lr throughout.
    cosine    lr_t = cfg.lr * (1 + cos(pi * t / T)) / 2 over the run's T steps (Loshchilov &
              Hutter 2017): the same start, a gently falling middle, and a last stretch at a
              small step size that settles the weights. T is every step of cfg.epochs, so the
              rate is a pure function of the step count and a resumed run is exact; with
              --epochs raised on resume, T grows and the rest of the curve stretches with it.
    plateau   halve the rate after every PLATEAU_PATIENCE epochs without a better validation
              loss (ReduceLROnPlateau, as pythae's recipes use it); its state is saved in the
              checkpoint.

A time limit (cfg.time_limit, seconds of the whole fit: training and validation) ends the run
after the last epoch that fits: after each epoch the run plans how many more epochs fit at its
mean epoch time so far, and the cosine schedule ends with the last planned epoch, so a short
budget still gets the settling stretch. Where a run stops then depends on the machine's speed
(as with any time limit), so such a run is reproducible only up to that point.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import VaekitError

LR_SCHEDULES = ("auto", "constant", "cosine", "plateau")
PLATEAU_PATIENCE = 3  # epochs without a better validation loss before the rate is halved
PLATEAU_FACTOR = 0.5


def resolve(kind: str, time_limit: float | None) -> str:
    """The schedule a run follows: "auto" becomes cosine under a time limit, constant otherwise."""
    if kind == "auto":
        return "cosine" if time_limit is not None else "constant"
    return kind


def check_options(kind: str, time_limit: float | None) -> None:
    if kind not in LR_SCHEDULES:
        raise VaekitError(f"unknown learning-rate schedule {kind!r}; choose {', '.join(LR_SCHEDULES)}")
    if time_limit is not None and not time_limit > 0:
        raise VaekitError("the time limit must be a positive number of seconds")


class LRSchedule:
    """The learning rate of every step and the run's planned last epoch.

    State (saved in the checkpoint's JSON loop state): `last_epoch`, the epoch the cosine ends
    with (cfg.epochs unless a time limit shortened it); `scale`, the plateau rule's factor."""

    def __init__(self, kind: str, *, lr: float, steps_per_epoch: int, epochs: int, time_limit: float | None = None):
        check_options(kind, time_limit)
        kind = resolve(kind, time_limit)
        self.kind, self.lr, self.steps_per_epoch, self.epochs = kind, lr, steps_per_epoch, epochs
        self.time_limit = time_limit
        self.last_epoch, self.scale = epochs, 1.0

    @classmethod
    def from_config(cls, cfg, *, steps_per_epoch: int) -> "LRSchedule":
        return cls(cfg.lr_schedule, lr=cfg.lr, steps_per_epoch=steps_per_epoch, epochs=cfg.epochs,
                   time_limit=cfg.time_limit)  # fmt: skip

    def lr_at(self, step: int) -> float:
        """The rate of the run's batch `step` (0-based, counting every batch of every epoch)."""
        if self.kind == "cosine":
            progress = min(step / max(self.last_epoch * self.steps_per_epoch, 1), 1.0)
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.lr * self.scale

    def end_epoch(self, epoch: int, *, bad_epochs: int, seconds: float) -> bool:
        """After epoch `epoch` (1-based), `bad_epochs` epochs since the best validation loss and
        `seconds` spent by the run so far: update the plan; True when the run should stop now."""
        if self.kind == "plateau" and bad_epochs > 0 and bad_epochs % PLATEAU_PATIENCE == 0:
            self.scale *= PLATEAU_FACTOR
        if self.time_limit is None:
            return False
        per_epoch = seconds / epoch  # mean over the run so far: steadier than the last epoch alone
        fits = int((self.time_limit - seconds) // per_epoch) if seconds < self.time_limit else 0
        self.last_epoch = min(self.epochs, epoch + max(fits, 0))
        return self.last_epoch <= epoch

    def state_dict(self) -> dict[str, Any]:
        return {"last_epoch": self.last_epoch, "scale": self.scale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # a resume may raise cfg.epochs: the plan then reaches the new total unless a limit says less
        self.last_epoch = self.epochs if self.time_limit is None else min(self.epochs, state["last_epoch"])
        self.scale = state["scale"]
