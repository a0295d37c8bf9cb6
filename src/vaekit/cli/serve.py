"""`vaekit serve`: the latent space explorer in the browser."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..serve import serve as run_server
from . import app
from .generate import RUN_ARG


@app.command()
def serve(
    run: Path = RUN_ARG,
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback unless you say otherwise)."),
    port: int = typer.Option(8000, help="Port to listen on."),
    device: str = typer.Option("cpu", help="cpu, cuda, mps or auto."),
    max_upload_mb: float = typer.Option(8.0, help="Largest image upload accepted, in MiB."),
    map_points: int = typer.Option(10_000, help="Test images shown on the latent map (a seeded random subset)."),
    prior: Optional[str] = typer.Option(
        None,
        help="Draw samples from: standard (N(0, I)), gmm, vae or diffusion (fitted with `vaekit fit-prior`). (default: the prior fitted last, else standard)",
        show_default=False,
    ),
) -> None:
    """Explore a run in the browser: samples, latent sliders, the latent map, interpolation, uploads."""
    run_server(
        run,
        host=host,
        port=port,
        device=device,
        max_upload_mb=max_upload_mb,
        map_points=map_points,
        prior=prior,
        echo=typer.echo,
    )
