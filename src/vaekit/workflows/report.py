"""One self-contained HTML report per run: metrics, loss curves and every kind of picture, with
the images embedded as base64 PNGs so the file reads offline in any browser and can be mailed.

    vaekit.workflows.report.write_report("runs/fmnist")   # -> runs/fmnist/report.html
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import plots
from ..atomic import atomic_write
from ..core import sampling
from ..core.model import VAE
from ..core.priors import PRIOR_NAMES
from ..errors import VaekitError
from ..evaluation.evaluate import metric_rows
from ..evaluation.sample_quality import generate
from ..runs import Run, load_run
from . import tables
from .evaluate import evaluate_run
from .html import esc, figure, figure_png, grid_png, page, table
from .html import table as html_table
from .pictures import interpolation_grid, interpolation_pairs, reconstruction_grid, scatter_png


def metrics_table(res: dict[str, Any]) -> str:
    rows, warn = [], set()
    for i, (sec, metric, value, note) in enumerate(metric_rows(res)):
        if metric == "WARNING":
            warn.add(i)
            value, note = note, value
        rows.append([sec, metric, value, note])
    return table(rows, header=["section", "metric", "value", "note"], warn_rows=warn)


def saved_or_new_evaluation(
    run: Run, *, metrics_path: Path | None, iw_samples: int, progress: bool, prior=None, save: bool = True
) -> tuple[dict[str, Any], str]:
    """The run's saved evaluation (metrics_path, else the run's latest), or a new one (its
    samples drawn from `prior`), saved in the run when `save` -> (result, where it came from)."""
    if metrics_path is not None:
        path = Path(metrics_path)
        if not path.is_file():
            raise VaekitError(f"no such metrics file: {metrics_path}")
        try:
            res = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise VaekitError(f"{path} is not a vaekit evaluation file ({e}); run `vaekit evaluate` again") from None
        where = path
    else:
        res, where = run.evaluation(), run.evaluation_path
    if res is not None:
        if not isinstance(res, dict) or "model" not in res or "seconds" not in res:
            raise VaekitError(f"{where} is not a vaekit evaluation file; run `vaekit evaluate` again")
        return res, f"from {where}" + _stale_prior_note(res, prior)
    res = evaluate_run(run, iw_samples=iw_samples, progress=progress, prior=prior)
    if save:
        run.save_evaluation(res)
        return res, f"computed now with k={iw_samples} and saved to {run.evaluation_path}"
    return res, f"computed now with k={iw_samples}"


def _stale_prior_note(res: dict[str, Any], prior) -> str:
    """A saved evaluation whose FD used another prior than the report's samples (a prior was
    fitted since): say so rather than silently mixing the two."""
    saved = (res.get("samples") or {}).get("prior", "standard")
    now = "standard" if prior is None else prior.kind
    if not res.get("samples") or saved == now:
        return ""
    return (
        f"; its FD used samples from {PRIOR_NAMES.get(saved, saved)}, the samples below come from "
        f"{PRIOR_NAMES.get(now, now)}: run `vaekit evaluate` again to measure them"
    )


def write_report(
    run_dir: str | Path,
    *,
    out: str | Path | None = None,
    metrics_path: str | Path | None = None,
    iw_samples: int = 100,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
    prior: str | None = None,
) -> Path:
    """Write the run's report.html (or `out`): metrics table, loss curves, KL per dimension,
    reconstructions, samples, interpolations, traversals and the latent scatter. Metrics come
    from `vaekit evaluate`'s JSON when there is one (metrics_path, or the run's latest), else
    they are computed with iw_samples importance samples and saved in the run (unless the report
    goes elsewhere with `out`). Samples (and the FD computed now) come from `prior` (standard,
    gmm, vae or diffusion; None: the prior fitted last with `vaekit fit-prior`, else N(0, I))."""
    run = load_run(run_dir, device=device)
    out = Path(out) if out is not None else run.report_path
    if out.is_dir():
        raise VaekitError(f"--out {out} is a folder; give the path of the HTML file to write")
    model, data = run.model, run.data()
    sample_prior = run.prior(prior)
    res, source = saved_or_new_evaluation(
        run,
        metrics_path=metrics_path,
        iw_samples=iw_samples,
        progress=progress,
        prior=sample_prior,
        save=out == run.report_path,
    )
    sections = [
        ("Metrics", f"<p class=sub>{esc(source)}</p>" + metrics_table(res)),
        *_training_section(run),
        *_latent_section(res.get("latent")),
        *(
            _table_sections(run, model, data, sample_prior, seed)
            if data.table is not None
            else _picture_sections(model, data, res.get("latent"), sample_prior, seed)
        ),
        ("Configuration", _config_table(run)),
    ]
    cfg, info = run.config, run.info
    subtitle = (
        f"{cfg.model.kind.upper()}, {cfg.model.arch}, {cfg.model.likelihood} likelihood, latent "
        f"{cfg.model.latent_dim}, trained on {data.name} ({info.get('n_train', len(data.train))} examples); "
        f"run created {info.get('created', '?')}"
    )
    atomic_write(out, page(f"vaekit report: {run.path.resolve().name}", subtitle, sections))
    return out


def _training_section(run: Run) -> list[tuple[str, str]]:
    rows = run.metrics()
    if not rows:
        return []
    total = sum(r["seconds"] for r in rows)
    kept = run.kept_row()
    which = (
        "kept the last epoch (adversarial), validation loss"
        if kept.get("adv_d_loss") is not None
        else "best validation loss"
    )
    caption = (
        f"{len(rows)} epochs in {total:.0f} s; {which} {kept['val_loss']:.2f} nats/example at epoch {kept['epoch']}"
    )
    return [("Training", figure(figure_png(lambda p: plots.loss_curves(rows, p)), caption))]


def _latent_section(lat: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not lat:
        return []
    figs = []
    if lat.get("kl_per_dim") is not None:
        figs.append(
            figure(
                figure_png(
                    lambda p: plots.latent_bars(
                        lat["kl_per_dim"], p, ylabel="nats", title="mean KL(q(z_d|x) || N(0, 1)) per dimension"
                    )
                ),
                "KL per latent dimension, test split (largest first)",
            )
        )
    figs.append(
        figure(
            figure_png(
                lambda p: plots.latent_bars(
                    lat["activity"],
                    p,
                    ylabel="Cov_x(E_q[z_d])",
                    title="unit activity",
                    threshold=lat["active_unit_threshold"],
                )
            ),
            f"{lat['active_units']} of {lat['latent_dim']} units active (Burda et al. 2015)",
        )
    )
    return [("Latent health", "".join(figs))]


def _picture_sections(model: VAE, data, lat, sample_prior, seed: int) -> list[tuple[str, str]]:
    test = data.test
    grid, per_row = reconstruction_grid(model, test)
    sections = [
        (
            "Reconstructions",
            figure(
                grid_png(grid, nrow=per_row),
                "test examples (odd rows) and their reconstructions from the posterior mean (even rows)",
            ),
        )
    ]
    drawn = PRIOR_NAMES.get(sample_prior.kind, "the prior")
    sections.append(
        (
            "Samples",
            figure(
                grid_png(generate(model, 64, seed=seed, prior=sample_prior), nrow=8),
                f"64 decoded z ~ {drawn} (likelihood means), seed {seed}",
            ),
        )
    )
    pairs = interpolation_pairs(test, 6)
    if pairs:
        sections.append(
            (
                "Interpolations",
                figure(
                    grid_png(interpolation_grid(model, test, pairs), nrow=10),
                    "straight lines between the posterior means of two test examples; ends are reconstructions: "
                    + ", ".join(f"{i}->{j}" for i, j in pairs),
                ),
            )
        )
    order = _dims_by_importance(lat, model.latent_dim)[:10]
    trav = sampling.traverse(model, dims=order, span=3.0, steps=9, y=0 if model.config.num_classes else None)
    sections.append(
        (
            "Traversals",
            figure(
                grid_png(trav.flatten(0, 1), nrow=9),
                "one latent dimension per row, from -3 to +3 around z = 0, most informative first: "
                + ", ".join(f"z{d}" for d in order),
            ),
        )
    )
    kind = model.config.kind.upper()
    sections.append(
        (
            "Latent space",
            figure(
                scatter_png(model, test, data.class_names, f"{kind} latent space, test split (posterior means)"),
                "posterior means of the test split"
                + ("" if model.latent_dim <= 2 else ", first two principal components"),
            ),
        )
    )
    return sections


TABLE_ROWS = 2000  # rows of data and of synthetic data the table sections compare (at most)
SHOWN_ROWS = 10  # synthetic rows printed as a table


def _table_sections(run: Run, model: VAE, data, sample_prior, seed: int) -> list[tuple[str, str]]:
    """A table run's pictures: each column's distribution and the correlations in the training rows
    against synthetic rows, a few synthetic rows, reconstructions and the latent map."""
    schema = data.table
    real = schema.decode(data.train.x[:TABLE_ROWS].numpy(), keep_missing=True)
    n = real.num_rows
    synthetic = tables.sample_rows(run, n, seed=seed, prior=sample_prior)
    drawn = PRIOR_NAMES.get(sample_prior.kind, "the prior")
    panels = [(c, k, a, b) for (c, k, a), (_, _, b) in zip(schema.panels(real), schema.panels(synthetic))]
    names, corr_real = schema.correlations(real)
    _, corr_synthetic = schema.correlations(synthetic)
    head = synthetic.slice(0, SHOWN_ROWS).to_pylist()
    sections = [
        (
            "Columns: data and synthetic rows",
            figure(
                figure_png(lambda p: plots.column_distributions(panels, p, labels=("data", "synthetic"))),
                f"{n} training rows against {n} synthetic rows (z ~ {drawn}, every cell drawn from p(x|z), seed {seed})",
            )
            + "<p>The first synthetic rows:</p>"
            + html_table([[r[c] for c in synthetic.column_names] for r in head], header=synthetic.column_names),
        )
    ]
    if len(names) >= 2:
        heatmaps = figure_png(
            lambda p: plots.correlation_heatmaps(names, corr_real, corr_synthetic, p, titles=("data", "synthetic"))
        )
        gap = float(abs(corr_real - corr_synthetic)[np.triu_indices(len(names), 1)].mean())
        caption = f"Spearman correlations of the numeric and boolean columns; mean absolute difference {gap:.3f}"
        sections.append(("Correlations", figure(heatmaps, caption)))
    test = data.test.x[:TABLE_ROWS]
    shown = schema.decode(test.numpy(), keep_missing=True)
    rec = tables.reconstruct_rows(run, data.test.subset(torch.arange(len(test))))
    pairs = [(c, k, a, b) for (c, k, a), (_, _, b) in zip(schema.panels(shown, aligned=True), schema.panels(rec))]
    sections.append(
        (
            "Reconstructions",
            figure(
                figure_png(lambda p: plots.column_reconstructions(pairs, p)),
                "test rows against their reconstructions from the posterior mean (categories: rows are the data)",
            ),
        )
    )
    kind = model.config.kind.upper()
    title = f"{kind} latent space, test rows (posterior means)"
    caption = "posterior means of the test rows" + ("" if model.latent_dim <= 2 else ", first two principal components")
    sections.append(("Latent space", figure(scatter_png(model, data.test, data.class_names, title), caption)))
    return sections


def _config_table(run: Run) -> str:
    cfg = run.config.to_dict()
    rows = [[sec, k, json.dumps(v)] for sec in ("model", "train", "data") for k, v in cfg[sec].items()]
    return table(rows, header=["section", "setting", "value"])


def _dims_by_importance(lat: dict[str, Any] | None, d: int) -> list[int]:
    """Latent dimensions, most informative first: by KL for a VAE, by activity for an AE."""
    if not lat:
        return list(range(d))
    score = lat.get("kl_per_dim") or lat["activity"]
    return sorted(range(d), key=lambda i: -score[i])
