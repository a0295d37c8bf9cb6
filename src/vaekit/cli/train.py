"""`vaekit train`: every option comes from the config fields (vaekit.config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ..config import DataConfig, ModelConfig, TrainConfig
from ..errors import VaekitError
from ..runs import Run, train
from ..training.distributed import is_main_process
from . import app
from .options import config_options

RUN = "Run folder"


@app.command(name="train", no_args_is_help=False)
@config_options(ModelConfig, TrainConfig, DataConfig)
def train_command(
    data: Optional[str] = typer.Option(
        None,
        help="Built-in dataset (digits, fashion-mnist), image folder, IDX folder, .npy/.npz file, or a table "
        f"(.csv, .tsv, .parquet). (default: {DataConfig.source})",
        rich_help_panel="Data",
        show_default=False,
    ),
    model: Optional[str] = typer.Option(
        None,
        help="vae, or ae for the deterministic autoencoder baseline. (default: vae)",
        rich_help_panel="Model",
        show_default=False,
    ),
    conditional: Optional[bool] = typer.Option(
        None,
        "--conditional/--unconditional",
        help="Condition encoder and decoder on the labels (CVAE). (default: unconditional)",
        rich_help_panel="Model",
        show_default=False,
    ),
    out: Optional[Path] = typer.Option(
        None, help="Run folder to write. (default: runs/<data>-<model>)", rich_help_panel=RUN, show_default=False
    ),
    resume: Optional[Path] = typer.Option(
        None,
        help="Continue this run folder exactly where it stopped, up to --epochs in total.",
        rich_help_panel=RUN,
        show_default=False,
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace the run already in --out (only the files vaekit wrote there).",
        rich_help_panel=RUN,
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="No progress bars or per-epoch lines.", rich_help_panel=RUN
    ),
    *,
    options: dict[str, Any],  # the generated options the user gave (config_options)
) -> None:
    """Train a VAE (or AE) and write its run folder: config, weights, metrics and pictures."""
    if resume is not None and out is not None and Path(out).resolve() != Path(resume).resolve():
        raise VaekitError("--resume continues a run in its own folder; drop --out (or give the same folder)")
    run = train(
        data,
        out=out,
        resume=resume,
        model=model,
        conditional=conditional,
        overwrite=overwrite,
        progress=not quiet,
        describe=None if quiet else describe_columns,
        **options,
    )
    summary(run)


def describe_columns(lines: list[str]) -> None:
    """What each column of a table became (override with --categorical, --numeric, --ignore, --label)."""
    if is_main_process():
        typer.echo("columns (change with --categorical, --numeric, --ignore, --label):")
        for line in lines:
            typer.echo(f"  {line}")


def summary(run: Run) -> None:
    if not is_main_process():  # under torchrun, rank 0 speaks for all
        return
    rows = run.metrics()
    kept = run.kept_row()
    total_s = sum(r["seconds"] for r in rows)
    adversarial = kept.get("adv_d_loss") is not None  # then the last epoch's weights are kept
    which = "kept the last epoch (adversarial), validation loss" if adversarial else "best validation loss"
    typer.echo(
        f"trained {rows[-1]['epoch']} epochs in {total_s:.0f}s; {which} {kept['val_loss']:.2f} "
        f"nats/example (recon {kept['val_recon']:.2f}, KL {kept['val_kl']:.2f}) at epoch {kept['epoch']}"
    )
    t = run.test_metrics
    typer.echo(
        f"test split: loss {t['loss']:.2f}, -ELBO {t['nelbo']:.2f} nats/example (recon {t['recon']:.2f}, KL {t['kl']:.2f})"
    )
    typer.echo(f"run folder: {run.path}  (config.json, model.safetensors, metrics.jsonl, *.png)")
