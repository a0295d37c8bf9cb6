"""One self-contained HTML report per run: metrics, loss curves and every kind of picture, with
the images embedded as base64 PNGs so the file reads offline in any browser and can be mailed.

    vaekit.report.write_report("runs/fmnist")   # -> runs/fmnist/report.html
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from . import checkpoint as ckpt
from . import metrics, plots, sampling
from .errors import VaekitError

REPORT_FILE = "report.html"
EVALUATION_FILE = "evaluation.json"

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.92em; }
td, th { border-bottom: 1px solid #eee; padding: 0.25em 0.8em 0.25em 0; text-align: left; vertical-align: top; }
th { color: #555; font-weight: 600; } td.v { font-family: ui-monospace, monospace; white-space: nowrap; }
tr.warn td { color: #a40000; font-weight: 600; }
figure { display: inline-block; margin: 0.5em 1.5em 0.5em 0; vertical-align: top; }
figcaption { color: #555; font-size: 0.9em; max-width: 560px; }
img { image-rendering: pixelated; max-width: 100%; }
.side { display: flex; gap: 2em; flex-wrap: wrap; }
"""


# -- HTML pieces (used by vaekit.compare too) -----------------------------------------------------


def esc(text: Any) -> str:
    return html.escape(str(text))


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def grid_png(images: torch.Tensor, *, nrow: int | None = None) -> bytes:
    buf = io.BytesIO()
    plots.image_grid(images, nrow=nrow).save(buf, format="PNG")
    return buf.getvalue()


def figure_png(draw: Callable[[Path], Path]) -> bytes:
    """PNG bytes of a plots.* function that writes to a path."""
    with tempfile.TemporaryDirectory() as tmp:
        return Path(draw(Path(tmp) / "figure.png")).read_bytes()


def figure(png: bytes, caption: str) -> str:
    return f'<figure><img src="{png_data_uri(png)}" alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption></figure>'


def table(rows: list[list[Any]], *, header: list[str] | None = None, warn_rows: set[int] = frozenset()) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
    for i, row in enumerate(rows):
        cls = ' class="warn"' if i in warn_rows else ""
        cells = "".join(f'<td{" class=v" if j == len(row) - 2 and len(row) > 2 else ""}>{esc(c)}</td>' for j, c in enumerate(row))
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def metrics_table(res: dict[str, Any]) -> str:
    rows, warn = [], set()
    for i, (sec, metric, value, note) in enumerate(metrics.metric_rows(res)):
        if metric == "WARNING":
            warn.add(i)
            value, note = note, value
        rows.append([sec, metric, value, note])
    return table(rows, header=["section", "metric", "value", "note"], warn_rows=warn)


def page(title: str, subtitle: str, sections: list[tuple[str, str]]) -> str:
    body = "\n".join(f"<h2>{esc(h)}</h2>\n{content}" for h, content in sections)
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>\n'
        f'<body><h1>{esc(title)}</h1><p class="sub">{esc(subtitle)}</p>\n{body}\n'
        f'<p class="sub">written by vaekit on {stamp}; every image is embedded in this file.</p></body></html>\n'
    )


# -- pictures of one model --------------------------------------------------------------------------


def interpolation_pairs(data, n_pairs: int) -> list[tuple[int, int]]:
    """Pairs of test indices to walk between: different classes when labels exist."""
    n = len(data)
    if data.y is None:
        return [(2 * i % n, (2 * i + 1) % n) for i in range(n_pairs)]
    pairs, used = [], set()
    for i in range(n):
        if len(pairs) == n_pairs:
            break
        if i in used:
            continue
        j = next((j for j in range(i + 1, n) if j not in used and int(data.y[j]) != int(data.y[i])), None)
        if j is not None:
            pairs.append((i, j))
            used.update((i, j))
    return pairs


def interpolation_grid(model, data, pairs: list[tuple[int, int]], *, steps: int = 10) -> torch.Tensor:
    """(len(pairs) * steps, *data_shape): one lerp path between posterior means per row."""
    cond = model.config.num_classes > 0
    rows = []
    for i, j in pairs:
        ya = int(data.y[i]) if cond else None
        yb = int(data.y[j]) if cond else None
        rows.append(sampling.interpolate(model, data.x[i], data.x[j], steps=steps, ya=ya, yb=yb))
    return torch.cat(rows)


def reconstruction_grid(model, data, n: int = 16) -> tuple[torch.Tensor, int]:
    """Originals above reconstructions, 8 to a row -> (images, per_row)."""
    x = data.x[:n]
    y = data.y[:n] if (data.y is not None and model.config.num_classes) else None
    rec = sampling.reconstruct(model, x, y)
    per_row = min(len(x), 8)
    rows = []
    for i in range(0, len(x), per_row):
        rows += [x[i : i + per_row], rec[i : i + per_row]]
    return torch.cat(rows), per_row


def scatter_png(model, data, class_names, title: str) -> bytes:
    enc = sampling.encode_dataset(model, data)
    labels = None if "y" not in enc else enc["y"].numpy()
    return figure_png(lambda p: plots.latent_scatter(enc["mu"].numpy(), p, labels=labels,
                                                     class_names=class_names, title=title))  # fmt: skip


def _samples(model, n: int, seed: int) -> torch.Tensor:
    k = model.config.num_classes
    return sampling.sample(model, n, seed=seed, y=None if k == 0 else torch.arange(n) % k)


# -- the report -----------------------------------------------------------------------------------


def load_or_evaluate(model, data, *, run_dir: Path, metrics_path: Path | None, iw_samples: int,
                     progress: bool) -> tuple[dict[str, Any], str]:  # fmt: skip
    """The run's saved evaluation (metrics_path, else run_dir/evaluation.json), or a new one that
    is saved there -> (result, where it came from)."""
    path = Path(metrics_path) if metrics_path is not None else run_dir / EVALUATION_FILE
    if path.is_file():
        try:
            res = json.loads(path.read_text())
            if not isinstance(res, dict) or "model" not in res or "seconds" not in res:
                raise ValueError("not a vaekit evaluation")
            return res, f"from {path}"
        except (OSError, ValueError) as e:
            raise VaekitError(f"{path} is not a vaekit evaluation file ({e}); run `vaekit evaluate` again") from None
    if metrics_path is not None:
        raise VaekitError(f"no such metrics file: {metrics_path}")
    res = evaluate_model(model, data, iw_samples=iw_samples, progress=progress)
    ckpt.atomic_write(path, json.dumps(res, indent=2) + "\n")
    return res, f"computed now with k={iw_samples} and saved to {path}"


def evaluate_model(model, data, *, progress: bool = False, **kwargs) -> dict[str, Any]:
    """metrics.evaluate with the run's feature classifier when the data have labels."""
    import time

    from . import classifier as clf

    t0 = time.perf_counter()
    feature_classifier = clf.for_model(model, data, progress=progress) if data.has_labels else None
    seconds = time.perf_counter() - t0
    res = metrics.evaluate(model, data, classifier=feature_classifier, progress=progress, **kwargs)
    res["seconds"]["classifier"] = seconds  # cached after the first time
    if feature_classifier is None:
        res["notes"] = [f"{data.name} has no labels, so no feature classifier and no FD"]
    return res


def write_report(
    run_dir: str | Path,
    *,
    out: str | Path | None = None,
    metrics_path: str | Path | None = None,
    iw_samples: int = 100,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
) -> Path:
    """Write run_dir/report.html (or `out`): metrics table, loss curves, KL per dimension,
    reconstructions, samples, interpolations, traversals and the latent scatter. Metrics come
    from `vaekit evaluate`'s JSON when there is one (metrics_path, or run_dir/evaluation.json),
    else they are computed with iw_samples importance samples and saved there."""
    from .api import load, load_run_data

    run_dir = Path(run_dir)
    model = load(run_dir, device=device)
    data = load_run_data(model)
    out = Path(out) if out is not None else run_dir / REPORT_FILE
    if out.is_dir():
        raise VaekitError(f"--out {out} is a folder; give the path of the HTML file to write")
    res, source = load_or_evaluate(model, data, run_dir=run_dir, metrics_path=metrics_path,
                                   iw_samples=iw_samples, progress=progress)  # fmt: skip
    cfg, info = model.run_config, model.run_info
    test = data.test
    kind = cfg.model.kind.upper()
    sections: list[tuple[str, str]] = []

    sections.append(("Metrics", f"<p class=sub>{esc(source)}</p>" + metrics_table(res)))
    rows = ckpt.read_metrics(run_dir)
    if rows:
        total = sum(r["seconds"] for r in rows)
        best = min(rows, key=lambda r: r["val_loss"])
        sections.append(("Training", figure(figure_png(lambda p: plots.loss_curves(rows, p)),
                         f"{len(rows)} epochs in {total:.0f} s; best validation loss {best['val_loss']:.2f} "
                         f"nats/example at epoch {best['epoch']}")))  # fmt: skip
    lat = res.get("latent")
    if lat:
        figs = []
        if lat.get("kl_per_dim") is not None:
            figs.append(figure(figure_png(lambda p: plots.latent_bars(lat["kl_per_dim"], p, ylabel="nats",
                               title="mean KL(q(z_d|x) || N(0, 1)) per dimension")),
                               "KL per latent dimension, test split (largest first)"))  # fmt: skip
        figs.append(figure(figure_png(lambda p: plots.latent_bars(lat["activity"], p, ylabel="Cov_x(E_q[z_d])",
                           title="unit activity", threshold=lat["active_unit_threshold"])),
                           f"{lat['active_units']} of {lat['latent_dim']} units active (Burda et al. 2015)"))  # fmt: skip
        sections.append(("Latent health", "".join(figs)))
    grid, per_row = reconstruction_grid(model, test)
    sections.append(("Reconstructions", figure(grid_png(grid, nrow=per_row),
                     "test examples (odd rows) and their reconstructions from the posterior mean (even rows)")))  # fmt: skip
    sections.append(("Samples", figure(grid_png(_samples(model, 64, seed), nrow=8),
                     f"64 decoded z ~ N(0, I) (likelihood means), seed {seed}")))  # fmt: skip
    pairs = interpolation_pairs(test, 6)
    if pairs:
        sections.append(("Interpolations", figure(grid_png(interpolation_grid(model, test, pairs), nrow=10),
                         "straight lines between the posterior means of two test examples; ends are reconstructions: "
                         + ", ".join(f"{i}->{j}" for i, j in pairs))))  # fmt: skip
    order = _dims_by_importance(lat, model.latent_dim)[:10]
    yk = 0 if model.config.num_classes else None
    trav = sampling.traverse(model, dims=order, span=3.0, steps=9, y=yk)
    sections.append(("Traversals", figure(grid_png(trav.flatten(0, 1), nrow=9),
                     "one latent dimension per row, from -3 to +3 around z = 0, most informative first: "
                     + ", ".join(f"z{d}" for d in order))))  # fmt: skip
    sections.append(("Latent space", figure(scatter_png(model, test, data.class_names,
                     f"{kind} latent space, test split (posterior means)"), "posterior means of the test split"
                     + ("" if model.latent_dim <= 2 else ", first two principal components"))))  # fmt: skip
    conf_rows = [[sec, k, json.dumps(v)] for sec, part in (("model", cfg.model), ("train", cfg.train), ("data", cfg.data))
                 for k, v in vars(part).items()]  # fmt: skip
    sections.append(("Configuration", table(conf_rows, header=["section", "setting", "value"])))

    subtitle = (f"{kind}, {cfg.model.arch}, {cfg.model.likelihood} likelihood, latent {cfg.model.latent_dim}, "
                f"trained on {data.name} ({info.get('n_train', len(data.train))} examples); run created "
                f"{info.get('created', '?')}")  # fmt: skip
    ckpt.atomic_write(out, page(f"vaekit report: {run_dir.resolve().name}", subtitle, sections))
    return out


def _dims_by_importance(lat: dict[str, Any] | None, d: int) -> list[int]:
    """Latent dimensions, most informative first: by KL for a VAE, by activity for an AE."""
    if not lat:
        return list(range(d))
    score = lat.get("kl_per_dim") or lat["activity"]
    return sorted(range(d), key=lambda i: -score[i])
