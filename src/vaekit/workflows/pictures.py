"""Pictures of one model on its test split, shared by the report and compare."""

from __future__ import annotations

import torch

from .. import plots
from ..core import sampling
from ..core.model import VAE
from .html import figure_png


def interpolation_pairs(data, n_pairs: int) -> list[tuple[int, int]]:
    """Pairs of test indices to walk between: different classes when labels exist."""
    n = len(data)
    if data.y is None:
        return [(2 * i % n, (2 * i + 1) % n) for i in range(n_pairs)]
    pairs, used = [], set()
    for i in range(n):
        if len(pairs) == n_pairs:
            break
        if i in used:
            continue
        j = next((j for j in range(i + 1, n) if j not in used and int(data.y[j]) != int(data.y[i])), None)
        if j is not None:
            pairs.append((i, j))
            used.update((i, j))
    return pairs


def interpolation_grid(model: VAE, data, pairs: list[tuple[int, int]], *, steps: int = 10) -> torch.Tensor:
    """(len(pairs) * steps, *data_shape): one lerp path between posterior means per row."""
    cond = model.config.num_classes > 0
    rows = []
    for i, j in pairs:
        ya = int(data.y[i]) if cond else None
        yb = int(data.y[j]) if cond else None
        rows.append(sampling.interpolate(model, data.x[i], data.x[j], steps=steps, ya=ya, yb=yb))
    return torch.cat(rows)


def reconstruction_grid(model: VAE, data, n: int = 16) -> tuple[torch.Tensor, int]:
    """Originals above reconstructions, 8 to a row -> (images, per_row)."""
    x = data.x[:n]
    y = data.y[:n] if (data.y is not None and model.config.num_classes) else None
    rec = sampling.reconstruct(model, x, y)
    per_row = min(len(x), 8)
    rows = []
    for i in range(0, len(x), per_row):
        rows += [x[i : i + per_row], rec[i : i + per_row]]
    return torch.cat(rows), per_row


def scatter_png(model: VAE, data, class_names, title: str) -> bytes:
    enc = sampling.encode_dataset(model, data)
    labels = None if "y" not in enc else enc["y"].numpy()
    return figure_png(
        lambda p: plots.latent_scatter(enc["mu"].numpy(), p, labels=labels, class_names=class_names, title=title)
    )
