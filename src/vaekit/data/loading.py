"""Read, validate and split any source (DataConfig.source):

digits           scikit-learn's bundled 8x8 digits (the default; no download)
fashion-mnist    IDX files from a cache folder or Debian's dataset-fashion-mnist package
<folder>         a folder of IDX files (train-images-idx3-ubyte[.gz], t10k-...), or of
                 PNG/JPEG/... images (one level of sub-folders = class labels)
<file>.npy/.npz  arrays (N, ...); an .npz may hold labels (y or labels) and an official
                 test split (x_test, y_test); a 2-D matrix is a table (unless --matrix raw)
<file>.csv/.tsv/.parquet  a table: typed columns (vaekit.data.tables, vaekit.data.schema)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from ..config import DataConfig
from ..errors import DataError
from .arrays import as_examples, as_labels, is_matrix, read_arrays
from .builtin import DATASETS
from .datasets import MIN_EXAMPLES, Dataset, DataSplits, RawData
from .idx import idx_files, read_idx_folder
from .images import read_image_folder
from .schema import TableSchema
from .tables import RawTable, infer_schema, is_table_file, label_codes, raw_table, read_table


def resolve(source: str) -> Callable[[DataConfig], RawData]:
    if source in DATASETS:
        return DATASETS[source]
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"no such file or folder: {source} (built-in datasets: {', '.join(DATASETS)})")
    if path.is_dir():
        if idx_files(path):
            return lambda cfg: read_idx_folder(path)
        return lambda cfg: read_image_folder(path, cfg)
    if path.suffix.lower() in (".npy", ".npz"):
        return lambda cfg: read_arrays(path)
    raise DataError(
        f"{source}: expected a folder, a .npy/.npz file, a table (.csv, .tsv, .parquet) or one of {', '.join(DATASETS)}"
    )


def load_data(cfg: DataConfig, *, table: TableSchema | None = None) -> DataSplits:
    """Read, validate and split. The same DataConfig always gives the same splits. A table
    (CSV, TSV, Parquet, or a 2-D matrix unless cfg.matrix is raw) is encoded with `table`, a
    schema fitted before (a run's), or with one inferred and fitted to its training rows now."""
    path = Path(cfg.source).expanduser()
    if cfg.source not in DATASETS and path.is_file() and is_table_file(path):
        return _table_splits(RawTable(read_table(path), path.stem), cfg, table)
    raw = resolve(cfg.source)(cfg)
    if cfg.matrix == "table" and is_matrix(raw.x):
        return _table_splits(raw_table(raw, cfg.source), cfg, table)
    x, is_image = as_examples(raw.x, cfg.source)
    y = as_labels(raw.y, len(x), cfg.source)
    x_test = y_test = None
    if raw.x_test is not None:
        x_test, _ = as_examples(raw.x_test, f"{cfg.source} (test)")
        if x_test.shape[1:] != x.shape[1:]:
            raise DataError(f"{cfg.source}: test examples {x_test.shape[1:]} differ from training ones {x.shape[1:]}")
        y_test = as_labels(raw.y_test, len(x_test), f"{cfg.source} (test)")
        if (y is None) != (y_test is None):
            y = y_test = None  # labels on one split only are no use to us
    _check_size(len(x) + (0 if x_test is None else len(x_test)), cfg.source)
    class_names = raw.class_names
    if y is not None:
        y, y_test, class_names = _compact_labels(y, y_test, class_names)
    yt = None if y is None else torch.from_numpy(y)
    test = (
        None
        if x_test is None
        else Dataset(torch.from_numpy(x_test), None if y_test is None else torch.from_numpy(y_test))
    )
    train, val, test = split(Dataset(torch.from_numpy(x), yt), test, cfg)
    return DataSplits(
        train,
        val,
        test,
        name=raw.name or cfg.source,
        is_image=is_image,
        class_names=class_names,
        official_test=x_test is not None,
    )


def _check_size(n_total: int, source: str) -> None:
    if n_total < MIN_EXAMPLES:
        raise DataError(f"{source} holds {n_total} examples; vaekit needs at least {MIN_EXAMPLES}")


def split(full: Dataset, test: Dataset | None, cfg: DataConfig) -> tuple[Dataset, Dataset, Dataset]:
    """(train, val, test): the official test split or a random test fraction, then a random
    validation fraction of the rest, with the seed cfg.split_seed; excluded labels leave train and val."""
    g = torch.Generator().manual_seed(cfg.split_seed)
    if test is None:
        perm = torch.randperm(len(full), generator=g)
        n_test = max(1, round(cfg.test_fraction * len(full)))
        test, full = full.subset(perm[:n_test]), full.subset(perm[n_test:])
    perm = torch.randperm(len(full), generator=g)
    n_val = max(1, round(cfg.val_fraction * len(full)))
    val, train = full.subset(perm[:n_val]), full.subset(perm[n_val:])
    if cfg.exclude_labels:
        if full.y is None:
            raise DataError(f"--exclude-label needs labels, and {cfg.source} has none")
        gone = torch.tensor(cfg.exclude_labels)
        present = set(torch.cat([d.y for d in (train, val, test) if d.y is not None]).tolist())
        missing = [v for v in cfg.exclude_labels if v not in present]
        if missing:
            raise DataError(
                f"--exclude-label: {cfg.source} has no label {', '.join(map(str, missing))} "
                f"(its labels are {min(present)}..{max(present)})"
            )
        train, val = (d.subset(~torch.isin(d.y, gone)) for d in (train, val))
        if len(train) == 0 or len(val) == 0:
            raise DataError("--exclude-label removed every training or validation example")
    return train, val, test


def _table_splits(raw: RawTable, cfg: DataConfig, schema: TableSchema | None) -> DataSplits:
    """A table's rows split as any data, its schema fitted to the training rows (unless given),
    every row encoded (vaekit.data.schema)."""
    where = cfg.source
    rows, y, test_rows, y_test, class_names = _table_labels(raw, cfg, schema)
    _check_size(rows.num_rows + (0 if test_rows is None else test_rows.num_rows), where)
    fresh = schema is None
    if fresh:
        schema = infer_schema(rows, cfg, where)
        schema.label_values = list(class_names or []) if cfg.label else []
    # split row numbers (N, 1) exactly as examples are split, then fit on the training rows
    index = Dataset(torch.arange(rows.num_rows)[:, None], y)
    test_index = None if test_rows is None else Dataset(torch.arange(test_rows.num_rows)[:, None], y_test)
    train, val, test = split(index, test_index, cfg)
    if fresh:
        schema.fit(rows.take(pa.array(train.x[:, 0].numpy())))
    x = torch.from_numpy(schema.encode(rows, where)[0])
    x_test = x if test_rows is None else torch.from_numpy(schema.encode(test_rows, f"{where} (test)")[0])
    encoded = [Dataset(x[d.x[:, 0]], d.y) for d in (train, val)] + [Dataset(x_test[test.x[:, 0]], test.y)]
    return DataSplits(
        *encoded,
        name=raw.name or where,
        is_image=False,
        class_names=class_names,
        official_test=test_rows is not None,
        table=schema,
    )


def _table_labels(raw: RawTable, cfg: DataConfig, schema: TableSchema | None):
    """-> (rows, y, test rows, y_test, class names): labels from the --label column, or given
    beside a matrix; as tensors (or None)."""
    label = cfg.label if schema is None else schema.label
    rows, test_rows = raw.table, raw.test
    if label is not None:
        if label not in rows.column_names:
            raise DataError(f"{cfg.source} has no label column {label!r}")
        y, names = label_codes(rows, label, cfg.source)
        if test_rows is not None:
            raise DataError(f"{cfg.source}: a --label column goes with one table, not a matrix with a test split")
        return rows.drop_columns([label]), torch.from_numpy(y), None, None, names
    y = as_labels(raw.y, rows.num_rows, cfg.source)
    y_test = None if test_rows is None else as_labels(raw.y_test, test_rows.num_rows, f"{cfg.source} (test)")
    if y is None or (test_rows is not None and y_test is None):
        return rows, None, test_rows, None, None
    y, y_test, names = _compact_labels(y, y_test, None)
    return rows, torch.from_numpy(y), test_rows, None if y_test is None else torch.from_numpy(y_test), names


def _compact_labels(y, y_test, names):
    """Map arbitrary integer labels to 0..K-1, keeping their names."""
    values = np.unique(y if y_test is None else np.concatenate([y, y_test]))
    if names is not None and len(names) >= values.max() + 1 and values.min() >= 0:
        return y, y_test, list(names)  # already 0..K-1 with names
    lookup = {v: i for i, v in enumerate(values.tolist())}
    remap = lambda a: None if a is None else np.array([lookup[v] for v in a.tolist()], dtype=np.int64)  # noqa: E731
    return remap(y), remap(y_test), [str(v) for v in values.tolist()]
