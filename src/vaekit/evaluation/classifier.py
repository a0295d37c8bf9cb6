"""A small classifier per dataset, whose penultimate features define "FD (classifier features)".

FID needs Inception weights, which cannot be downloaded here, and Inception features of 28x28
greyscale clothes mean little anyway. So each labelled dataset gets its own small classifier,
trained once on its training split and cached on disk; the Frechet distance between two sets
of examples is measured on its features (vaekit.evaluation.sample_quality.feature_frechet_distance). Numbers are
comparable between runs on the same data (same cache key), never across datasets, and never
with published FIDs.

Cache: $VAEKIT_CACHE/classifiers/<key>/ (default ~/.cache/vaekit), holding model.safetensors
and meta.json. The key hashes the classifier version, the data config and the training split's
contents, so changed data never reuses a stale classifier.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor, nn
from tqdm import tqdm

from ..atomic import atomic_write, write_json
from ..config import DataConfig
from ..core.modes import evaluating
from ..core.nets import ConvEncoder, MLPEncoder, auto_channels
from ..data import DataSplits
from ..errors import DataError

CLASSIFIER_VERSION = 1  # part of the cache key: bump when the architecture or training changes
FEATURE_DIM = 128
# at least EPOCHS passes and at least MIN_STEPS steps (small data sets need more passes)
EPOCHS, MIN_STEPS, BATCH_SIZE, LR, SEED = 3, 1000, 128, 1e-3, 0


def cache_dir() -> Path:
    return Path(os.environ.get("VAEKIT_CACHE") or Path.home() / ".cache" / "vaekit")


class FeatureClassifier(nn.Module):
    """x (B, *data_shape) -> features (B, FEATURE_DIM) -> logits (B, K). The trunk is vaekit's own
    encoder at half the VAE's channel widths (images) or one hidden layer (vectors)."""

    def __init__(self, data_shape: list[int], num_classes: int, *, feature_dim: int = FEATURE_DIM):
        super().__init__()
        self.data_shape, self.num_classes = list(data_shape), num_classes
        if len(data_shape) == 3:
            channels = [max(8, c // 2) for c in auto_channels(data_shape[1], data_shape[2])]
            self.trunk = ConvEncoder(self.data_shape, channels, feature_dim)
        else:
            self.trunk = MLPEncoder(self.data_shape, [256], feature_dim)
        self.head = nn.Linear(feature_dim, num_classes)
        self.meta: dict[str, Any] = {}

    def _features(self, x: Tensor) -> Tensor:
        return torch.relu(self.trunk(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self._features(x))

    def _batched(self, fn, x: Tensor, batch_size: int = 1024) -> Tensor:
        dev = next(self.parameters()).device
        with evaluating(self):
            return torch.cat([fn(x[i : i + batch_size].to(dev)).float().cpu() for i in range(0, len(x), batch_size)])

    def features(self, x: Tensor) -> Tensor:
        """(N, *data_shape) -> (N, FEATURE_DIM) penultimate activations, on the CPU."""
        return self._batched(self._features, x)

    def probabilities(self, x: Tensor) -> Tensor:
        return self._batched(lambda b: torch.softmax(self(b), 1), x)

    def predict(self, x: Tensor) -> Tensor:
        return self._batched(lambda b: self(b).argmax(1), x).long()

    def describe(self) -> str:
        acc = self.meta.get("test_accuracy")
        acc_s = "" if acc is None else f", test accuracy {acc:.1%}"
        return f"{self.meta.get('data', '?')} classifier, {FEATURE_DIM} penultimate features{acc_s} (key {self.meta.get('key', '?')})"


def cache_key(data_config: DataConfig, data: DataSplits) -> str:
    """Hash of the classifier version, the data config and the training split's contents."""
    h = hashlib.sha256()
    cfg = dataclasses.asdict(data_config)
    source = Path(str(cfg["source"])).expanduser()
    if source.exists():
        cfg["source"] = str(source.resolve())
    h.update(
        json.dumps(
            {
                "version": CLASSIFIER_VERSION,
                "feature_dim": FEATURE_DIM,
                "epochs": EPOCHS,
                "min_steps": MIN_STEPS,
                "data": cfg,
                "shape": data.shape,
            },
            sort_keys=True,
        ).encode()
    )
    h.update(data.train.x.contiguous().numpy().tobytes())
    h.update(data.train.y.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def train_classifier(data: DataSplits, *, epochs: int | None = None, progress: bool = False) -> FeatureClassifier:
    """Train a FeatureClassifier on data.train (Adam, cross-entropy, fixed seed) for `epochs`
    (default: EPOCHS, or enough to take MIN_STEPS steps); its test accuracy is recorded in .meta."""
    if not data.has_labels:
        raise DataError(f"{data.name} has no labels, so no feature classifier (and no FD) can be trained on it")
    torch.manual_seed(SEED)
    net = FeatureClassifier(data.shape, data.num_classes)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(SEED)
    x, y = data.train.x, data.train.y
    t0 = time.perf_counter()
    steps = math.ceil(len(x) / BATCH_SIZE)
    epochs = epochs or max(EPOCHS, math.ceil(MIN_STEPS / steps))
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in tqdm(
            range(steps), desc=f"feature classifier, epoch {epoch + 1}/{epochs}", disable=not progress, leave=False
        ):
            idx = perm[i * BATCH_SIZE : (i + 1) * BATCH_SIZE]
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    net.meta = {
        "data": data.name,
        "num_classes": data.num_classes,
        "data_shape": data.shape,
        "epochs": epochs,
        "train_seconds": time.perf_counter() - t0,
        "n_train": len(x),
        "test_accuracy": float((net.predict(data.test.x) == data.test.y).double().mean())
        if data.test.y is not None
        else None,
    }
    return net


def get_classifier(
    data_config: DataConfig, data: DataSplits, *, cache: Path | None = None, progress: bool = False
) -> FeatureClassifier:
    """The cached feature classifier for these data, training (and caching) it the first time."""
    if not data.has_labels:
        raise DataError(f"{data.name} has no labels, so no feature classifier (and no FD) can be trained on it")
    key = cache_key(data_config, data)
    folder = Path(cache or cache_dir()) / "classifiers" / key
    net = FeatureClassifier(data.shape, data.num_classes)
    weights, meta_file = folder / "model.safetensors", folder / "meta.json"
    if weights.is_file() and meta_file.is_file():
        try:
            net.load_state_dict(st_load(weights.read_bytes()))
            net.meta = json.loads(meta_file.read_text())
            net.eval()
            return net
        except (SafetensorError, RuntimeError, ValueError, OSError):
            pass  # a damaged cache entry is retrained and overwritten
    net = train_classifier(data, progress=progress)
    net.meta["key"] = key
    atomic_write(weights, st_save({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}))
    write_json(meta_file, net.meta)
    return net
