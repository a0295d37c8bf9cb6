"""Commands for anomaly detection and denoising: score, fit-background, denoise."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ..config import Corruption, TrainConfig, structured
from ..errors import VaekitError
from ..evaluation.ood import format_table
from ..evaluation.scores import COMPRESSORS, SCORE_DESCRIPTIONS, available_scores, check_scorable
from ..runs import load_run
from ..workflows import anomaly
from ..workflows.denoising import denoise_files
from . import app
from .options import config_options, int_list

RUN_ARG = typer.Argument(..., help="A run folder written by `vaekit train`.", show_default=False)
BACKGROUND_OPTIONS = ("epochs", "time_limit", "device", "precision", "log")  # how long and where; the rest is the run's
SPEC = "a folder of images, an image, SOURCE:SPLIT (e.g. fashion-mnist:test), an .npy/.npz file, or a table"


@app.command()
def score(
    run: Path = RUN_ARG,
    data: Optional[str] = typer.Option(None, help=f"Examples to score and flag: {SPEC}.", show_default=False),
    out: Optional[Path] = typer.Option(
        None,
        help="CSV to write with --data: one row per example, every score, flagged. (default: scores.csv)",
        show_default=False,
    ),
    in_data: Optional[str] = typer.Option(
        None, help="Evaluation: in-distribution examples. (default: the run's test split)", show_default=False
    ),
    out_data: Optional[str] = typer.Option(
        None, help=f"Evaluation: out-of-distribution examples, {SPEC}.", show_default=False
    ),
    anomaly_label: Optional[str] = typer.Option(
        None,
        help="Evaluation: examples of --in-data with these labels (comma-separated) are the anomalies. (default: the run's --exclude-label classes)",
        show_default=False,
    ),
    report: Optional[Path] = typer.Option(
        None,
        help="Evaluation: folder for metrics.json, report.md, roc.png, histograms.png, scores.csv.",
        show_default=False,
    ),
    iw_samples: int = typer.Option(
        0, help="Importance samples k for nll_iw (k >= 2; 0: none). complexity and llr then use it instead of nelbo."
    ),
    compressor: str = typer.Option("png", help=f"Code length for the complexity score: {' or '.join(COMPRESSORS)}."),
    flag_by: Optional[str] = typer.Option(
        None,
        help=f"Score that flags anomalies: {', '.join(SCORE_DESCRIPTIONS)}. (default: ensemble, the mean rank-normalised score of recon_error, the NLL and complexity; recon_error for an AE)",
        show_default=False,
    ),
    fpr: float = typer.Option(0.05, help="Fraction of the run's validation split the threshold flags."),
    background: bool = typer.Option(
        True,
        "--background/--no-background",
        help="Use RUN/background (from `vaekit fit-background`) for the llr score when it exists.",
    ),
    max_examples: Optional[int] = typer.Option(
        None, help="Score at most N random examples of each data set. (default: all)", show_default=False
    ),
    batch_size: int = typer.Option(256, help="Examples per batch."),
    seed: int = typer.Option(0, help="Seed of the posterior samples (and of --max-examples)."),
    device: str = typer.Option("cpu", help="auto, cpu, cuda or mps."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Anomaly scores per example (--data), or how well each score separates in from out data."""
    evaluating = any(v is not None for v in (in_data, out_data, anomaly_label, report))
    if data is not None and evaluating:
        raise VaekitError(
            "give either --data (score and flag examples) or --in-data/--out-data/--anomaly-label/--report (evaluate the scores), not both"
        )
    if data is None and not evaluating:
        raise VaekitError(
            "give --data SOURCE to score examples, or --out-data SOURCE (or --anomaly-label L) to evaluate the scores"
        )
    if evaluating and out is not None:
        raise VaekitError("--out is for --data; an evaluation writes its per-example scores to --report DIR/scores.csv")
    if max_examples is not None and max_examples < 1:
        raise VaekitError("--max-examples must be at least 1")
    if not 0.0 < fpr < 1.0:
        raise VaekitError("--fpr must lie strictly between 0 and 1")
    if batch_size < 1:
        raise VaekitError("--batch-size must be at least 1")
    r = load_run(run, device=device)
    model = r.model
    check_scorable(model)
    settings = anomaly.ScoreSettings(iw_samples=iw_samples, compressor=compressor, batch_size=batch_size, seed=seed)
    anomaly.pick_score(
        available_scores(model, iw_samples=iw_samples, background=True, ensemble=True), flag_by, model=model
    )
    bg = r.background() if background else None
    like = r.config.data
    progress = not quiet

    if not evaluating:
        ex = r.examples(data).limit(max_examples, seed=seed)
        for note in ex.notes:
            typer.echo(f"note: {note}")
        result = anomaly.score_data(
            r, ex, background=bg, settings=settings, flag_by=flag_by, fpr=fpr, progress=progress
        )
        path = result.write_csv(out or Path("scores.csv"))
        n_flag = int(result.flagged.sum())
        typer.echo(
            f"scored {len(ex)} examples ({', '.join(result.scores)}); {n_flag} flagged by {result.flag_by} "
            f"> {result.thresholds[result.flag_by]:.4g} (the threshold that flags {fpr:.0%} of the validation split)"
        )
        if bg is None and model.stochastic:
            typer.echo("no background model, so no llr score: `vaekit fit-background RUN` trains one")
        typer.echo(f"wrote {path}")
        return

    in_ex = r.examples(in_data or f"{like.source}:test")
    labels = int_list(anomaly_label, "--anomaly-label")
    if labels is None and out_data is None and in_ex.y is not None and like.exclude_labels:
        labels = list(like.exclude_labels)
        typer.echo(f"anomalies: the classes the run was trained without ({', '.join(map(str, labels))})")
    held = None
    if labels:
        in_ex, held = anomaly.split_by_labels(in_ex, labels)
    out_ex = r.examples(out_data) if out_data is not None else None
    if held is not None:
        out_ex = held if out_ex is None else held.concat(out_ex)
    if out_ex is None:
        raise VaekitError(
            "the evaluation needs out-of-distribution examples: pass --out-data SOURCE or --anomaly-label L"
        )
    in_ex, out_ex = in_ex.limit(max_examples, seed=seed), out_ex.limit(max_examples, seed=seed + 1)
    result = anomaly.ood_report(
        r, in_ex, out_ex, out_dir=report, background=bg, settings=settings, fpr=fpr, flag_by=flag_by, progress=progress
    )
    typer.echo(
        f"in: {in_ex.source} ({len(in_ex)}), out: {out_ex.source} ({len(out_ex)}); out = positive, higher score = more anomalous"
    )
    typer.echo(format_table(result["scores"]))
    if bg is None and model.stochastic:
        typer.echo("no background model, so no llr score: `vaekit fit-background RUN` trains one")
    if report is not None:
        typer.echo(f"wrote {report}/ (metrics.json, report.md, roc.png, histograms.png, scores.csv)")


@app.command("fit-background")
@config_options(TrainConfig, only=BACKGROUND_OPTIONS, default_text="the run's")
def fit_background(
    run: Path = RUN_ARG,
    perturbation: str = typer.Option(
        anomaly.DEFAULT_PERTURBATION,
        help="How training inputs are perturbed: uniform:P (Ren et al. 2019), saltpepper:P, mask:P or gaussian:SIGMA.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a background model already in RUN/background."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or per-epoch lines."),
    *,
    options: dict[str, Any],  # the generated training options the user gave (config_options)
) -> None:
    """Train the likelihood-ratio background model into RUN/background (enables the llr score)."""
    bg = anomaly.fit_background(
        run,
        perturbation=structured(perturbation, Corruption, "--perturbation"),
        overwrite=overwrite,
        progress=not quiet,
        **options,
    )
    typer.echo(f"background model trained on {perturbation}-perturbed inputs: {bg.path}")


@app.command()
def denoise(
    run: Path = RUN_ARG,
    input: str = typer.Option(..., "--input", help=f"Images to clean: {SPEC}.", show_default=False),
    out: Path = typer.Option(
        ..., "--out", help="Folder for the cleaned PNGs (a folder's relative paths are kept).", show_default=False
    ),
    batch_size: int = typer.Option(256, help="Images per batch."),
    device: str = typer.Option("cpu", help="auto, cpu, cuda or mps."),
) -> None:
    """Clean noisy images with a run trained with --denoise (reconstruction from the posterior mean)."""
    if batch_size < 1:
        raise VaekitError("--batch-size must be at least 1")
    r = load_run(run, device=device)
    paths = denoise_files(r, input, out, batch_size=batch_size)
    how = r.config.train.denoise
    typer.echo(
        f"wrote {len(paths)} cleaned image{'' if len(paths) == 1 else 's'} to {out}/"
        + ("" if how else "  (note: this run was not trained with --denoise; it only reconstructs)")
    )
