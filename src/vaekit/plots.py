"""Tensors in, pictures out. Image grids are drawn with Pillow (fast, exact pixels);
curves and scatter plots with matplotlib's Agg backend (no screen needed)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no screen needed; chosen before pyplot is imported

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from torch import Tensor  # noqa: E402

from .atomic import atomic_write  # noqa: E402

MIN_TILE = 48  # small images (8x8 digits) are scaled up by an integer factor to at least this


def displayable(x: Tensor) -> Tensor:
    """(N, *shape) -> (N, C, H, W) in [0, 1]. Images pass through (clipped); feature vectors
    (N, D) become 1-pixel-high strips scaled to the batch's range."""
    x = x.detach().float().cpu()
    if x.ndim == 4:
        return x.clamp(0, 1)
    flat = x.reshape(x.shape[0], 1, 1, -1)
    lo, hi = flat.min(), flat.max()
    return (flat - lo) / (hi - lo).clamp_min(1e-12)


def image_grid(images: Tensor, *, nrow: int | None = None, pad: int = 2, min_tile: int = MIN_TILE) -> Image.Image:
    """(N, *shape) -> one PIL image with nrow tiles per row on a white background."""
    x = displayable(images)
    n, c, h, w = x.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    if h == 1:  # a feature vector drawn as a strip
        scale_h, scale_w = 16, max(1, math.ceil(256 / w))
    else:
        scale_h = scale_w = max(1, math.ceil(min_tile / h))
    th, tw = h * scale_h, w * scale_w
    canvas = np.ones((rows * (th + pad) + pad, nrow * (tw + pad) + pad, 3), dtype=np.uint8) * 255
    tiles = (x * 255).round().to(torch.uint8).numpy()  # (N, C, H, W)
    for i in range(n):
        t = tiles[i].transpose(1, 2, 0)  # (H, W, C)
        t = np.repeat(np.repeat(t, scale_h, 0), scale_w, 1)
        if t.shape[2] == 1:
            t = np.repeat(t, 3, 2)
        elif t.shape[2] == 4:
            t = t[:, :, :3]
        r, col = divmod(i, nrow)
        y0, x0 = pad + r * (th + pad), pad + col * (tw + pad)
        canvas[y0 : y0 + th, x0 : x0 + tw] = t
    return Image.fromarray(canvas)


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def save_grid(path: str | Path, images: Tensor, *, nrow: int | None = None) -> Path:
    """An image grid as a PNG file, written atomically."""
    return atomic_write(path, png_bytes(image_grid(images, nrow=nrow)))


def save_image(path: str | Path, x: Tensor) -> Path:
    """One image (C, H, W) in [0, 1] -> an 8-bit PNG at its own size (grey for C = 1, RGB for
    C = 3), written atomically."""
    arr = (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy().transpose(1, 2, 0)
    return atomic_write(path, png_bytes(Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr[:, :, :3])))


def figure_bytes(fig, *, dpi: int = 100) -> bytes:
    """Lay out, render and close a matplotlib figure -> PNG bytes."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format="png")
    plt.close(fig)
    return buf.getvalue()


def save_figure(fig, path: str | Path, *, dpi: int = 100) -> Path:
    """Lay out, write (atomically) and close a matplotlib figure; -> the path written."""
    return atomic_write(path, figure_bytes(fig, dpi=dpi))


def loss_curves(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Train and validation loss, and the recon / KL split, per epoch (nats per example)."""
    epochs = [r["epoch"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [r["train_loss"] for r in rows], "o-", label="train")
    ax1.plot(epochs, [r["val_loss"] for r in rows], "s-", label="validation")
    ax1.set(title="loss = recon + beta * KL", xlabel="epoch", ylabel="nats per example")
    ax1.legend()
    ax2.plot(epochs, [r["val_recon"] for r in rows], "o-", label="recon (val)")
    ax2.plot(epochs, [r["val_kl"] for r in rows], "s-", label="KL (val)")
    ax2.set(title="reconstruction vs KL", xlabel="epoch", ylabel="nats per example")
    ax2.legend()
    return save_figure(fig, path)


def project_2d(mu: np.ndarray) -> tuple[np.ndarray, str, str]:
    """(N, D) -> (N, 2) and axis names: the latents themselves when D <= 2, else PCA."""
    if mu.shape[1] == 1:
        return np.concatenate([mu, np.zeros_like(mu)], 1), "z[0]", ""
    if mu.shape[1] == 2 or mu.shape[0] < 2:  # PCA needs two points; one point is drawn on z[0], z[1]
        return mu[:, :2], "z[0]", "z[1]"
    pca = PCA(n_components=2).fit(mu)
    ev = pca.explained_variance_ratio_
    return pca.transform(mu), f"PC 1 ({ev[0]:.0%} of variance)", f"PC 2 ({ev[1]:.0%})"


def latent_scatter(
    mu: np.ndarray,
    path: str | Path,
    *,
    labels: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    title: str = "latent space (posterior means)",
) -> Path:
    xy, xlabel, ylabel = project_2d(np.asarray(mu, dtype=np.float64))
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=4, alpha=0.6)
    else:
        cmap = plt.get_cmap("tab10" if labels.max() < 10 else "tab20")
        for k in np.unique(labels):
            sel = labels == k
            name = class_names[k] if class_names is not None and k < len(class_names) else str(k)
            ax.scatter(xy[sel, 0], xy[sel, 1], s=4, alpha=0.6, color=cmap(int(k) % cmap.N), label=name)
        ax.legend(markerscale=3, fontsize=7, loc="best")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return save_figure(fig, path)


def latent_bars(
    values: Sequence[float], path: str | Path, *, ylabel: str, title: str, threshold: float | None = None
) -> Path:
    """One bar per latent dimension (e.g. mean KL in nats, or Cov_x(E_q[z_d])), largest first,
    with an optional threshold line (e.g. the active-unit criterion)."""
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(-v)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(v) + 1.5), 3.5))
    ax.bar(range(len(v)), v[order], color="tab:blue")
    ax.set_xticks(range(len(v)), [f"z{i}" for i in order], rotation=90 if len(v) > 16 else 0, fontsize=8)
    if threshold is not None:
        ax.axhline(threshold, color="tab:red", ls="--", lw=1, label=f"threshold {threshold:g}")
        ax.legend(fontsize=8)
    ax.set(title=title, ylabel=ylabel)
    return save_figure(fig, path)


# -- tables ------------------------------------------------------------------------------------------------

MAX_TABLE_PANELS = 16  # columns drawn per figure (the first ones)
MAX_BARS = 12  # categories drawn per column (the most frequent in the first set)


def _grid(n: int, size: float = 3.0):
    cols = min(4, max(1, n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, 0.8 * size * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def column_distributions(
    columns: Sequence[tuple[str, str, Sequence, Sequence]], path: str | Path, *, labels: tuple[str, str]
) -> Path:
    """One panel per table column comparing two sets of its values (e.g. real vs synthetic):
    columns = [(name, "number" or "category", values a, values b)]; numbers as overlaid density
    histograms on shared bins, categories as paired frequency bars."""
    columns = list(columns)[:MAX_TABLE_PANELS]
    fig, axes = _grid(len(columns))
    for ax, (name, kind, a, b) in zip(axes, columns):
        if kind == "number":
            a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
            both = np.concatenate([a, b])
            bins = np.histogram_bin_edges(both[np.isfinite(both)], bins=30)
            ax.hist(a, bins=bins, density=True, alpha=0.55, label=labels[0])
            ax.hist(b, bins=bins, density=True, alpha=0.55, label=labels[1])
        else:
            values, counts = np.unique(np.asarray(a, dtype=str), return_counts=True)
            keep = values[np.argsort(-counts)][:MAX_BARS]
            pos = np.arange(len(keep))
            ax.bar(pos - 0.2, _frequencies(a, keep), width=0.4, label=labels[0])
            ax.bar(pos + 0.2, _frequencies(b, keep), width=0.4, label=labels[1])
            ax.set_xticks(pos, [str(k)[:10] for k in keep], rotation=45, ha="right", fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    return save_figure(fig, path)


def _frequencies(values: Sequence, keep: np.ndarray) -> list[float]:
    v = np.asarray(values, dtype=str)
    return [float(np.mean(v == k)) if len(v) else 0.0 for k in keep]


def column_reconstructions(columns: Sequence[tuple[str, str, Sequence, Sequence]], path: str | Path) -> Path:
    """One panel per table column: its values against their reconstructions; numbers as a
    scatter around the diagonal, categories as a confusion matrix (rows: the data)."""
    columns = list(columns)[:MAX_TABLE_PANELS]
    fig, axes = _grid(len(columns))
    for ax, (name, kind, a, b) in zip(axes, columns):
        if kind == "number":
            a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
            ax.scatter(a, b, s=3, alpha=0.5)
            lo, hi = np.nanmin(a), np.nanmax(a)
            ax.plot([lo, hi], [lo, hi], color="tab:red", lw=1)
            ax.set(xlabel="data", ylabel="reconstruction")
            ax.set_title(name, fontsize=9)
        else:
            a, b = np.asarray(a, dtype=str), np.asarray(b, dtype=str)
            keep = list(np.unique(a))[:MAX_BARS]
            m = np.array([[np.sum((a == r) & (b == c)) for c in keep] for r in keep], dtype=np.float64)
            ax.imshow(m / np.maximum(m.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
            ax.set_xticks(range(len(keep)), [k[:8] for k in keep], rotation=45, ha="right", fontsize=6)
            ax.set_yticks(range(len(keep)), [k[:8] for k in keep], fontsize=6)
            ax.set_title(f"{name}: {float(np.mean(a == b)):.0%} the same", fontsize=9)
        ax.tick_params(labelsize=7)
    return save_figure(fig, path)


def correlation_heatmaps(
    names: Sequence[str], a: np.ndarray, b: np.ndarray, path: str | Path, *, titles: tuple[str, str]
) -> Path:
    """Two correlation matrices (k, k) side by side on the same scale [-1, 1]."""
    k = len(names)
    size = min(12.0, 2.5 + 0.35 * k)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size, size))
    for ax, m, title in zip(axes, (a, b), titles):
        im = ax.imshow(m, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_xticks(range(k), [n[:12] for n in names], rotation=90, fontsize=7)
        ax.set_yticks(range(k), [n[:12] for n in names], fontsize=7)
        ax.set_title(title)
    fig.colorbar(im, ax=list(axes), shrink=0.7)
    return atomic_write(path, _figure_bytes_untight(fig))


def _figure_bytes_untight(fig) -> bytes:
    """A figure with a colorbar shared by several axes (tight_layout would warn about it)."""
    buf = io.BytesIO()
    fig.savefig(buf, dpi=100, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
