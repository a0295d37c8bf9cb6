"""Data a user hands a trained model (to score, clean or encode), checked against its shape."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..config import DataConfig
from ..errors import DataError
from .arrays import as_examples, as_labels, read_arrays
from .datasets import Dataset
from .idx import idx_files
from .images import IMAGE_EXTENSIONS, image_files, load_image
from .loading import load_data, resolve
from .progress import progress
from .schema import TableSchema
from .tables import matrix_table, read_table

SPLITS = ("train", "val", "test", "all")


def split_spec(spec: str) -> tuple[str, str | None]:
    """ "fashion-mnist:test" -> ("fashion-mnist", "test"); a spec without a split suffix -> (spec, None)."""
    source, sep, split = spec.rpartition(":")
    if sep and source and split in SPLITS:
        return source, split
    return spec, None


def load_split(spec: str, *, like: DataConfig | None = None, table: TableSchema | None = None) -> Dataset:
    """One split of a source, "name:split" (fashion-mnist:test, data.npz:val, folder/:all).

    like: a run's DataConfig. Its split settings (fractions, seed, image size, colour) are reused
    so that "digits:val" is the very validation split that run saw; its excluded labels too when
    the source is the run's own. table: a table run's columns, which encode the rows."""
    source, split = split_spec(spec)
    if split is None:
        raise DataError(f"{spec!r} names no split; write it as SOURCE:SPLIT with SPLIT one of {', '.join(SPLITS)}")
    cfg = DataConfig(source=source)
    if like is not None:
        cfg = replace(like, source=source, exclude_labels=like.exclude_labels if source == like.source else None)
    return load_data(cfg, table=table).split(split)


@dataclass
class Examples:
    """Inputs to score or clean: x (N, *shape), labels when known, and one name per row."""

    x: Tensor
    y: Tensor | None
    names: list[str]
    source: str
    unseen: Tensor | None = None  # (N,) a table row's cells holding a category never seen in training
    notes: list[str] = field(default_factory=list)  # what reading them found (a table's unseen categories)

    def __len__(self) -> int:
        return self.x.shape[0]

    def take(self, index: Tensor) -> Examples:
        """The rows at `index` (1-D integer tensor), in that order."""
        y = None if self.y is None else self.y[index]
        unseen = None if self.unseen is None else self.unseen[index]
        return Examples(self.x[index], y, [self.names[i] for i in index.tolist()], self.source, unseen, self.notes)

    def limit(self, n: int | None, *, seed: int = 0) -> Examples:
        """At most n rows, drawn at random with a seed, kept in their original order."""
        if n is None or len(self) <= n:
            return self
        return self.take(torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n].sort().values)

    def concat(self, other: Examples) -> Examples:
        y = None if (self.y is None or other.y is None) else torch.cat([self.y, other.y])
        unseen = None if (self.unseen is None or other.unseen is None) else torch.cat([self.unseen, other.unseen])
        return Examples(
            torch.cat([self.x, other.x]),
            y,
            self.names + other.names,
            f"{self.source} + {other.source}",
            unseen,
            self.notes + other.notes,
        )


def read_examples(
    spec: str, *, data_shape: list[int], like: DataConfig | None = None, table: TableSchema | None = None
) -> Examples:
    """What a user hands a trained model, checked against the shape it was trained on:
    SOURCE:SPLIT (one split, see load_split), a folder of images or one image file (converted
    and resized to data_shape; rows named by path), or any other source (every example, in file
    order; rows named by index). table: a table run's columns; a table or matrix is then encoded
    with them (rows named by their number in the file)."""
    source, split = split_spec(spec)
    path = Path(spec).expanduser()
    if table is not None and split is None:
        return read_table_examples(spec, table)
    if split is not None:
        d = load_split(spec, like=like, table=table)
        x, y, names = d.x, d.y, [f"{split}[{i}]" for i in range(len(d))]
    elif path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
        x, y, names = load_image(path, data_shape)[None], None, [path.name]
    elif path.is_dir() and not idx_files(path):
        files = image_files(path)
        if not files:
            raise DataError(f"{spec} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        x = torch.stack([load_image(p, data_shape) for p in progress(files, "reading images")])
        y, names = None, [str(p.relative_to(path)) for p in files]
    else:
        raw = resolve(spec)(DataConfig(source=spec))
        arrays = [as_examples(raw.x, spec)[0]]
        labels = [as_labels(raw.y, len(arrays[0]), spec)]
        if raw.x_test is not None:
            arrays.append(as_examples(raw.x_test, f"{spec} (test)")[0])
            labels.append(as_labels(raw.y_test, len(arrays[1]), f"{spec} (test)"))
        if any(a.shape[1:] != arrays[0].shape[1:] for a in arrays):
            raise DataError(f"{spec}: test examples differ in shape from training ones")
        x = torch.from_numpy(np.concatenate(arrays))
        y = None if any(lab is None for lab in labels) else torch.from_numpy(np.concatenate(labels))
        names = [str(i) for i in range(len(x))]
    if list(x.shape[1:]) != list(data_shape):
        raise DataError(
            f"{spec} holds examples of shape {tuple(x.shape[1:])}, but the model was trained on "
            f"shape {tuple(data_shape)}"
        )
    return Examples(x.float(), y, names, spec)


def read_table_examples(spec: str, table: TableSchema) -> Examples:
    """A table file or a matrix, every row encoded with a table run's columns (extra columns are
    ignored; a missing one, a changed type or a ragged row is a DataError; unseen categories are
    counted and treated as missing)."""
    path = Path(spec).expanduser()
    if not path.is_file():
        raise DataError(f"no such file: {spec} (a table run scores tables: .csv, .tsv, .parquet, .npy, .npz)")
    if path.suffix.lower() in (".npy", ".npz"):
        raw = read_arrays(path)
        rows = matrix_table(raw.x if raw.x_test is None else np.concatenate([raw.x, raw.x_test]), spec)
    else:
        rows = read_table(path)
    x, report = table.encode(rows, spec)
    y = None
    if table.label is not None and table.label in rows.column_names and table.label_values:
        y = table.label_indices(rows.column(table.label).combine_chunks())
    extra = [c for c in rows.column_names if c != table.label and c not in {c.name for c in table.columns}]
    notes = report.notes + ([f"columns not in the model, ignored: {', '.join(extra)}"] if extra else [])
    unseen = torch.from_numpy(report.unseen)
    names = [str(i) for i in range(rows.num_rows)]
    return Examples(torch.from_numpy(x), y, names, spec, unseen, notes)
