"""Flush denormal floats to zero on every CPU thread torch computes on.

Why: a Bernoulli VAE drives the logits of pixels that are always 0 (an image's empty border)
ever more negative, so sigmoid(logit) - x, the gradient that flows back into the decoder's
last matmuls, fills with denormal floats (below 1.2e-38). x86 CPUs handle those in
microcode, 100x slower than normal floats: on Fashion-MNIST a vaekit MLP epoch slowed from
2.6 s to 3.9 s within three epochs, and a 500x500 matmul on denormal inputs takes 200 ms
instead of 1 ms. Flushing them to zero (the CPU's FTZ and DAZ modes) changes values below
1.2e-38 only; TensorFlow does the same on its CPU threads. BENCHMARKS.md has the measurements.

How: `torch.set_flush_denormal` sets the mode for the calling thread only, and threads
inherit it when they are created. torch's intra-op threads (an OpenMP pool, also used by MKL
and oneDNN) usually exist already, so each of them must set it itself: we run one OpenMP
parallel region through libgomp's own entry point (ctypes), in which every thread of the pool
calls `torch.set_flush_denormal(True)`. Where torch's OpenMP runtime is not libgomp (macOS,
Windows builds), only the calling thread and threads created later get the mode.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path

import torch

_REGION = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


@lru_cache(maxsize=1)
def _libgomp() -> ctypes.CDLL | None:
    """The libgomp this process has loaded (torch's), or None. Other packages may load their own
    copy (scikit-learn bundles one), whose pool is not torch's: torch's own lib folder wins."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    paths = [line.split()[-1] for line in maps.splitlines() if line.split()]
    paths = list(dict.fromkeys(p for p in paths if "/libgomp" in p and ".so" in p))
    torch_lib = str(Path(torch.__file__).resolve().parent / "lib") + "/"
    paths.sort(key=lambda p: not str(Path(p).resolve()).startswith(torch_lib))
    if not paths:
        return None
    try:
        lib = ctypes.CDLL(paths[0])
        lib.GOMP_parallel.argtypes = [_REGION, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        lib.GOMP_parallel.restype = None
        return lib
    except (OSError, AttributeError):
        return None


def _set_on_this_thread(_data) -> None:
    torch.set_flush_denormal(True)


_SET_ON_THIS_THREAD = _REGION(_set_on_this_thread)  # kept alive for as long as the module


def flush_denormals() -> bool:
    """Switch on flush-to-zero for denormal floats on this thread and on every thread of torch's
    intra-op pool. Returns False where the CPU has no such mode (then nothing changes)."""
    if not torch.set_flush_denormal(True):
        return False
    lib = _libgomp()
    if lib is not None and torch.get_num_threads() > 1:
        # ctypes releases the GIL for the call; each pool thread takes it to run the callback
        lib.GOMP_parallel(_SET_ON_THIS_THREAD, None, torch.get_num_threads(), 0)
    return True
