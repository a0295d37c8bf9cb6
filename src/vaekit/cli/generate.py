"""Commands that use a trained run: sample, reconstruct, interpolate, traverse, encode. A run
trained on a table samples, reconstructs and encodes to tables (.csv, .tsv, .parquet)."""

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
from ..data import load_image, write_table
from ..data.tables import TABLE_SUFFIXES
from ..errors import VaekitError
from ..runs import load_run
from ..workflows import tables
from ..workflows.pictures import reconstruction_grid
from . import app
from .options import float_list, int_list

RUN_ARG = typer.Argument(..., help="A run folder written by `vaekit train`.", show_default=False)


def table_path(out: Path) -> Path:
    """--out of a command that writes a table: refuse another extension or a folder, before any work."""
    if out.suffix.lower() not in TABLE_SUFFIXES:
        raise VaekitError(f"--out {out} must name a .csv, .tsv or .parquet file")
    if out.is_dir():
        raise VaekitError(f"--out {out} is a folder; give the path of the table to write")
    return out


def output_path(run, out: Path | None, name: str) -> Path:
    """--out checked for the run's kind of data: a table for a table run, a PNG otherwise
    (default: NAME.csv or NAME.png)."""
    if run.table() is not None:
        return table_path(out or Path(f"{name}.csv"))
    return png_path(out or Path(f"{name}.png"))


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
    temperatures: Optional[str] = typer.Option(
        None,
        help="Hierarchical VAE: the lower groups' temperatures, top-down, comma-separated (0: a group's prior "
        "mean). (default: every group at --temperature)",
        show_default=False,
    ),
    label: Optional[str] = typer.Option(
        None, help="Class to generate, by name or index (conditional models only).", show_default=False
    ),
    prior: Optional[str] = typer.Option(
        None,
        help="Draw z from: standard (N(0, I)), gmm, vae or diffusion (fitted with `vaekit fit-prior`). (default: the prior fitted last, else standard)",
        show_default=False,
    ),
    out: Optional[Path] = typer.Option(
        None,
        help="PNG to write; for a table run a .csv, .tsv or .parquet. (default: samples.png / samples.csv)",
        show_default=False,
    ),
) -> None:
    """Decode codes z drawn from the prior (N(0, I), or a prior fitted with `vaekit fit-prior`) into new
    examples; for a table run, new rows with every cell drawn from the model, in the input's columns."""
    r = load_run(run)
    out = output_path(r, out, "samples")
    p = r.prior(prior)
    y = None if label is None else r.class_index(label)
    if r.table() is not None:
        rows = tables.sample_rows(r, n, seed=seed, temperature=temperature, prior=p, label=y)
        typer.echo(
            f"wrote {write_table(rows, out)}  ({n} rows x {rows.num_columns} columns, prior {p.kind}, "
            f"temperature {temperature})"
        )
        return
    lower = None if temperatures is None else float_list(temperatures, "--temperatures")
    x = sampling.sample(r.model, n, temperature=temperature, y=y, seed=seed, prior=p, temperatures=lower)
    shown = temperature if lower is None else f"{temperature}, lower groups {','.join(map(str, lower))}"
    typer.echo(f"wrote {plots.save_grid(out, x)}  ({n} samples, prior {p.kind}, temperature {shown})")


@app.command()
def reconstruct(
    run: Path = RUN_ARG,
    n: Optional[int] = typer.Option(
        None,
        "-n",
        "--n",
        help="How many examples. (default: 16 images; every row of a table's split)",
        show_default=False,
    ),
    split: str = typer.Option("test", help="train, val or test."),
    out: Optional[Path] = typer.Option(
        None,
        help="PNG to write: originals above reconstructions; for a table run a .csv, .tsv or .parquet of the "
        "reconstructed rows. (default: reconstructions.png / reconstructions.csv)",
        show_default=False,
    ),
) -> None:
    """Encode examples to their posterior mean and decode them again."""
    r = load_run(run)
    out = output_path(r, out, "reconstructions")
    if n is not None and n < 1:
        raise VaekitError("-n must be at least 1")
    if r.table() is not None:
        data = r.data().split(split)
        data = data if n is None else data.subset(torch.arange(min(n, len(data))))
        rows = tables.reconstruct_rows(r, data)
        typer.echo(
            f"wrote {write_table(rows, out)}  ({rows.num_rows} {split} rows, decoded from their posterior means)"
        )
        return
    n = 16 if n is None else n
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
        Path("latents.npz"),
        help=".npz to write: mu, logvar (N, latent_dim), labels y when present; or a table (.csv, .tsv, .parquet) "
        "with the columns split, row, [y], mu_0.., logvar_0..",
    ),
) -> None:
    """Posterior mean and log-variance of every example."""
    if out.suffix.lower() != ".npz":
        table_path(out)
    r = load_run(run)
    model, splits = r.model, r.data()
    names = ["train", "val", "test"] if split == "all" else [split]
    parts = [(name, sampling.encode_dataset(model, splits.split(name))) for name in names]
    if out.suffix.lower() in TABLE_SUFFIXES:
        codes = tables.codes_table(parts)
        typer.echo(f"wrote {write_table(codes, out)}  ({codes.num_rows} examples x {model.latent_dim} dims)")
        return
    arrays = {k: torch.cat([p[k] for _, p in parts]).numpy() for k in parts[0][1]}
    arrays["split"] = np.concatenate([np.full(len(p["mu"]), name) for name, p in parts])
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(out, buf.getvalue())
    typer.echo(f"wrote {out}  ({len(arrays['mu'])} examples x {arrays['mu'].shape[1]} dims: {', '.join(arrays)})")
