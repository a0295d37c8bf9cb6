"""How the training loop talks to the rest of the world: callbacks. The loop calls them on every
rank (under torchrun); anything that writes or prints does so on rank 0 only (`loop.is_main`).

    on_fit_start(loop)                 before the first epoch (after a resume: the next one)
    on_epoch_start(loop)
    on_progress(loop, done, means)     every LOG_EVERY steps, only for callbacks with
                                       wants_progress = True (reading the means costs a sync)
    on_epoch_end(loop, row)            row: the epoch's metrics (train/val loss, recon, KL, ...)
    on_fit_end(loop)

Here: the progress display (a bar per epoch and one line per finished epoch), a plain function
per epoch, and the TensorBoard writer. The run folder's writer lives with the run folder
(vaekit.runs.writer).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from ..errors import VaekitError

if TYPE_CHECKING:  # for annotations only; loop imports this module
    from .loop import Loop


class Callback:
    wants_progress = False

    def on_fit_start(self, loop: Loop) -> None: ...

    def on_epoch_start(self, loop: Loop) -> None: ...

    def on_progress(self, loop: Loop, done: int, means: dict[str, float]) -> None: ...

    def on_epoch_end(self, loop: Loop, row: dict[str, Any]) -> None: ...

    def on_fit_end(self, loop: Loop) -> None: ...


def notify(callbacks: Iterable[Callback], event: str, *args: Any) -> None:
    for cb in callbacks:
        getattr(cb, event)(*args)


def epoch_label(loop: Loop) -> str:
    """ "epoch 3/30", or "epoch 3/~57" while a time limit plans the run's length."""
    last = loop.schedule.last_epoch
    if loop.cfg.epochs is not None or loop.cfg.time_limit is None:
        return f"epoch {loop.epoch}/{loop.cfg.max_epochs}"
    return f"epoch {loop.epoch}/~{last:.0f}" if math.isfinite(last) else f"epoch {loop.epoch}"


def epoch_line(loop: Loop, row: dict[str, Any]) -> str:
    return (
        f"{epoch_label(loop)}  train loss {row['train_loss']:.2f} (recon {row['train_recon']:.2f}, "
        f"kl {row['train_kl']:.2f})  val loss {row['val_loss']:.2f}  nats/example  {row['seconds']:.1f}s  "
        f"{row['images_per_s']:.0f} img/s"
    )


class Progress(Callback):
    """A progress bar through each epoch (loss, recon, KL, images/s) and one line per epoch."""

    wants_progress = True

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def on_epoch_start(self, loop: Loop) -> None:
        if loop.is_main:
            self.bar = tqdm(total=loop.steps, desc=epoch_label(loop), leave=False, unit="step", dynamic_ncols=True)

    def on_progress(self, loop: Loop, done: int, means: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.set_postfix(
                loss=f"{means['loss']:.2f}",
                recon=f"{means['recon']:.2f}",
                kl=f"{means['kl']:.2f}",
                img_s=f"{means['images_per_s']:.0f}",
                refresh=False,
            )
            self.bar.update(done - self.bar.n)

    def on_epoch_end(self, loop: Loop, row: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if loop.is_main:
            tqdm.write(epoch_line(loop, row))

    def on_fit_end(self, loop: Loop) -> None:
        if self.bar is not None:  # an exception ended the epoch
            self.bar.close()


class EveryEpoch(Callback):
    """fn(epoch, row, model) after every epoch, on rank 0."""

    def __init__(self, fn: Callable[[int, dict[str, Any], Any], None]):
        self.fn = fn

    def on_epoch_end(self, loop: Loop, row: dict[str, Any]) -> None:
        if loop.is_main:
            self.fn(row["epoch"], row, loop.model)


class TensorBoard(Callback):
    """Every epoch's numeric metrics as TensorBoard scalars (step = epoch), grouped train/ val/
    other, in `log_dir` (one event file per process start; a resumed run appends a new one)."""

    def __init__(self, log_dir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter  # optional dependency: pip install tensorboard
        except ImportError:
            raise VaekitError("--log tensorboard needs the tensorboard package: pip install tensorboard") from None
        self.log_dir = Path(log_dir)
        self.make_writer = SummaryWriter
        self.writer = None

    def on_fit_start(self, loop: Loop) -> None:
        if loop.is_main:
            self.writer = self.make_writer(log_dir=str(self.log_dir))

    def on_epoch_end(self, loop: Loop, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for key, value in row.items():
            if key == "epoch" or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            group, _, name = key.partition("_")
            tag = f"{group}/{name}" if group in ("train", "val") else f"run/{key}"
            self.writer.add_scalar(tag, value, global_step=row["epoch"])
        self.writer.flush()

    def on_fit_end(self, loop: Loop) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
