"""A TrainingState as one safetensors file (checkpoint.safetensors): the model's tensors
("model.*"), the optimizer's tensors ("optim.<param>.<name>"), the RNG states ("rng.*"), and as
JSON metadata the loop's state, the optimizer's parameter groups and its non-tensor values.
Further trained parts (the discriminator of --adversarial) are stored the same way under
"part.<name>." ("part.discriminator.model.*", "part.discriminator.optim.*", and metadata
"part.discriminator.optim_groups" / "...optim_scalars"), their names listed in "parts"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..errors import not_a_run
from ..training.state import TrainingState
from .files import meta_json, read_tensors, write_tensors


def _put_trained(prefix: str, model: dict, optimizer: dict, tensors: dict, meta: dict) -> None:
    """A module's and its optimizer's state into tensors and metadata under `prefix` ("" or "part.NAME.")."""
    tensors.update({f"{prefix}model.{k}": v for k, v in model.items()})
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in optimizer["state"].items():
        for name, value in pstate.items():
            if hasattr(value, "shape"):
                tensors[f"{prefix}optim.{pid}.{name}"] = value
            else:
                scalars.setdefault(str(pid), {})[name] = value
    meta[f"{prefix}optim_groups"] = json.dumps(optimizer["param_groups"])
    meta[f"{prefix}optim_scalars"] = json.dumps(scalars)


def save_checkpoint(path: Path, state: TrainingState) -> None:
    tensors: dict[str, torch.Tensor] = {}
    meta = {"state": json.dumps(state.loop)}
    _put_trained("", state.model, state.optimizer, tensors, meta)
    for name, part in state.parts.items():
        _put_trained(f"part.{name}.", part["model"], part["optimizer"], tensors, meta)
    if state.parts:
        meta["parts"] = json.dumps(sorted(state.parts))
    for name, value in state.rng.items():
        tensors[f"rng.{name}"] = value
    write_tensors(path, tensors, meta)


def _take_trained(path: Path, prefix: str, tensors: dict, meta: dict) -> tuple[dict, dict]:
    """The (model state, optimizer state) stored under `prefix`; the tensors are taken out of `tensors`."""
    groups = meta_json(path, meta, f"{prefix}optim_groups")
    scalars = meta_json(path, meta, f"{prefix}optim_scalars")
    if not (isinstance(groups, list) and isinstance(scalars, dict) and all(isinstance(g, dict) for g in groups)):
        raise not_a_run(path, "its checkpoint's optimizer state is damaged")
    for g in groups:  # JSON turned tuples into lists
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    model, opt_state = {}, {}
    for key in [k for k in tensors if k.startswith(prefix + "model.") or k.startswith(prefix + "optim.")]:
        kind, _, rest = key[len(prefix) :].partition(".")
        value = tensors.pop(key)
        if kind == "model":
            model[rest] = value
            continue
        pid, _, name = rest.partition(".")
        if not pid.isdigit():
            raise not_a_run(path, f"its checkpoint has a tensor it does not know ({key!r})")
        opt_state.setdefault(int(pid), {})[name] = value
    for pid, values in scalars.items():
        if not (pid.isdigit() and isinstance(values, dict)):
            raise not_a_run(path, f"its checkpoint has a damaged optimizer value ({pid!r})")
        opt_state.setdefault(int(pid), {}).update(values)
    return model, {"state": opt_state, "param_groups": groups}


def load_checkpoint(path: Path) -> TrainingState:
    tensors, meta = read_tensors(path)
    loop = meta_json(path, meta, "state")
    names = meta_json(path, meta, "parts") if "parts" in meta else []
    if not (isinstance(loop, dict) and isinstance(loop.get("epoch"), int) and isinstance(names, list)):
        raise not_a_run(path, "its checkpoint's loop state is damaged")
    parts = {}
    for name in names:
        part_model, part_optimizer = _take_trained(path, f"part.{name}.", tensors, meta)
        parts[str(name)] = {"model": part_model, "optimizer": part_optimizer}
    model, optimizer = _take_trained(path, "", tensors, meta)
    rng = {k[len("rng.") :]: v for k, v in tensors.items() if k.startswith("rng.")}
    if "data" not in rng or "torch" not in rng:
        raise not_a_run(path, "its checkpoint has no RNG state")
    return TrainingState(model, optimizer, rng, loop, parts)
