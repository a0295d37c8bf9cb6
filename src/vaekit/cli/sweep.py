"""`vaekit sweep`: one model per beta (or one codec per lambda), the same seed and budget, then the
trade-off in numbers. Every training option of `vaekit train` is an option here too (generated
from the same fields)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from ..config import DataConfig, ModelConfig, TrainConfig
from ..errors import VaekitError
from ..workflows import rd_sweep
from ..workflows.sweep import FIXED_BY_SWEEP, results_table, run_sweep
from . import app
from .options import config_options


def float_list(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise VaekitError(f"{what} must be comma-separated numbers such as 0.5,1,2, not {text!r}") from None


def key_values(items: list[str]) -> dict[str, object]:
    """["kl_warmup=500", "hidden=[256,128]"] -> {"kl_warmup": 500, "hidden": [256, 128]} (JSON values, else text)."""
    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise VaekitError(f"--set takes KEY=VALUE such as kl_warmup=500, not {item!r}")
        try:
            out[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip().replace("-", "_")] = value
    return out


@app.command(name="sweep")
@config_options(ModelConfig, TrainConfig, DataConfig, exclude=FIXED_BY_SWEEP | {"kind", "source"})
def sweep_command(
    data: str = typer.Option("digits", help="Dataset, as for `vaekit train --data`."),
    beta: Optional[str] = typer.Option(
        None, help="Betas to train, comma-separated, e.g. 0.1,0.25,0.5,1,2,4,8.", show_default=False
    ),
    lmbda: Optional[str] = typer.Option(
        None,
        help="Instead of betas: codecs (--model codec) to train, one per lambda, comma-separated, e.g. "
        "0.003,0.01,0.03: bits per pixel against PSNR and SSIM on the test split, compressed for real.",
        show_default=False,
    ),
    epochs: int = typer.Option(10, help="Epochs per point (the same budget for every point)."),
    with_ae: bool = typer.Option(False, "--with-ae", help="Also train the deterministic AE as a reference point."),
    out: Path = typer.Option(Path("runs/sweep"), help="Sweep folder: one run folder per point, table and figures."),
    seed: int = typer.Option(0, help="Seed of every point."),
    fd_samples: Optional[int] = typer.Option(
        None, help="Samples for the FD (classifier features). (default: as many as test examples)", show_default=False
    ),
    iw_samples: int = typer.Option(
        0, help="Importance samples for the IWAE NLL column (0: no NLL; it is the slow part)."
    ),
    set_: list[str] = typer.Option(
        [],
        "--set",
        help="Any other `vaekit train` option for every point, KEY=VALUE (repeatable), e.g. --set kl_warmup=500.",
        show_default=False,
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or per-epoch lines."),
    *,
    options: dict[str, Any],  # the generated options the user gave (config_options)
) -> None:
    """Train one model per beta (and an AE with --with-ae) and measure the trade-off: rate-distortion,
    -ELBO, sample quality and active units against beta; or, with --lmbda, one codec per lambda and
    its bits per pixel, PSNR and SSIM. Re-running resumes an interrupted sweep."""
    options = {**key_values(set_), **options}
    if (beta is None) == (lmbda is None):
        raise VaekitError("give --beta (a VAE sweep) or --lmbda (a codec sweep), one of them")
    if lmbda is not None:
        if with_ae or fd_samples is not None or iw_samples:
            raise VaekitError("--with-ae, --fd-samples and --iw-samples belong to a beta sweep, not to --lmbda")
        rows = rd_sweep.run_rd_sweep(
            data,
            lmbdas=float_list(lmbda, "--lmbda"),
            out=out,
            epochs=epochs,
            seed=seed,
            progress=not quiet,
            log=typer.echo,
            **options,
        )
        typer.echo("")
        typer.echo(rd_sweep.results_table(rows))
        typer.echo(f"sweep folder: {out}  (table.md, results.json, rd_curve.png)")
        return
    rows = run_sweep(
        data,
        betas=float_list(beta, "--beta"),
        out=out,
        epochs=epochs,
        with_ae=with_ae,
        seed=seed,
        fd_samples=fd_samples,
        iw_samples=iw_samples,
        progress=not quiet,
        log=typer.echo,
        **options,
    )
    typer.echo("")
    typer.echo(results_table(rows))
    typer.echo(f"sweep folder: {out}  (table.md, results.json, rate_distortion.png, metrics_vs_beta.png, grid.png)")
