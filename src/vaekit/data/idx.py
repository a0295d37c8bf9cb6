"""IDX files, the MNIST format: train-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte, ..."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np

from ..errors import DataError
from .datasets import RawData

_IDX_NAME = re.compile(r"^(train|t10k|test)[-_.](images|labels)[-_.]idx[13][-_.]ubyte(\.gz)?$")
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def idx_files(folder: Path) -> dict[tuple[str, str], Path]:
    found: dict[tuple[str, str], Path] = {}
    if folder.is_dir():
        for p in sorted(folder.iterdir()):
            m = _IDX_NAME.match(p.name)
            if m:
                split = "train" if m.group(1) == "train" else "test"
                found.setdefault((split, m.group(2)), p)
    return found


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (optionally gzipped) -> array; the format is the MNIST one."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataError(f"cannot read IDX file {path}: {e}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = 4 + 4 * ndim + int(np.prod(dims)) * dtype.itemsize
    if len(data) != expected:
        raise DataError(f"{path} is truncated or corrupt ({len(data)} bytes, header says {expected})")
    return np.frombuffer(data, dtype, offset=4 + 4 * ndim).reshape(dims)


def read_idx_folder(folder: Path) -> RawData:
    files = idx_files(folder)
    if ("train", "images") not in files:
        raise DataError(f"{folder} has no train-images-idx3-ubyte[.gz] file")
    get = lambda split, what: read_idx(files[(split, what)]) if (split, what) in files else None  # noqa: E731
    return RawData(
        get("train", "images"),
        get("train", "labels"),
        get("test", "images"),
        get("test", "labels"),
        name=folder.name,
    )
