"""Run folders. Everything needed to rebuild and resume lives in one folder:

  config.json              RunConfig (model, train, data) + facts about the data
  model.safetensors        weights of the best validation epoch (what vaekit.load uses)
  checkpoint.safetensors   last epoch: weights, optimizer state, RNG states, loop state
  metrics.jsonl            one JSON line per epoch

Every file is written to a temporary name and renamed into place, so a run killed at any
moment leaves the previous complete checkpoint. Loading never unpickles: tensors come from
safetensors and everything else from JSON.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .config import RunConfig
from .errors import RunFolderError

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
CHECKPOINT_FILE = "checkpoint.safetensors"
METRICS_FILE = "metrics.jsonl"


_UMASK = os.umask(0o022)  # read the process umask (os.umask sets and returns the old one) ...
os.umask(_UMASK)  # ... and put it back


def atomic_write(path: Path, data: bytes | str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file 0600; give it the permissions an ordinary write would (umask)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- config ---------------------------------------------------------------------------------------


def write_config(run_dir: Path, config: RunConfig, info: dict[str, Any] | None = None) -> None:
    d = config.to_dict()
    if info:
        d["info"] = info
    atomic_write(Path(run_dir) / CONFIG_FILE, json.dumps(d, indent=2) + "\n")


def read_config(run_dir: Path) -> tuple[RunConfig, dict[str, Any]]:
    """(config, info). Raises RunFolderError for anything that is not a vaekit run folder."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise RunFolderError(f"no such run folder: {run_dir}")
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir} is a file, not a run folder")
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise RunFolderError(f"{run_dir} is not a vaekit run folder (it has no {CONFIG_FILE})")
    try:
        d = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunFolderError(f"{path} is unreadable or not JSON: {e}") from None
    try:
        config = RunConfig.from_dict(d)
    except (TypeError, ValueError) as e:
        raise RunFolderError(f"{path} does not describe a vaekit run: {e}") from None
    return config, d.get("info", {})


# -- weights and training state ---------------------------------------------------------------------


def _cpu(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu").contiguous().clone()


def save_weights(path: Path, model: torch.nn.Module, meta: dict[str, Any] | None = None) -> None:
    tensors = {k: _cpu(v) for k, v in model.state_dict().items()}
    atomic_write(path, st_save(tensors, {"meta": json.dumps(meta or {})}))


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.is_file():
        raise RunFolderError(f"{path.parent} has no {path.name} (training has not finished an epoch there)")
    data = path.read_bytes()
    try:
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8 : 8 + header_len]).get("__metadata__", {}) or {}
    except (SafetensorError, ValueError, json.JSONDecodeError) as e:
        raise RunFolderError(f"{path} is not a readable safetensors file: {e}") from None
    return tensors, meta


def load_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, meta = _read_safetensors(Path(path))
    return tensors, json.loads(meta.get("meta", "{}"))


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    rng: dict[str, torch.Tensor],
    state: dict[str, Any],
) -> None:
    """One file, written atomically: weights, optimizer, RNG states and loop state (JSON)."""
    tensors = {f"model.{k}": _cpu(v) for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in opt["state"].items():
        for name, value in pstate.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{name}"] = _cpu(value)
            else:
                scalars.setdefault(str(pid), {})[name] = value
    for name, value in rng.items():
        tensors[f"rng.{name}"] = _cpu(value)
    meta = {
        "state": json.dumps(state),
        "optim_groups": json.dumps(opt["param_groups"]),
        "optim_scalars": json.dumps(scalars),
    }
    atomic_write(path, st_save(tensors, meta))


def load_checkpoint(path: Path):
    """-> (model_state, optimizer_state, rng, state)."""
    tensors, meta = _read_safetensors(Path(path))
    try:
        groups = json.loads(meta["optim_groups"])
        scalars = json.loads(meta["optim_scalars"])
        state = json.loads(meta["state"])
    except (KeyError, json.JSONDecodeError):
        raise RunFolderError(f"{path} is not a vaekit checkpoint") from None
    for g in groups:  # JSON turned tuples into lists
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    model_state, rng, opt_state = {}, {}, {}
    for key, value in tensors.items():
        kind, _, rest = key.partition(".")
        if kind == "model":
            model_state[rest] = value
        elif kind == "rng":
            rng[rest] = value
        elif kind == "optim":
            pid, _, name = rest.partition(".")
            opt_state.setdefault(int(pid), {})[name] = value
    for pid, values in scalars.items():
        opt_state.setdefault(int(pid), {}).update(values)
    return model_state, {"state": opt_state, "param_groups": groups}, rng, state


# -- metrics ------------------------------------------------------------------------------------------


def append_metrics(run_dir: Path, row: dict[str, Any]) -> None:
    with open(Path(run_dir) / METRICS_FILE, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Every complete line; a line torn by a kill mid-write is skipped."""
    path = Path(run_dir) / METRICS_FILE
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def truncate_metrics(run_dir: Path, last_epoch: int) -> None:
    """Keep the lines up to last_epoch (a resumed run rewrites what came after its checkpoint)."""
    rows = [r for r in read_metrics(run_dir) if r.get("epoch", 0) <= last_epoch]
    atomic_write(Path(run_dir) / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in rows))
