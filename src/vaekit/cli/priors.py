"""`vaekit fit-prior`: fit a sampling prior on a trained run's codes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..workflows.fit_prior import DIFFUSION_STEPS
from ..workflows.fit_prior import fit_prior as fit_prior_fn
from . import app
from .options import int_list


@app.command("fit-prior")
def fit_prior(
    run: Path = typer.Argument(..., help="A run folder written by `vaekit train`.", show_default=False),
    kind: str = typer.Option(
        "gmm",
        help="gmm (a Gaussian mixture), vae (a second-stage VAE, Dai & Wipf 2019) or diffusion (flow matching "
        "on the codes, a latent diffusion model; resumes when interrupted).",
    ),
    components: int = typer.Option(10, help="gmm: number of mixture components."),
    covariance: str = typer.Option("full", help="gmm: full, diag, tied or spherical covariances."),
    fit_on: str = typer.Option(
        "mean", help="Codes to fit: mean (posterior means) or sample (one z ~ q(z|x) per example)."
    ),
    epochs: Optional[int] = typer.Option(
        None, help="vae, diffusion: training epochs. (default: 30 for vae, 100 for diffusion)", show_default=False
    ),
    hidden: Optional[str] = typer.Option(
        None,
        help="vae: MLP widths of the second stage; diffusion: one width per residual block, all equal. "
        "(default: 256,256 for vae, 256,256,256 for diffusion)",
        show_default=False,
    ),
    steps: int = typer.Option(
        DIFFUSION_STEPS, help="diffusion: Heun steps of its sampler (2 network evaluations each; 10-50 is plenty)."
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
        steps=steps,
        seed=seed,
        device=device,
        progress=not quiet,
    )
    bound = {"vae": " (ELBO, a lower bound)", "diffusion": f" (probability-flow ODE, {steps} steps)"}.get(kind, "")
    typer.echo(
        f"fitted a {kind} prior on {info['n_codes']} codes ({info['fit_on']}s) in {info['seconds']:.0f}s; "
        f"validation codes' mean log-density {info['val_log_density']:.2f} nats{bound} "
        f"vs {info['val_log_density_standard']:.2f} under N(0, I)"
    )
    typer.echo(f"stored in {run / 'priors'}; `vaekit sample {run}` now uses it (--prior standard for N(0, I))")
