"""The lossy codec's rate-distortion trade-off, measured: one codec per lambda (--model codec
--lmbda L), the same seed, data and budget; each point compresses the test split into a real file
(vaekit.workflows.compress) and reports its bits per pixel and the decoded images' PSNR and SSIM.

    from vaekit.workflows.rd_sweep import run_rd_sweep
    rows = run_rd_sweep("fashion-mnist", lmbdas=[0.003, 0.01, 0.03], out="runs/rd", epochs=10)

The sweep folder is the beta sweep's (vaekit.runs.sweep_folder: one run folder per point, resumed
as there), with table.md, results.json and rd_curve.png (bits per pixel against PSNR and SSIM).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .. import plots
from ..config import DataConfig
from ..data import load_data
from ..errors import VaekitError
from ..evaluation.reconstruction import psnr, ssim
from ..runs import Run, load_run
from ..runs.setup import new_config, split_options
from ..runs.sweep_folder import SweepFolder
from .compress import compress_lossy, to_pixels
from .sweep import as_json, train_point

EVAL_VERSION = 1
FIXED_BY_SWEEP = {"lmbda", "epochs", "seed", "patience"}


def point_name(lmbda: float) -> str:
    return f"lmbda-{lmbda:g}"


def run_rd_sweep(
    data: str,
    *,
    lmbdas: list[float],
    out: str | Path,
    epochs: int = 10,
    seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    **options: Any,
) -> list[dict[str, Any]]:
    """Train (or finish) one codec per lambda, compress the test split with each, write the table
    and the curve. options: any other option of vaekit.train, the same for every point. Returns
    one row per point, lambdas ascending."""
    log = log or (lambda msg: None)
    lmbdas = _check_lmbdas(lmbdas)
    if epochs < 1:
        raise VaekitError("--epochs must be at least 1")
    fixed = sorted(FIXED_BY_SWEEP & set(options))
    if fixed:
        raise VaekitError(f"a sweep sets {', '.join(fixed)} itself, the same for every point; do not pass them")
    options = {k: v for k, v in options.items() if v is not None}
    if options.pop("conditional", False):
        raise VaekitError("a codec sweep trains unconditional codecs; drop --conditional")
    sections = split_options(options)
    folder = SweepFolder(out)
    folder.claim({"data": data, "seed": seed, "model": "codec", "options": {k: as_json(v) for k, v in options.items()}})
    data_cfg = DataConfig(source=data, **sections["data"])
    splits = load_data(data_cfg)
    if not splits.is_image:
        raise VaekitError(f"a codec compresses images, and {data} holds feature vectors")
    rows = []
    for i, lmbda in enumerate(lmbdas, 1):
        name, t0 = point_name(lmbda), time.perf_counter()
        model = {**sections["model"], "lmbda": lmbda}
        train = {**sections["train"], "epochs": epochs, "seed": seed}
        config = new_config(
            data_cfg, splits, kind="codec", conditional=False, options={**sections, "model": model, "train": train}
        )
        status = train_point(folder.point(name), config, splits, progress=progress)
        row = _evaluated(load_run(folder.point(name)))
        rows.append(row)
        log(
            f"[{i}/{len(lmbdas)}] {name}: {status} ({time.perf_counter() - t0:.0f}s); test split "
            f"{row['bits_per_pixel']:.3f} bits/pixel, PSNR {row['psnr']:.2f} dB, SSIM {row['ssim']:.4f}"
        )
    folder.save_results(rows, results_table(rows))
    rd_curve_plot(rows, folder.figure_path("rd_curve"))
    return rows


def _check_lmbdas(lmbdas: list[float]) -> list[float]:
    lmbdas = [float(v) for v in lmbdas]
    if not lmbdas:
        raise VaekitError("give at least one lambda, e.g. --lmbda 0.003,0.01,0.03")
    if any(not (math.isfinite(v) and v > 0) for v in lmbdas):
        raise VaekitError("every lambda must be a positive finite number")
    if len({point_name(v) for v in lmbdas}) != len(lmbdas):
        raise VaekitError("the lambdas must differ from each other")
    return sorted(lmbdas)


def _evaluated(run: Run) -> dict[str, Any]:
    """evaluate_point, cached in the point's run against its weights."""
    key = {"version": EVAL_VERSION}
    row = run.cached("rd_sweep_eval", key)
    if row is None:
        row = evaluate_point(run)
        run.save_cache("rd_sweep_eval", key, row)
    return row


def evaluate_point(run: Run) -> dict[str, Any]:
    """The test split compressed into one file with the point's codec: its bits per pixel (the whole
    file, header included), and PSNR and SSIM (means over images) of what decompressing it gives."""
    pixels = to_pixels(run.data().test.x)[0]
    archive, decoded, clamped = compress_lossy(run, pixels)
    size = len(archive.to_bytes())
    original, restored = (torch.from_numpy(p).float() / 255.0 for p in (pixels, decoded))
    channels, height, width = pixels.shape[1:]
    history = run.metrics()
    return {
        "point": point_name(run.config.model.lmbda),
        "lmbda": run.config.model.lmbda,
        "bytes": size,
        "bits_per_pixel": 8 * size / (len(pixels) * height * width),
        "psnr": float(psnr(original, restored).mean()),
        "ssim": float(ssim(original, restored).mean()),
        "clamped": clamped,
        "images": len(pixels),
        "epochs": history[-1]["epoch"],
        "train_seconds": sum(r["seconds"] for r in history),
    }


COLUMNS = [  # (key, header, format)
    ("point", "point", "{}"),
    ("lmbda", "lambda", "{:g}"),
    ("bits_per_pixel", "bits/pixel", "{:.3f}"),
    ("psnr", "PSNR (dB)", "{:.2f}"),
    ("ssim", "SSIM", "{:.4f}"),
    ("bytes", "file bytes", "{:,}"),
    ("epochs", "epochs", "{}"),
    ("train_seconds", "training s", "{:.0f}"),
]


def results_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(fmt.format(r[key]) for key, _, fmt in COLUMNS) + " |" for r in rows]
    n = rows[0]["images"] if rows else 0
    note = f"Test split ({n:,} images) compressed into one file per point; PSNR and SSIM of the decoded images."
    return "\n".join([*lines, "", note]) + "\n"


def rd_curve_plot(rows: list[dict[str, Any]], path: Path) -> Path:
    fig, axes = plots.plt.subplots(1, 2, figsize=(10, 4))
    for ax, (key, label) in zip(axes, [("psnr", "PSNR (dB)"), ("ssim", "SSIM")]):
        ax.plot([r["bits_per_pixel"] for r in rows], [r[key] for r in rows], "o-")
        for r in rows:
            ax.annotate(
                f"{r['lmbda']:g}",
                (r["bits_per_pixel"], r[key]),
                textcoords="offset points",
                xytext=(5, -10),
                fontsize=8,
            )
        ax.set(
            title=f"{label} against rate (test split, lambda marked)", xlabel="bits per pixel (the file)", ylabel=label
        )
    return plots.save_figure(fig, path)
