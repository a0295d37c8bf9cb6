"""The built-in datasets: scikit-learn's 8x8 digits (no download) and Fashion-MNIST (IDX files
from a cache folder or Debian's dataset-fashion-mnist package)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

from ..config import DataConfig
from ..errors import DataError
from .datasets import RawData
from .idx import idx_files, read_idx_folder

FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def fashion_mnist_dirs() -> list[Path]:
    """Where we look for the Fashion-MNIST IDX files, in order."""
    dirs = []
    if os.environ.get("VAEKIT_DATA"):
        dirs.append(Path(os.environ["VAEKIT_DATA"]) / "fashion-mnist")
    dirs.append(Path.home() / ".cache" / "vaekit" / "fashion-mnist")
    dirs.append(Path("/usr/share/datasets/fashion-mnist"))
    return dirs


def fashion_mnist_available() -> bool:
    return any(idx_files(d).get(("train", "images")) for d in fashion_mnist_dirs())


def read_digits(cfg: DataConfig) -> RawData:
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8) in [0, 1]
    return RawData(x, d.target.astype(np.int64), class_names=[str(i) for i in range(10)], name="digits")


def read_fashion_mnist(cfg: DataConfig) -> RawData:
    for folder in fashion_mnist_dirs():
        if idx_files(folder).get(("train", "images")):
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
