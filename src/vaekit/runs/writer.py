"""The callback that keeps a run folder up to date while it trains: after every epoch the best
weights (when the validation loss improved), the metric row and the checkpoint, in that order,
each written atomically. Under torchrun every rank takes part in the checkpoint's RNG gather and
rank 0 writes."""

from __future__ import annotations

from typing import Any

from ..training.callbacks import Callback
from ..training.loop import Loop
from .run import Run


class RunWriter(Callback):
    def __init__(self, run: Run):
        self.run = run

    def on_epoch_end(self, loop: Loop, row: dict[str, Any]) -> None:
        state = loop.snapshot()  # a collective: every rank
        if not loop.is_main:
            return
        if loop.improved:
            self.run.save_best(loop.model, {"epoch": row["epoch"], "val_loss": row["val_loss"]})
        self.run.append_metrics(row)
        self.run.save_checkpoint(state)
