"""In-memory data: float32 tensors, (N, C, H, W) images in [0, 1] or (N, D) vectors, with
optional integer labels (N,). Training batches by indexing these tensors: no per-example Python work."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from .schema import TableSchema

MIN_EXAMPLES = 10


@dataclass
class Dataset:
    x: Tensor  # (N, *shape) float32
    y: Tensor | None = None  # (N,) int64

    def __len__(self) -> int:
        return self.x.shape[0]

    def subset(self, index: Tensor) -> Dataset:
        return Dataset(self.x[index], None if self.y is None else self.y[index])

    def to(self, device) -> Dataset:
        return Dataset(self.x.to(device), None if self.y is None else self.y.to(device))

    def batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor | None]]:
        """Consecutive slices, in order (evaluation)."""
        for i in range(0, len(self), batch_size):
            yield self.x[i : i + batch_size], None if self.y is None else self.y[i : i + batch_size]


@dataclass
class DataSplits:
    train: Dataset
    val: Dataset
    test: Dataset
    name: str
    is_image: bool
    class_names: list[str] | None = None
    official_test: bool = False
    table: TableSchema | None = None  # a table's columns: how its rows were encoded (vaekit.data.schema)

    @property
    def shape(self) -> list[int]:
        return list(self.train.x.shape[1:])

    @property
    def num_classes(self) -> int:
        return 0 if self.class_names is None else len(self.class_names)

    @property
    def has_labels(self) -> bool:
        return self.train.y is not None

    def split(self, name: str) -> Dataset:
        if name == "all":
            parts = [self.train, self.val, self.test]
            ys = None if self.train.y is None else torch.cat([p.y for p in parts])
            return Dataset(torch.cat([p.x for p in parts]), ys)
        if name not in ("train", "val", "test"):
            raise DataError(f"unknown split {name!r}; choose train, val, test or all")
        return getattr(self, name)

    def value_range(self) -> tuple[float, float]:
        lo = min(float(d.x.min()) for d in (self.train, self.val, self.test) if len(d))
        hi = max(float(d.x.max()) for d in (self.train, self.val, self.test) if len(d))
        return lo, hi


@dataclass
class RawData:
    """What a reader returns before validation and splitting."""

    x: np.ndarray
    y: np.ndarray | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    class_names: list[str] | None = None
    name: str = ""
    extra: dict = field(default_factory=dict)
