"""The beta trade-off, measured: one model per beta (and an AE point), the same seed, data
and budget, then the rate-distortion curve, ELBO and sample quality against beta, active
units against beta, samples and reconstructions side by side, and a table.

    from vaekit.workflows.sweep import run_sweep
    rows = run_sweep("fashion-mnist", betas=[0.1, 1, 4], out="runs/sweep", epochs=10, arch="mlp")

The sweep folder (vaekit.runs.sweep_folder) holds one ordinary run folder per point; every point
is trained by vaekit.runs.train_run on data read once.

Resumable: a re-run skips finished points, resumes a half-trained one from its checkpoint
(exactly, see vaekit.training.loop.fit), restarts one killed before its first epoch ended, and
re-evaluates only points whose weights changed (cached in each run, keyed by its weights).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .. import plots
from ..config import DataConfig, RunConfig
from ..core.objectives import Objective
from ..core.sampling import reconstruct, sample
from ..data import DataSplits, load_data
from ..errors import VaekitError
from ..evaluation import classifier
from ..evaluation.latent import latent_metrics
from ..evaluation.likelihood import likelihood_metrics
from ..evaluation.sample_quality import sample_metrics
from ..runs import Run, load_run, train_run
from ..runs.setup import config_changes, new_config, split_options
from ..runs.sweep_folder import SweepFolder
from ..training.validation import evaluate_loss

EVAL_VERSION = 2  # bump when evaluate_point changes what it measures, so cached rows are redone
FIXED_BY_SWEEP = {"beta", "epochs", "seed", "patience"}  # the sweep sets these for every point alike
GRID_N = 8  # examples per row of grid.png


def point_name(beta: float | None) -> str:
    """beta -> its run folder's name: 0.1 -> "beta-0.1"; None (the AE point) -> "ae"."""
    return "ae" if beta is None else f"beta-{beta:g}"


def run_sweep(
    data: str,
    *,
    betas: list[float],
    out: str | Path,
    epochs: int = 10,
    with_ae: bool = False,
    seed: int = 0,
    fd_samples: int | None = None,
    iw_samples: int = 0,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    **options: Any,
) -> list[dict[str, Any]]:
    """Train (or finish) every point, evaluate it on the test split, write the table and figures.
    options: any other option of vaekit.train (arch, latent_dim, lr, kl_warmup, ...), the same
    for every point. fd_samples: samples for the FD (None: as many as test examples);
    iw_samples > 0 adds the IWAE NLL. Returns one row per point, betas in ascending order,
    the AE last."""
    log = log or (lambda msg: None)
    betas = _check_betas(betas)
    if epochs < 1:
        raise VaekitError("--epochs must be at least 1")
    if iw_samples < 0 or (fd_samples is not None and fd_samples < 2):
        raise VaekitError("--iw-samples must be >= 0 and --fd-samples >= 2")
    fixed = sorted(FIXED_BY_SWEEP & set(options))
    if fixed:
        raise VaekitError(f"a sweep sets {', '.join(fixed)} itself, the same for every point; do not pass them")
    options = {k: v for k, v in options.items() if v is not None}
    conditional = bool(options.pop("conditional", False))
    sections = split_options(options)  # checks every name before anything is written
    folder = SweepFolder(out)
    folder.claim({"data": data, "seed": seed, "options": {k: as_json(v) for k, v in options.items()}})
    data_cfg = DataConfig(source=data, **sections["data"])
    splits = load_data(data_cfg)

    points: list[float | None] = [*betas, *([None] if with_ae else [])]
    rows = []
    for i, beta in enumerate(points, 1):
        name = point_name(beta)
        t0 = time.perf_counter()
        train = {**sections["train"], "epochs": epochs, "seed": seed, **({} if beta is None else {"beta": beta})}
        config = new_config(
            data_cfg,
            splits,
            kind="ae" if beta is None else "vae",
            conditional=conditional,
            options={**sections, "train": train},
        )
        status = train_point(folder.point(name), config, splits, progress=progress)
        row = _evaluated(load_run(folder.point(name)), splits, seed=seed, fd_samples=fd_samples, iw_samples=iw_samples)
        rows.append(row)
        kl = "" if row["kl"] is None else f", KL {row['kl']:.2f}"
        log(
            f"[{i}/{len(points)}] {name}: {status} ({time.perf_counter() - t0:.0f}s); test recon {row['recon']:.2f}{kl} nats/example"
        )
    write_results(folder, rows)
    return rows


def as_json(value: Any) -> Any:
    """An option as sweep.json records it (structured values as their text, e.g. "25:10000")."""
    return str(value) if dataclasses.is_dataclass(value) else value


def _check_betas(betas: list[float]) -> list[float]:
    betas = [float(b) for b in betas]
    if not betas:
        raise VaekitError("give at least one beta, e.g. --beta 0.5,1,2")
    if any(not (math.isfinite(b) and b >= 0) for b in betas):
        raise VaekitError("every beta must be a finite number >= 0")
    names = [point_name(b) for b in betas]
    if len(set(names)) != len(names):
        raise VaekitError("the betas must differ from each other")
    return sorted(betas)


def train_point(path: Path, config: RunConfig, splits: DataSplits, *, progress: bool) -> str:
    """Bring one point to its epochs; say what was done."""
    epochs = config.train.epochs
    if path.is_dir() and load_run(path).has_checkpoint():
        saved = load_run(path)
        done = saved.trained_epochs()
        if done > epochs:
            raise VaekitError(f"{path} has trained {done} epochs, more than --epochs {epochs}; use the same budget")
        if done == epochs:
            return "already trained"
        changed = config_changes(saved.config, config)
        if changed:
            raise VaekitError(
                f"{path} was trained with other settings ({', '.join(changed)}); use the same settings "
                "to resume the sweep, or another --out"
            )
        train_run(config, splits, path, resume=True, progress=progress)
        return f"resumed at epoch {done + 1}"
    # a point killed before its first epoch ended has a config and nothing else: start it again
    train_run(config, splits, path, overwrite=True, progress=progress)
    return f"trained {epochs} epochs"


def _evaluated(run: Run, splits: DataSplits, *, seed: int, fd_samples: int | None, iw_samples: int) -> dict[str, Any]:
    """evaluate_point, cached in the point's run against its weights and the settings."""
    key = {"version": EVAL_VERSION, "seed": seed, "fd_samples": fd_samples, "iw_samples": iw_samples}
    row = run.cached("sweep_eval", key)
    if row is None:
        row = evaluate_point(run, splits, seed=seed, fd_samples=fd_samples, iw_samples=iw_samples)
        run.save_cache("sweep_eval", key, row)
    return row


def evaluate_point(
    run: Run, data: DataSplits, *, seed: int = 0, fd_samples: int | None = None, iw_samples: int = 0
) -> dict[str, Any]:
    """Test-split numbers of one point, nats per example: recon, KL and -ELBO (one-sample
    estimate with fixed noise; None for the AE, which has no ELBO); active units; the
    sample-quality distance FD (classifier features) between fd_samples samples from N(0, I)
    and as many test examples (None: the whole test split), with the floor a perfect
    generator would reach (training examples against the same test examples); and, with
    iw_samples > 0, the IWAE NLL with that many importance samples. The metrics are
    vaekit.evaluation's, so the sweep and `vaekit evaluate` agree."""
    t0 = time.perf_counter()
    model = run.model
    is_vae = model.stochastic
    beta = run.config.train.beta if is_vae else None
    losses = evaluate_loss(model, data.test, Objective(beta=1.0), seed=seed, clip=(0.0, 1.0) if data.is_image else None)
    row = {
        "point": point_name(beta),
        "model": model.config.kind,
        "beta": beta,
        "recon": losses["recon"],
        "kl": losses["kl"] if is_vae else None,
        "nelbo": losses["nelbo"] if is_vae else None,
        "active_units": latent_metrics(model, data.test)["active_units"],
    }
    if data.has_labels:  # the FD's feature classifier needs labels
        clf = classifier.get_classifier(run.config.data, data)
        s = sample_metrics(model, data, clf, split="test", n=fd_samples, seed=seed, k=None)  # FD only
        row.update(fd=s["fd_samples"], fd_train_reference=s["fd_train_reference"], fd_n=s["n"])
    if iw_samples > 0 and is_vae:
        lik = likelihood_metrics(model, data.test, iw_samples=iw_samples, seed=seed)
        row.update(nll=lik["nll"], iw_samples=iw_samples)
    history = run.metrics()
    row.update(
        epochs=history[-1]["epoch"],
        train_seconds=sum(r["seconds"] for r in history),
        eval_seconds=time.perf_counter() - t0,
    )
    return row


# -- table and figures ------------------------------------------------------------------------------

COLUMNS = [  # (key, header, format)
    ("point", "point", "{}"),
    ("beta", "beta", "{:g}"),
    ("kl", "KL (rate)", "{:.2f}"),
    ("recon", "recon (distortion)", "{:.2f}"),
    ("nelbo", "-ELBO", "{:.2f}"),
    ("fd", "FD (classifier features)", "{:.2f}"),
    ("active_units", "active units", "{}"),
    ("nll", "IWAE NLL", "{:.2f}"),
]


def _best(rows: list[dict[str, Any]], key: str) -> str | None:
    have = [r for r in rows if r.get(key) is not None]
    return min(have, key=lambda r: r[key])["point"] if have else None


def results_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of the sweep; the best -ELBO and the best FD are marked with *."""
    cols = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    best = {"nelbo": _best(rows, "nelbo"), "fd": _best(rows, "fd")}
    lines = ["| " + " | ".join(h for _, h, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for key, _, fmt in cols:
            v = r.get(key)
            cell = "-" if v is None else fmt.format(v)
            if key in best and best[key] == r["point"]:
                cell += " *"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    notes = ["", "Test split; KL, recon, -ELBO and NLL in nats per example (lower is better)."]
    floor = [r["fd_train_reference"] for r in rows if r.get("fd_train_reference") is not None]
    if floor:
        notes.append(f"FD floor (training examples vs the same test examples): {min(floor):.2f}.")
    if best["nelbo"]:
        notes.append(f"* best -ELBO: {best['nelbo']}")
    if best["fd"]:
        notes.append(f"* best sample quality (lowest FD): {best['fd']}")
    return "\n".join(lines + notes) + "\n"


def write_results(folder: SweepFolder, rows: list[dict[str, Any]]) -> dict[str, Path]:
    folder.save_results(rows, results_table(rows))
    return {
        "table": folder.table_path,
        "rate_distortion": rate_distortion_plot(rows, folder.figure_path("rate_distortion")),
        "metrics_vs_beta": metrics_vs_beta_plot(rows, folder.figure_path("metrics_vs_beta")),
        "grid": sweep_grid(folder, rows, folder.figure_path("grid")),
    }


def rate_distortion_plot(rows: list[dict[str, Any]], path: Path) -> Path:
    vae = [r for r in rows if r["beta"] is not None]
    fig, ax = plots.plt.subplots(figsize=(6, 4.5))
    ax.plot([r["kl"] for r in vae], [r["recon"] for r in vae], "o-")
    for r in vae:
        ax.annotate(f"beta={r['beta']:g}", (r["kl"], r["recon"]), textcoords="offset points", xytext=(5, 5), fontsize=8)
    for r in rows:
        if r["beta"] is None:
            ax.axhline(r["recon"], ls="--", color="gray", label="AE (no KL term)")
            ax.legend()
    ax.set(
        title="rate-distortion (test split)",
        xlabel="rate: KL(q(z|x) || p(z)), nats per example",
        ylabel="distortion: recon, nats per example",
    )
    return plots.save_figure(fig, path)


def metrics_vs_beta_plot(rows: list[dict[str, Any]], path: Path) -> Path:
    panels = [
        (k, h)
        for k, h in [
            ("nelbo", "-ELBO (nats/example)"),
            ("fd", "FD (classifier features)"),
            ("active_units", "active units"),
        ]
        if any(r.get(k) is not None for r in rows)
    ]
    fig, axes = plots.plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False)
    vae = [r for r in rows if r["beta"] is not None]
    for ax, (key, title) in zip(axes[0], panels):
        pts = [(r["beta"], r[key]) for r in vae if r.get(key) is not None]
        ax.plot([b for b, _ in pts], [v for _, v in pts], "o-")
        # beta = 0 cannot sit on a log axis; a symlog axis keeps it
        ax.set_xscale("symlog", linthresh=min([b for b, _ in pts if b > 0] or [1.0]))
        ax.set_xticks([b for b, _ in pts], [f"{b:g}" for b, _ in pts])
        ax.minorticks_off()
        for r in rows:
            if r["beta"] is None and r.get(key) is not None:
                ax.axhline(r[key], ls="--", color="gray", label="AE")
                ax.legend()
        ax.set(title=title, xlabel="beta")
    return plots.save_figure(fig, path)


def sweep_grid(folder: SweepFolder, rows: list[dict[str, Any]], path: Path, *, n: int = GRID_N, seed: int = 0) -> Path:
    """One row per point: n test reconstructions | n samples from N(0, I); originals on top."""
    fig, axes = plots.plt.subplots(len(rows) + 1, 2, figsize=(2 * n * 0.6, 0.75 * (len(rows) + 1) + 0.4), squeeze=False)
    x = None
    for i, r in enumerate(rows, 1):
        run = load_run(folder.point(r["point"]))
        model = run.model
        if x is None:
            test = run.data().test
            x, y = test.x[:n], test.y
            y = None if y is None else y[:n]
            axes[0, 0].imshow(plots.image_grid(x, nrow=n))
            axes[0, 0].set_title("test examples / reconstructions", fontsize=9)
            axes[0, 1].set_title("samples, z ~ N(0, I)", fontsize=9)
            axes[0, 0].set_ylabel("originals", rotation=0, ha="right", va="center", fontsize=9)
        cond = model.config.num_classes > 0
        rec = reconstruct(model, x, y if cond else None)
        ys = torch.arange(n) % model.config.num_classes if cond else None
        axes[i, 0].imshow(plots.image_grid(rec, nrow=n))
        axes[i, 1].imshow(plots.image_grid(sample(model, n, seed=seed, y=ys), nrow=n))
        label = "AE" if r["beta"] is None else f"beta={r['beta']:g}"
        axes[i, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for s in ax.spines.values():
            s.set_visible(False)
    return plots.save_figure(fig, path, dpi=110)
