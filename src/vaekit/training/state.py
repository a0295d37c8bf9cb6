"""What a checkpoint holds: the model's and the optimizer's state, every RNG state, the loop's
own counters, and any further trained part (a discriminator) with its optimizer. The loop builds one with `capture` (a collective under torchrun: every rank calls
it) and continues from one exactly with `restore`; vaekit.runs writes and reads it as a file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import VaekitError
from . import distributed


@dataclass
class TrainingState:
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]  # torch's optimizer state_dict
    rng: dict[str, torch.Tensor]  # "data" (shared), "torch" / "cuda" (rank 0), "torch.rank1", ...
    loop: dict[str, Any]  # epoch, step, best_val, bad_epochs, seconds, schedule: JSON-ready
    # further trained parts, by name: {"model": state_dict, "optimizer": state_dict} (the
    # discriminator of --adversarial)
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def epoch(self) -> int:
        return int(self.loop["epoch"])


def rng_state(data_gen: torch.Generator, device: torch.device, ctx: distributed.Context) -> dict[str, torch.Tensor]:
    """The RNG states a checkpoint needs: the shared generator (data order, binarization,
    corruption and the latent noise of the global batch) and each rank's own torch (and CUDA)
    state. Rank 0's keep their plain names. A collective under torchrun."""
    rng = {"data": data_gen.get_state()}
    own = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        own["cuda"] = torch.cuda.get_rng_state(device)
    for name, value in own.items():
        for r, part in enumerate(distributed.all_gather_bytes(value, ctx, device)):
            rng[name if r == 0 else f"{name}.rank{r}"] = part
    return rng


def set_rng_state(
    rng: dict[str, torch.Tensor], data_gen: torch.Generator, device: torch.device, ctx: distributed.Context
) -> None:
    suffix = "" if ctx.rank == 0 else f".rank{ctx.rank}"
    if "torch" + suffix not in rng:
        raise VaekitError(
            f"this checkpoint was written by fewer processes than the {ctx.world_size} resuming it; "
            "resume with the same number of processes"
        )
    try:
        data_gen.set_state(rng["data"])
        torch.set_rng_state(rng["torch" + suffix])
        if device.type == "cuda" and "cuda" + suffix in rng:
            torch.cuda.set_rng_state(rng["cuda" + suffix], device)
    except (RuntimeError, KeyError, TypeError) as e:
        raise VaekitError(f"the checkpoint's RNG state is damaged: {str(e).splitlines()[0]}") from None
