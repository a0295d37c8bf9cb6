"""The pictures every run ends with: reconstructions, samples, loss curves, latent scatter."""

from __future__ import annotations

from pathlib import Path

import torch

from .. import plots
from ..core.sampling import encode_dataset, reconstruct, sample
from ..data import DataSplits
from .run import Run

SAMPLES = 64


def write_run_figures(run: Run, model, data: DataSplits, *, n: int = 16, seed: int = 0) -> dict[str, Path]:
    """The run's PNGs, each written atomically; -> {name: path}."""
    paths = {}
    test = data.test
    x, y = test.x[:n], None if test.y is None else test.y[:n]
    rec = reconstruct(model, x, y if model.config.num_classes else None)
    half = max(1, (len(x) + 1) // 2)
    blocks = [x[:half], rec[:half], x[half:], rec[half:]]  # originals above their reconstructions, two rows
    paths["reconstructions"] = plots.save_grid(
        run.figure_path("reconstructions"), torch.cat([b for b in blocks if len(b)]), nrow=half
    )
    ys = torch.arange(SAMPLES) % model.config.num_classes if model.config.num_classes else None
    paths["samples"] = plots.save_grid(run.figure_path("samples"), sample(model, SAMPLES, seed=seed, y=ys), nrow=8)
    rows = run.metrics()
    if rows:
        paths["loss_curves"] = plots.loss_curves(rows, run.figure_path("loss_curves"))
    enc = encode_dataset(model, test)
    labels = None if "y" not in enc else enc["y"].numpy()
    paths["latent_scatter"] = plots.latent_scatter(
        enc["mu"].numpy(),
        run.figure_path("latent_scatter"),
        labels=labels,
        class_names=data.class_names,
        title=f"{model.config.kind.upper()} latent space, test split (posterior means)",
    )
    return paths
