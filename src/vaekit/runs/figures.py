"""The pictures every run ends with: reconstructions, samples, loss curves, latent scatter."""

from __future__ import annotations

from pathlib import Path

import torch

from .. import plots
from ..core.sampling import draw, encode_dataset, reconstruct, sample
from ..data import DataSplits
from .run import Run

SAMPLES = 64


def write_run_figures(run: Run, model, data: DataSplits, *, n: int = 16, seed: int = 0) -> dict[str, Path]:
    """The run's PNGs, each written atomically; -> {name: path}."""
    if data.table is not None:
        return write_table_figures(run, model, data, seed=seed)
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
    return {**paths, **_curves_and_latents(run, model, data, "test split")}


def _curves_and_latents(run: Run, model, data: DataSplits, shown: str) -> dict[str, Path]:
    """The loss curves (once there are metrics) and the test split's posterior means, as any run has them."""
    paths = {}
    rows = run.metrics()
    if rows:
        paths["loss_curves"] = plots.loss_curves(rows, run.figure_path("loss_curves"))
    enc = encode_dataset(model, data.test)
    labels = None if "y" not in enc else enc["y"].numpy()
    paths["latent_scatter"] = plots.latent_scatter(
        enc["mu"].numpy(),
        run.figure_path("latent_scatter"),
        labels=labels,
        class_names=data.class_names,
        title=f"{model.config.kind.upper()} latent space, {shown} (posterior means)",
    )
    return paths


TABLE_ROWS = 2000  # rows of real and synthetic data a table run's pictures compare (at most)


def write_table_figures(run: Run, model, data: DataSplits, *, seed: int = 0) -> dict[str, Path]:
    """A table run's PNGs: samples.png compares each column's distribution in the training rows
    with synthetic rows drawn from the model; reconstructions.png each test value with its
    reconstruction; loss curves and the latent scatter as for any run."""
    schema = data.table
    train = data.train.x[:TABLE_ROWS]
    real = schema.decode(train.numpy(), keep_missing=True)
    synthetic = schema.decode(draw(model, len(train), seed=seed).numpy())
    panels = [(n, k, a, b) for (n, k, a), (_, _, b) in zip(schema.panels(real), schema.panels(synthetic))]
    paths = {"samples": plots.column_distributions(panels, run.figure_path("samples"), labels=("data", "synthetic"))}
    test = data.test.x[:TABLE_ROWS]
    shown = schema.decode(test.numpy(), keep_missing=True)
    rec = schema.decode(reconstruct(model, test).numpy())
    pairs = [(n, k, a, b) for (n, k, a), (_, _, b) in zip(schema.panels(shown, aligned=True), schema.panels(rec))]
    paths["reconstructions"] = plots.column_reconstructions(pairs, run.figure_path("reconstructions"))
    return {**paths, **_curves_and_latents(run, model, data, "test rows")}
