"""A TrainingState as one safetensors file (checkpoint.safetensors): the model's tensors
("model.*"), the optimizer's tensors ("optim.<param>.<name>"), the RNG states ("rng.*"), and as
JSON metadata the loop's state, the optimizer's parameter groups and its non-tensor values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import not_a_run
from ..training.state import TrainingState
from .files import meta_json, read_tensors, write_tensors


def save_checkpoint(path: Path, state: TrainingState) -> None:
    tensors = {f"model.{k}": v for k, v in state.model.items()}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in state.optimizer["state"].items():
        for name, value in pstate.items():
            if hasattr(value, "shape"):
                tensors[f"optim.{pid}.{name}"] = value
            else:
                scalars.setdefault(str(pid), {})[name] = value
    for name, value in state.rng.items():
        tensors[f"rng.{name}"] = value
    meta = {
        "state": json.dumps(state.loop),
        "optim_groups": json.dumps(state.optimizer["param_groups"]),
        "optim_scalars": json.dumps(scalars),
    }
    write_tensors(path, tensors, meta)


def load_checkpoint(path: Path) -> TrainingState:
    tensors, meta = read_tensors(path)
    groups = meta_json(path, meta, "optim_groups")
    scalars = meta_json(path, meta, "optim_scalars")
    loop = meta_json(path, meta, "state")
    if not (
        isinstance(groups, list)
        and isinstance(scalars, dict)
        and isinstance(loop, dict)
        and isinstance(loop.get("epoch"), int)
        and all(isinstance(g, dict) for g in groups)
    ):
        raise not_a_run(path, "its checkpoint's loop or optimizer state is damaged")
    for g in groups:  # JSON turned tuples into lists
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    model, rng, opt_state = {}, {}, {}
    for key, value in tensors.items():
        kind, _, rest = key.partition(".")
        if kind == "model":
            model[rest] = value
        elif kind == "rng":
            rng[rest] = value
        elif kind == "optim":
            pid, _, name = rest.partition(".")
            if not pid.isdigit():
                raise not_a_run(path, f"its checkpoint has a tensor it does not know ({key!r})")
            opt_state.setdefault(int(pid), {})[name] = value
    for pid, values in scalars.items():
        if not (pid.isdigit() and isinstance(values, dict)):
            raise not_a_run(path, f"its checkpoint has a damaged optimizer value ({pid!r})")
        opt_state.setdefault(int(pid), {}).update(values)
    if "data" not in rng or "torch" not in rng:
        raise not_a_run(path, "its checkpoint has no RNG state")
    return TrainingState(model, {"state": opt_state, "param_groups": groups}, rng, loop)
