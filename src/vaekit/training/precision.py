"""Numeric precision of the forward pass: autocast to bf16/fp16, and a gradient scaler for fp16."""

from __future__ import annotations

import contextlib

import torch

from ..errors import VaekitError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def native_bf16(device: torch.device) -> bool:
    """Whether the device computes in bfloat16 natively (so bf16 autocast is a clear win):
    CUDA GPUs from Ampere on, CPUs with AMX or AVX512-BF16 (recent Xeons)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        avx512_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
        return bool(amx() or avx512_bf16())
    return False


class Precision:
    """Autocast for the forward pass and, for fp16, a GradScaler. bf16 needs no scaler (it has
    fp32's exponent range); fp16 does, or small gradients underflow to zero."""

    def __init__(self, name: str, device: torch.device):
        if name == "auto":
            name = "bf16" if native_bf16(device) else "fp32"
        if name not in PRECISIONS:
            raise VaekitError(f"unknown precision {name!r}; choose auto, {', '.join(PRECISIONS)}")
        self.name, self.dtype, self.device = name, PRECISIONS[name], device
        self.scaler = torch.amp.GradScaler(device.type) if name == "fp16" else None

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """loss.backward(), scaled for fp16 (and the gradients unscaled again for clipping and the guard)."""
        if self.scaler is None:
            loss.backward()
            return
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optimizer)

    def after_step(self) -> None:
        if self.scaler is not None:
            self.scaler.update()
