"""Read, validate and split any source (DataConfig.source):

digits           scikit-learn's bundled 8x8 digits (the default; no download)
fashion-mnist    IDX files from a cache folder or Debian's dataset-fashion-mnist package
<folder>         a folder of IDX files (train-images-idx3-ubyte[.gz], t10k-...), or of
                 PNG/JPEG/... images (one level of sub-folders = class labels)
<file>.npy/.npz  arrays (N, ...); an .npz may hold labels (y or labels) and an official
                 test split (x_test, y_test)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..config import DataConfig
from ..errors import DataError
from .arrays import as_examples, as_labels, read_arrays
from .builtin import DATASETS
from .datasets import MIN_EXAMPLES, Dataset, DataSplits, RawData
from .idx import idx_files, read_idx_folder
from .images import read_image_folder


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
    raise DataError(f"{source}: expected a folder, a .npy/.npz file or one of {', '.join(DATASETS)}")


def load_data(cfg: DataConfig) -> DataSplits:
    """Read, validate and split. The same DataConfig always gives the same splits."""
    raw = resolve(cfg.source)(cfg)
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
    n_total = len(x) + (0 if x_test is None else len(x_test))
    if n_total < MIN_EXAMPLES:
        raise DataError(f"{cfg.source} holds {n_total} examples; vaekit needs at least {MIN_EXAMPLES}")
    class_names = raw.class_names
    if y is not None:
        y, y_test, class_names = _compact_labels(y, y_test, class_names)

    g = torch.Generator().manual_seed(cfg.split_seed)
    xt, yt = torch.from_numpy(x), None if y is None else torch.from_numpy(y)
    full = Dataset(xt, yt)
    if x_test is None:
        perm = torch.randperm(len(full), generator=g)
        n_test = max(1, round(cfg.test_fraction * len(full)))
        test, full = full.subset(perm[:n_test]), full.subset(perm[n_test:])
    else:
        test = Dataset(torch.from_numpy(x_test), None if y_test is None else torch.from_numpy(y_test))
    perm = torch.randperm(len(full), generator=g)
    n_val = max(1, round(cfg.val_fraction * len(full)))
    val, train = full.subset(perm[:n_val]), full.subset(perm[n_val:])
    if cfg.exclude_labels:
        if yt is None:
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
    return DataSplits(
        train,
        val,
        test,
        name=raw.name or cfg.source,
        is_image=is_image,
        class_names=class_names,
        official_test=x_test is not None,
    )


def _compact_labels(y, y_test, names):
    """Map arbitrary integer labels to 0..K-1, keeping their names."""
    values = np.unique(y if y_test is None else np.concatenate([y, y_test]))
    if names is not None and len(names) >= values.max() + 1 and values.min() >= 0:
        return y, y_test, list(names)  # already 0..K-1 with names
    lookup = {v: i for i, v in enumerate(values.tolist())}
    remap = lambda a: None if a is None else np.array([lookup[v] for v in a.tolist()], dtype=np.int64)  # noqa: E731
    return remap(y), remap(y_test), [str(v) for v in values.tolist()]
