"""Commands that measure runs: evaluate, compare, report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import VaekitError
from ..evaluation.evaluate import format_table
from ..runs import load_run
from ..training.devices import resolve_device
from ..workflows import compare as compare_mod
from ..workflows import report as report_mod
from ..workflows.evaluate import evaluate_run, save_evaluation
from . import app

RUN_ARG = typer.Argument(..., help="A run folder written by `vaekit train`.", show_default=False)


@app.command()
def evaluate(
    run: Path = RUN_ARG,
    iw_samples: Optional[int] = typer.Option(
        None,
        "--iw-samples",
        "-k",
        help="Importance samples per example for the NLL (IWAE estimator). (default: 1000; 100 for a hierarchical VAE)",
        show_default=False,
    ),
    split: str = typer.Option("test", help="train, val or test."),
    max_examples: Optional[int] = typer.Option(
        None, help="Evaluate on the first N examples of the split only. (default: all)", show_default=False
    ),
    n_samples: Optional[int] = typer.Option(
        None, help="Samples for the FD. (default: as many as the split's examples)", show_default=False
    ),
    sample_quality: bool = typer.Option(
        True,
        "--sample-quality/--no-sample-quality",
        help="Measure FD (classifier features); trains and caches a small classifier the first time.",
    ),
    batch_size: Optional[int] = typer.Option(
        None, help="Examples per IWAE batch. (default: sized from --iw-samples)", show_default=False
    ),
    seed: int = typer.Option(0, help="Seed of every random draw of the evaluation."),
    prior: Optional[str] = typer.Option(
        None,
        help="Draw the FD's samples from: standard (N(0, I)), gmm, vae or diffusion (fitted with `vaekit fit-prior`). (default: the prior fitted last, else standard)",
        show_default=False,
    ),
    device: str = typer.Option("cpu", help="cpu, cuda, mps or auto."),
    out: Optional[Path] = typer.Option(
        None,
        help="Also write the JSON here. (<run>/evaluation.json, which `vaekit report` reads, is always written)",
        show_default=False,
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Test-split -ELBO, importance-sampled NLL (nats/example, bits/dim), latent health, reconstruction and sample quality."""
    if out is not None and out.is_dir():
        raise VaekitError(f"--out {out} is a folder; give the path of the JSON file to write")
    r = load_run(run, device=str(resolve_device(device)))
    res = evaluate_run(
        r,
        prior=r.prior(prior) if sample_quality else None,
        sample_quality=sample_quality,
        iw_samples=iw_samples,
        split=split,
        max_examples=max_examples,
        n_samples=n_samples,
        batch_size=batch_size,
        seed=seed,
        progress=not quiet,
    )
    written, not_saved = save_evaluation(r, res, also=out)
    typer.echo(format_table(res))
    for note in [*res.get("notes", []), *([not_saved] if not_saved else [])]:
        typer.echo(f"note: {note}")
    typer.echo("wrote " + " and ".join(str(p) for p in written))


@app.command()
def compare(
    run_a: Path = typer.Argument(..., help="First run folder, e.g. an AE.", show_default=False),
    run_b: Path = typer.Argument(..., help="Second run folder on the same data, e.g. a VAE.", show_default=False),
    out: Path = typer.Option(Path("compare"), help="Folder to write compare.json, compare.html and PNGs to."),
    n_samples: Optional[int] = typer.Option(
        None, help="Samples (and test examples) per FD. (default: the whole test split)", show_default=False
    ),
    seed: int = typer.Option(0, help="Seed of the latent draws."),
    device: str = typer.Option("cpu", help="cpu, cuda, mps or auto."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Two runs on the same data side by side (AE vs VAE): samples from N(0, I), FD, interpolations, latents, reconstructions."""
    res = compare_mod.compare(
        run_a, run_b, out=out, n_samples=n_samples, seed=seed, device=str(resolve_device(device)), progress=not quiet
    )
    typer.echo(compare_mod.format_table(res))
    typer.echo(
        f"wrote {out / compare_mod.COMPARE_HTML}, {out / compare_mod.COMPARE_JSON} and PNGs ({res['seconds']:.0f}s)"
    )


@app.command()
def report(
    run: Path = RUN_ARG,
    out: Optional[Path] = typer.Option(
        None, help="HTML file to write. (default: <run>/report.html)", show_default=False
    ),
    metrics_file: Optional[Path] = typer.Option(
        None,
        "--metrics",
        help="An evaluation JSON from `vaekit evaluate --out`. (default: <run>/evaluation.json, computed now when missing)",
        show_default=False,
    ),
    iw_samples: int = typer.Option(
        100, "--iw-samples", "-k", help="Importance samples when the metrics must be computed now."
    ),
    seed: int = typer.Option(0, help="Seed of the samples shown."),
    prior: Optional[str] = typer.Option(
        None,
        help="Draw the samples from: standard (N(0, I)), gmm, vae or diffusion (fitted with `vaekit fit-prior`). (default: the prior fitted last, else standard)",
        show_default=False,
    ),
    device: str = typer.Option("cpu", help="cpu, cuda, mps or auto."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """One self-contained HTML file: metrics, loss curves, reconstructions, samples, interpolations, traversals, latents."""
    path = report_mod.write_report(
        run,
        out=out,
        metrics_path=metrics_file,
        iw_samples=iw_samples,
        seed=seed,
        device=str(resolve_device(device)),
        progress=not quiet,
        prior=prior,
    )
    typer.echo(f"wrote {path}  (self-contained: images embedded, opens offline)")
