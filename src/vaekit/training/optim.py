"""Adam as the loop uses it, and the two pieces of a guarded step: the gradient norm the guard
checks, and an update that the guard's flag can veto on the device."""

from __future__ import annotations

import torch


def make_optimizer(params: list[torch.nn.Parameter], lr: float, **kwargs) -> torch.optim.Adam:
    """Adam with the fused kernel where this PyTorch has one for the parameters' device
    (CPU, CUDA, MPS in recent versions): about 4x faster than the per-tensor loop on the CPU,
    and it honours a device-side `found_inf` flag. Elsewhere the multi-tensor version.
    kwargs: Adam's other settings (betas, ...)."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True, **kwargs)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.Adam(params, lr=lr, foreach=True, **kwargs)


def match_state_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give every per-parameter state tensor (Adam's moments) its parameter's memory layout. A
    checkpoint restores them contiguous; after the model moves to channels-last, the fused Adam
    kernel would pair elements by memory position, not by index, and silently mix the moments of
    different weights (measured: 0.18 off after one step), so a resumed run would not be the run
    it continues."""
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                state[key] = torch.empty_like(param).copy_(value)  # empty_like keeps param's strides


def grad_norm(params: list[torch.nn.Parameter], clip: float | None) -> torch.Tensor:
    """The global gradient norm (clipping to `clip` when given): a 0-dim device tensor."""
    if clip is not None:
        return torch.nn.utils.clip_grad_norm_(params, clip, foreach=True)
    grads = [p.grad for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def apply_step(optimizer: torch.optim.Optimizer, found_inf: torch.Tensor) -> None:
    """optimizer.step(), skipped when found_inf is set: the fused kernel reads the flag on the
    device (no host sync); the multi-tensor Adam cannot skip on its own, so it syncs."""
    if optimizer.param_groups[0].get("fused"):
        optimizer.found_inf = found_inf
        optimizer.step()
    elif not bool(found_inf):
        optimizer.step()
