"""Datasets: one place that reads and validates input.

Everything ends up as float32 tensors held in memory, (N, C, H, W) for images scaled to
[0, 1] and (N, D) for feature vectors, with optional integer labels (N,). Training batches
by indexing these tensors: no per-example Python work.

Sources (DataConfig.source):
  digits           scikit-learn's bundled 8x8 digits (the default; no download)
  fashion-mnist    IDX files from a cache folder or Debian's dataset-fashion-mnist package
  <folder>         a folder of IDX files (train-images-idx3-ubyte[.gz], t10k-...), or of
                   PNG/JPEG/... images (one level of sub-folders = class labels)
  <file>.npy/.npz  arrays (N, ...); an .npz may hold labels (y or labels) and an official
                   test split (x_test, y_test)
"""

from __future__ import annotations

import gzip
import os
import re
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from .config import DataConfig
from .errors import DataError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
MIN_EXAMPLES = 10


def fashion_mnist_dirs() -> list[Path]:
    """Where we look for the Fashion-MNIST IDX files, in order."""
    dirs = []
    if os.environ.get("VAEKIT_DATA"):
        dirs.append(Path(os.environ["VAEKIT_DATA"]) / "fashion-mnist")
    dirs.append(Path.home() / ".cache" / "vaekit" / "fashion-mnist")
    dirs.append(Path("/usr/share/datasets/fashion-mnist"))
    return dirs


@dataclass
class Dataset:
    x: Tensor  # (N, *shape) float32
    y: Tensor | None = None  # (N,) int64

    def __len__(self) -> int:
        return self.x.shape[0]

    def subset(self, index: Tensor) -> "Dataset":
        return Dataset(self.x[index], None if self.y is None else self.y[index])

    def to(self, device) -> "Dataset":
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


# -- readers ------------------------------------------------------------------------------------


def read_digits(cfg: DataConfig) -> RawData:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8) in [0, 1]
    return RawData(x, d.target.astype(np.int64), class_names=[str(i) for i in range(10)], name="digits")


def read_fashion_mnist(cfg: DataConfig) -> RawData:
    for folder in fashion_mnist_dirs():
        if _idx_files(folder).get(("train", "images")):
            raw = read_idx_folder(folder)
            raw.class_names, raw.name = FASHION_MNIST_CLASSES, "fashion-mnist"
            return raw
    looked = ", ".join(str(d) for d in fashion_mnist_dirs())
    raise DataError(
        f"Fashion-MNIST was not found (looked in {looked}); install it with "
        "`sudo apt-get install dataset-fashion-mnist`, or put its four IDX files in "
        f"{fashion_mnist_dirs()[-2]}"
    )


DATASETS: dict[str, Callable[[DataConfig], RawData]] = {
    "digits": read_digits,
    "fashion-mnist": read_fashion_mnist,
}

_IDX_NAME = re.compile(r"^(train|t10k|test)[-_.](images|labels)[-_.]idx[13][-_.]ubyte(\.gz)?$")
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _idx_files(folder: Path) -> dict[tuple[str, str], Path]:
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
    files = _idx_files(folder)
    if ("train", "images") not in files:
        raise DataError(f"{folder} has no train-images-idx3-ubyte[.gz] file")
    get = lambda split, what: read_idx(files[(split, what)]) if (split, what) in files else None  # noqa: E731
    return RawData(
        get("train", "images"), get("train", "labels"), get("test", "images"), get("test", "labels"),
        name=folder.name,
    )  # fmt: skip


def _image_color(im) -> str:
    bands = im.getbands()
    return "rgb" if len(bands) >= 3 or "P" in bands else "gray"


def open_image(path: Path, *, color: str | None = None, size: tuple[int, int] | None = None):
    """Read one image file -> (uint8 array (H, W) or (H, W, 3), color found). Raises DataError."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            found = _image_color(im)
            im = im.convert("RGB" if (color or found) == "rgb" else "L")
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        raise DataError(f"cannot read image {path}: {e}") from None
    if size is not None and im.size != (size[1], size[0]):
        im = ImageOps.fit(im, (size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(im), found


def read_image_folder(folder: Path, cfg: DataConfig) -> RawData:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise DataError(f"{folder} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    rel = [p.relative_to(folder) for p in files]
    labelled = all(len(r.parts) >= 2 for r in rel)
    size = (cfg.image_size, cfg.image_size) if cfg.image_size else None
    arrays, colors = [], {}
    for p in _progress(files, "reading images"):
        arr, found = open_image(p, color=cfg.color, size=size)
        colors.setdefault(found, p)
        arrays.append(arr)
    if cfg.color is None and len(colors) > 1:
        raise DataError(
            f"{folder} mixes grayscale images (e.g. {colors['gray']}) and colour images "
            f"(e.g. {colors['rgb']}); pass --color gray or --color rgb to convert them all"
        )
    shapes = {a.shape[:2]: p for a, p in zip(arrays, files)}
    if len(shapes) > 1:
        (s1, p1), (s2, p2) = list(shapes.items())[:2]
        raise DataError(
            f"images differ in size ({s1[1]}x{s1[0]} in {p1}, {s2[1]}x{s2[0]} in {p2}); "
            "pass --image-size N to resize them all to N x N"
        )
    x = np.stack(arrays)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)  # (N, C, H, W) uint8
    y, names = None, None
    if labelled:
        names = sorted({r.parts[0] for r in rel})
        y = np.array([names.index(r.parts[0]) for r in rel], dtype=np.int64)
    return RawData(x, y, class_names=names, name=folder.name)


def read_arrays(path: Path) -> RawData:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"cannot read arrays from {path}: {e}") from None
    if isinstance(loaded, np.ndarray):
        return RawData(loaded, name=path.stem)
    with loaded:
        keys = list(loaded.keys())
        pick = lambda *names: next((loaded[k] for k in names if k in keys), None)  # noqa: E731
        x = pick("x", "x_train", "images", "data", "X")
        if x is None:
            if not keys:
                raise DataError(f"{path} holds no arrays")
            x = loaded[keys[0]]
        return RawData(
            x, pick("y", "y_train", "labels", "targets"), pick("x_test"), pick("y_test"), name=path.stem
        )


def _progress(items, desc):
    if len(items) < 2000:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="img")


# -- validation ---------------------------------------------------------------------------------


def as_examples(arr: np.ndarray, where: str) -> tuple[np.ndarray, bool]:
    """Array (N, ...) -> (float32 (N, C, H, W) or (N, D), is_image). Raises DataError."""
    arr = np.asarray(arr)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DataError(f"{where} must hold numbers, not {arr.dtype}")
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


def _resolve(source: str) -> Callable[[DataConfig], RawData]:
    if source in DATASETS:
        return DATASETS[source]
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(
            f"no such file or folder: {source} (built-in datasets: {', '.join(DATASETS)})"
        )
    if path.is_dir():
        if _idx_files(path):
            return lambda cfg: read_idx_folder(path)
        return lambda cfg: read_image_folder(path, cfg)
    if path.suffix.lower() in (".npy", ".npz"):
        return lambda cfg: read_arrays(path)
    raise DataError(f"{source}: expected a folder, a .npy/.npz file or one of {', '.join(DATASETS)}")


def load_data(cfg: DataConfig) -> DataSplits:
    """Read, validate and split. The same DataConfig always gives the same splits."""
    raw = _resolve(cfg.source)(cfg)
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
        train, val, test, name=raw.name or cfg.source, is_image=is_image,
        class_names=class_names, official_test=x_test is not None,
    )  # fmt: skip


def _compact_labels(y, y_test, names):
    """Map arbitrary integer labels to 0..K-1, keeping their names."""
    values = np.unique(y if y_test is None else np.concatenate([y, y_test]))
    if names is not None and len(names) >= values.max() + 1 and values.min() >= 0:
        return y, y_test, list(names)  # already 0..K-1 with names
    lookup = {v: i for i, v in enumerate(values.tolist())}
    remap = lambda a: None if a is None else np.array([lookup[v] for v in a.tolist()], dtype=np.int64)  # noqa: E731
    return remap(y), remap(y_test), [str(v) for v in values.tolist()]


def load_image(path: str | Path, data_shape: list[int]) -> Tensor:
    """A user's image file -> (C, H, W) float32 in [0, 1], converted and resized to data_shape."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such image file: {path}")
    if len(data_shape) != 3 or data_shape[0] not in (1, 3):
        raise DataError(f"this model was trained on data of shape {tuple(data_shape)}, not on images")
    c, h, w = data_shape
    arr, _ = open_image(path, color="rgb" if c == 3 else "gray", size=(h, w))
    t = torch.from_numpy(arr.astype(np.float32) / 255.0)
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1)


# -- data to score or clean with a trained model --------------------------------------------------

SPLITS = ("train", "val", "test", "all")


def split_spec(spec: str) -> tuple[str, str | None]:
    """"fashion-mnist:test" -> ("fashion-mnist", "test"); a spec without a split suffix -> (spec, None)."""
    source, sep, split = spec.rpartition(":")
    if sep and source and split in SPLITS:
        return source, split
    return spec, None


def load_split(spec: str, *, like: DataConfig | None = None) -> Dataset:
    """One split of a source, "name:split" (fashion-mnist:test, data.npz:val, folder/:all).

    like: a run's DataConfig. Its split settings (fractions, seed, image size, colour) are reused
    so that "digits:val" is the very validation split that run saw; its excluded labels too when
    the source is the run's own."""
    source, split = split_spec(spec)
    if split is None:
        raise DataError(f"{spec!r} names no split; write it as SOURCE:SPLIT with SPLIT one of {', '.join(SPLITS)}")
    cfg = DataConfig(source=source)
    if like is not None:
        cfg = replace(like, source=source, exclude_labels=like.exclude_labels if source == like.source else None)
    return load_data(cfg).split(split)


def image_files(folder: Path) -> list[Path]:
    """Every image below a folder, sorted (the order rows and outputs follow)."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


@dataclass
class Examples:
    """Inputs to score or clean: x (N, *shape), labels when known, and one name per row."""

    x: Tensor
    y: Tensor | None
    names: list[str]
    source: str

    def __len__(self) -> int:
        return self.x.shape[0]

    def take(self, index: Tensor) -> "Examples":
        """The rows at `index` (1-D integer tensor), in that order."""
        y = None if self.y is None else self.y[index]
        return Examples(self.x[index], y, [self.names[i] for i in index.tolist()], self.source)

    def limit(self, n: int | None, *, seed: int = 0) -> "Examples":
        """At most n rows, drawn at random with a seed, kept in their original order."""
        if n is None or len(self) <= n:
            return self
        return self.take(torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n].sort().values)

    def concat(self, other: "Examples") -> "Examples":
        y = None if (self.y is None or other.y is None) else torch.cat([self.y, other.y])
        return Examples(torch.cat([self.x, other.x]), y, self.names + other.names, f"{self.source} + {other.source}")


def read_examples(spec: str, *, data_shape: list[int], like: DataConfig | None = None) -> Examples:
    """What a user hands a trained model, checked against the shape it was trained on:
    SOURCE:SPLIT (one split, see load_split), a folder of images or one image file (converted
    and resized to data_shape; rows named by path), or any other source (every example, in file
    order; rows named by index)."""
    source, split = split_spec(spec)
    path = Path(spec).expanduser()
    if split is not None:
        d = load_split(spec, like=like)
        x, y, names = d.x, d.y, [f"{split}[{i}]" for i in range(len(d))]
    elif path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
        x, y, names = load_image(path, data_shape)[None], None, [path.name]
    elif path.is_dir() and not _idx_files(path):
        files = image_files(path)
        if not files:
            raise DataError(f"{spec} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        x = torch.stack([load_image(p, data_shape) for p in _progress(files, "reading images")])
        y, names = None, [str(p.relative_to(path)) for p in files]
    else:
        raw = _resolve(spec)(DataConfig(source=spec))
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
