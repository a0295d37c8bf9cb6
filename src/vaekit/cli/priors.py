"""`vaekit fit-prior`: fit a sampling prior on a trained run's codes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..workflows.fit_prior import fit_prior as fit_prior_fn
from . import app
from .options import int_list


@app.command("fit-prior")
def fit_prior(
    run: Path = typer.Argument(..., help="A run folder written by `vaekit train`.", show_default=False),
    kind: str = typer.Option("gmm", help="gmm (a Gaussian mixture) or vae (a second-stage VAE, Dai & Wipf 2019)."),
    components: int = typer.Option(10, help="gmm: number of mixture components."),
    covariance: str = typer.Option("full", help="gmm: full, diag, tied or spherical covariances."),
    fit_on: str = typer.Option(
        "mean", help="Codes to fit: mean (posterior means) or sample (one z ~ q(z|x) per example)."
    ),
    epochs: int = typer.Option(30, help="vae: training epochs of the second stage."),
    hidden: Optional[str] = typer.Option(
        None, help="vae: MLP widths of the second stage. (default: 256,256)", show_default=False
    ),
    seed: int = typer.Option(0, help="Seed of the fit."),
    device: str = typer.Option("cpu", help="cpu, cuda or mps."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Fit a prior on the aggregate posterior (the training split's codes); `sample` then draws from it."""
    info = fit_prior_fn(
        run,
        kind=kind,
        fit_on=fit_on,
        components=components,
        covariance=covariance,
        epochs=epochs,
        hidden=int_list(hidden, "--hidden"),
        seed=seed,
        device=device,
        progress=not quiet,
    )
    bound = " (ELBO, a lower bound)" if kind == "vae" else ""
    typer.echo(
        f"fitted a {kind} prior on {info['n_codes']} codes ({info['fit_on']}s) in {info['seconds']:.0f}s; "
        f"validation codes' mean log-density {info['val_log_density']:.2f} nats{bound} "
        f"vs {info['val_log_density_standard']:.2f} under N(0, I)"
    )
    typer.echo(f"stored in {run / 'priors'}; `vaekit sample {run}` now uses it (--prior standard for N(0, I))")
