"""Commands that use a trained run: sample, reconstruct, interpolate, traverse, encode."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import typer

from .. import plots
from ..atomic import atomic_write
from ..core import sampling
from ..core.model import VAE
from ..data import load_image
from ..errors import VaekitError
from ..runs import load_run
from ..workflows.pictures import reconstruction_grid
from . import app
from .options import int_list

RUN_ARG = typer.Argument(..., help="A run folder written by `vaekit train`.", show_default=False)


def png_path(out: Path) -> Path:
    """--out of a command that writes a PNG: refuse another extension or a folder, before any work."""
    if out.suffix.lower() != ".png":
        raise VaekitError(f"--out {out} must name a .png file")
    if out.is_dir():
        raise VaekitError(f"--out {out} is a folder; give the path of the .png file to write")
    return out


@app.command()
def sample(
    run: Path = RUN_ARG,
    n: int = typer.Option(64, "-n", "--n", help="How many samples."),
    seed: int = typer.Option(0, help="Seed of the latent draws."),
    temperature: float = typer.Option(1.0, help="Scale of the prior's standard deviation (< 1: safer, less varied)."),
    label: Optional[str] = typer.Option(
        None, help="Class to generate, by name or index (conditional models only).", show_default=False
    ),
    prior: Optional[str] = typer.Option(
        None,
        help="Draw z from: standard (N(0, I)), gmm, vae or diffusion (fitted with `vaekit fit-prior`). (default: the prior fitted last, else standard)",
        show_default=False,
    ),
    out: Path = typer.Option(Path("samples.png"), help="PNG to write."),
) -> None:
    """Decode codes z drawn from the prior (N(0, I), or a prior fitted with `vaekit fit-prior`) into new examples."""
    png_path(out)
    r = load_run(run)
    p = r.prior(prior)
    y = None if label is None else r.class_index(label)
    x = sampling.sample(r.model, n, temperature=temperature, y=y, seed=seed, prior=p)
    typer.echo(f"wrote {plots.save_grid(out, x)}  ({n} samples, prior {p.kind}, temperature {temperature})")


@app.command()
def reconstruct(
    run: Path = RUN_ARG,
    n: int = typer.Option(16, "-n", "--n", help="How many examples."),
    split: str = typer.Option("test", help="train, val or test."),
    out: Path = typer.Option(Path("reconstructions.png"), help="PNG to write: originals above reconstructions."),
) -> None:
    """Encode examples to their posterior mean and decode them again."""
    png_path(out)
    if n < 1:
        raise VaekitError("-n must be at least 1")
    r = load_run(run)
    grid, per_row = reconstruction_grid(r.model, r.data().split(split), n)
    typer.echo(f"wrote {plots.save_grid(out, grid, nrow=per_row)}  (originals above reconstructions)")


def _example(model: VAE, data, ref: str):
    """A test-set index or an image path -> (x (*data_shape), label or None)."""
    if ref.lstrip("-").isdigit():
        i = int(ref)
        if not 0 <= i < len(data):
            raise VaekitError(f"index {i} is out of range; the split has {len(data)} examples (0..{len(data) - 1})")
        return data.x[i], None if data.y is None else int(data.y[i])
    if model.config.num_classes:
        raise VaekitError("a conditional model needs labelled examples: give split indices, not image paths")
    return load_image(ref, model.data_shape), None


@app.command()
def interpolate(
    run: Path = RUN_ARG,
    a: str = typer.Option(..., "--a", help="First example: an index into --split, or an image path."),
    b: str = typer.Option(..., "--b", help="Second example: an index into --split, or an image path."),
    steps: int = typer.Option(10, help="Images along the path, both ends included."),
    method: str = typer.Option(
        "lerp", help="lerp (straight line) or slerp (great circle, stays near the prior's shell)."
    ),
    split: str = typer.Option("test", help="Split the indices refer to."),
    out: Path = typer.Option(Path("interpolation.png"), help="PNG to write."),
) -> None:
    """Walk the latent space between two examples' posterior means."""
    png_path(out)
    r = load_run(run)
    model = r.model
    data = r.data().split(split) if (a.lstrip("-").isdigit() or b.lstrip("-").isdigit()) else None
    xa, ya = _example(model, data, a)
    xb, yb = _example(model, data, b)
    cond = model.config.num_classes > 0
    x = sampling.interpolate(
        model, xa, xb, steps=steps, method=method, ya=ya if cond else None, yb=yb if cond else None
    )
    typer.echo(f"wrote {plots.save_grid(out, x, nrow=steps)}  ({method}, {steps} steps)")


@app.command()
def traverse(
    run: Path = RUN_ARG,
    dims: Optional[str] = typer.Option(
        None, help="Latent dimensions to vary, e.g. 0,1,2. (default: the first 10)", show_default=False
    ),
    range_: float = typer.Option(3.0, "--range", help="Vary each dimension from -R to +R around the base code."),
    steps: int = typer.Option(9, help="Images per dimension."),
    index: Optional[int] = typer.Option(
        None, help="Base code: the posterior mean of this test example. (default: z = 0)", show_default=False
    ),
    label: Optional[str] = typer.Option(
        None, help="Class, by name or index (conditional models only).", show_default=False
    ),
    out: Path = typer.Option(Path("traverse.png"), help="PNG to write: one row per dimension."),
) -> None:
    """Vary one latent dimension at a time and decode."""
    png_path(out)
    r = load_run(run)
    model = r.model
    x = None
    label = None if label is None else r.class_index(label)
    if index is not None:
        data = r.data().test
        x, y = _example(model, data, str(index))
        if label is None and model.config.num_classes:
            label = y
    grid = sampling.traverse(model, dims=int_list(dims, "--dims"), span=range_, steps=steps, x=x, y=label)
    typer.echo(f"wrote {plots.save_grid(out, grid.flatten(0, 1), nrow=steps)}  (rows: dimensions {dims or 'first 10'})")


@app.command()
def encode(
    run: Path = RUN_ARG,
    split: str = typer.Option("all", help="train, val, test, or all (with a `split` array naming each row's split)."),
    out: Path = typer.Option(
        Path("latents.npz"), help=".npz to write: mu, logvar (N, latent_dim), labels y when present."
    ),
) -> None:
    """Posterior mean and log-variance of every example."""
    r = load_run(run)
    model, splits = r.model, r.data()
    names = ["train", "val", "test"] if split == "all" else [split]
    parts = [(name, sampling.encode_dataset(model, splits.split(name))) for name in names]
    arrays = {k: torch.cat([p[k] for _, p in parts]).numpy() for k in parts[0][1]}
    arrays["split"] = np.concatenate([np.full(len(p["mu"]), name) for name, p in parts])
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(out, buf.getvalue())
    typer.echo(f"wrote {out}  ({len(arrays['mu'])} examples x {arrays['mu'].shape[1]} dims: {', '.join(arrays)})")
