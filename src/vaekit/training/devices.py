"""Which device a run trains on, and how often the loop may read values back from it."""

from __future__ import annotations

import torch

from ..errors import VaekitError
from . import distributed

LOG_EVERY = 20  # steps between progress updates (each reads values off the device)
# Steps between reads of the guard's counters on an accelerator (None: LOG_EVERY). A
# diverging run is stopped at most this many steps late; no non-finite step is applied.
HOST_SYNC_EVERY: int | None = None


def mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(name: str) -> torch.device:
    """--device auto|cpu|cuda|mps -> a torch.device (one GPU per process under torchrun); also a
    device torch names with its index, such as cuda:1 (what a model trained on a GPU reports)."""
    kind, _, index = name.partition(":")
    if index:
        if not (index.isdigit() and kind in ("cpu", "cuda", "mps")):
            raise VaekitError(f"unknown device {name!r}; choose auto, cpu, cuda or mps")
        if kind == "cuda" and int(index) >= torch.cuda.device_count():
            raise VaekitError(f"--device {name} was asked for but PyTorch sees {torch.cuda.device_count()} CUDA GPU(s)")
        resolve_device(kind)  # the same checks as without the index
        return torch.device(name)
    if name == "auto":
        if torch.cuda.is_available():
            return distributed.device_for(distributed.context(), torch.device("cuda"))
        return torch.device("mps") if mps_available() else torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise VaekitError("--device cuda was asked for but PyTorch sees no CUDA GPU")
    if name == "mps" and not mps_available():
        raise VaekitError("--device mps was asked for but this machine has no MPS device")
    if name not in ("cpu", "cuda", "mps"):
        raise VaekitError(f"unknown device {name!r}; choose auto, cpu, cuda or mps")
    return distributed.device_for(distributed.context(), torch.device(name))


def host_sync_every(device: torch.device) -> int:
    """How often the loop reads its counters back to the host. On the CPU every op has run
    by the time Python sees its result, so reading costs nothing and the host view is exact
    at every step; on an accelerator a read stalls the queue, so it happens rarely."""
    if device.type == "cpu" and HOST_SYNC_EVERY is None:
        return 1
    return HOST_SYNC_EVERY or LOG_EVERY
