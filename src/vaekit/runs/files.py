"""Writing and reading the files of a run folder safely: every file is written atomically
(vaekit.atomic). Loading never unpickles: tensors come from safetensors, everything else from JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..atomic import atomic_write, write_json
from ..errors import RunFolderError, not_a_run

__all__ = ["atomic_write", "write_json", "read_json", "write_tensors", "read_tensors", "meta_json"]


def read_json(path: Path, what: str = "file") -> Any:
    """The JSON content of a file vaekit wrote; RunFolderError when it is unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise not_a_run(path, f"{what} is unreadable or not JSON ({e})") from None


def _cpu(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu").contiguous().clone()


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str] | None = None) -> Path:
    return atomic_write(path, st_save({k: _cpu(v) for k, v in tensors.items()}, meta))


def read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, string metadata) of a safetensors file; RunFolderError when it is missing or damaged."""
    path = Path(path)
    if not path.is_file():
        raise RunFolderError(f"{path.parent} has no {path.name} (training has not finished an epoch there)")
    data = path.read_bytes()
    try:
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8 : 8 + header_len]).get("__metadata__", {}) or {}
    except (SafetensorError, ValueError, json.JSONDecodeError, AttributeError) as e:
        raise not_a_run(path, f"not a readable safetensors file ({e})") from None
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise not_a_run(path, "its metadata is damaged")
    return tensors, meta


def meta_json(path: Path, meta: dict[str, str], key: str) -> Any:
    """One JSON value of a safetensors file's metadata; RunFolderError when absent or not JSON."""
    try:
        return json.loads(meta[key])
    except (KeyError, json.JSONDecodeError):
        raise not_a_run(path, f"it has no readable {key!r} metadata") from None
