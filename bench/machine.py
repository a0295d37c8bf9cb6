"""What a benchmark ran on, in one line for BENCHMARKS.md."""

from __future__ import annotations

import os
import platform

import torch


def describe() -> str:
    """Processor, cores, the load when the benchmark started, torch and its thread count; and the
    GPU when torch sees one."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (
        f"{platform.machine()}, {os.cpu_count()} cores{gpu}, load average {load:.1f} at the start, torch "
        f"{torch.__version__} with {torch.get_num_threads()} thread(s)"
    )
