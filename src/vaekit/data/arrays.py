"""Arrays: .npy (N, ...) and .npz (x, optional labels y and an official test split x_test/y_test),
and the checks every source's arrays go through."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from .datasets import RawData

# what a damaged, truncated or foreign .npy/.npz raises while it is read (members are read lazily)
UNREADABLE = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError, NotImplementedError)


def read_arrays(path: Path) -> RawData:
    """An .npy or .npz file -> RawData, every member read now (never unpickled)."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return RawData(loaded, name=path.stem)
        with loaded:
            return _pick_members(loaded, path)
    except UNREADABLE as e:
        raise DataError(f"cannot read arrays from {path}: {str(e) or type(e).__name__}") from None


def _pick_members(loaded, path: Path) -> RawData:
    keys = list(loaded.keys())
    pick = lambda *names: next((loaded[k] for k in names if k in keys), None)  # noqa: E731
    x = pick("x", "x_train", "images", "data", "X")
    if x is None:
        if not keys:
            raise DataError(f"{path} holds no arrays")
        x = loaded[keys[0]]
    return RawData(x, pick("y", "y_train", "labels", "targets"), pick("x_test"), pick("y_test"), name=path.stem)


def check_numbers(arr: np.ndarray, where: str) -> np.ndarray:
    """arr itself when it holds real numbers (or booleans); DataError otherwise."""
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DataError(f"{where} must hold numbers, not {arr.dtype}")
    if np.iscomplexobj(arr):
        raise DataError(f"{where} holds complex numbers ({arr.dtype}); give real values (e.g. magnitudes)")
    return arr


def is_matrix(arr: np.ndarray) -> bool:
    """A 2-D array of real numbers: rows of features, which vaekit reads as a table."""
    arr = np.asarray(arr)
    return arr.ndim == 2 and arr.dtype != object and (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool)


def as_examples(arr: np.ndarray, where: str) -> tuple[np.ndarray, bool]:
    """Array (N, ...) -> (float32 (N, C, H, W) or (N, D), is_image). Raises DataError."""
    arr = check_numbers(np.asarray(arr), where)
    if arr.ndim >= 2 and 0 in arr.shape[1:]:
        raise DataError(f"{where} has shape {arr.shape}: an example with no values")
    if arr.ndim < 2 or arr.ndim > 4:
        raise DataError(
            f"{where} has shape {arr.shape}; expected (N, features), (N, H, W) or (N, C, H, W) / (N, H, W, C)"
        )
    is_image = arr.ndim >= 3
    scale = 255.0 if arr.dtype == np.uint8 else 1.0
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4 and arr.shape[1] not in (1, 3, 4):
        if arr.shape[3] in (1, 3, 4):
            arr = arr.transpose(0, 3, 1, 2)  # NHWC -> NCHW
        else:
            raise DataError(f"{where} has shape {arr.shape}; cannot tell which axis holds 1, 3 or 4 channels")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if scale != 1.0:
        out /= scale
    bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
    if bad:
        raise DataError(f"{where} contains {bad} non-finite values (NaN or inf); clean them before training")
    if out.shape[0] < 1:
        raise DataError(f"{where} holds no examples")
    return out, is_image


def as_labels(y: np.ndarray | None, n: int, where: str) -> np.ndarray | None:
    if y is None:
        return None
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise DataError(f"labels in {where} have shape {y.shape}; expected ({n},), one per example")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise DataError(f"labels in {where} must be integers")
    return y.astype(np.int64)
