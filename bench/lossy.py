"""Lossy compression benchmark (issue 17) on the Fashion-MNIST test split (10,000 8-bit images):
vaekit's codec (`--model codec`, one per lambda, `vaekit sweep --lmbda`) against JPEG and WebP (one
file per image, Pillow, a grid of qualities) at matched bits per pixel and PSNR, and against
CompressAI's factorized-prior codec (Balle et al. 2017) trained with its own recipe for the same
wall-clock time per lambda, in its own venv. Every file is decoded again and measured: bits per
pixel of the files, PSNR and SSIM of the decoded images (means over images, vaekit's metrics for
all), and compression and decompression speed.

    bash bench/setup_compressai.sh
    OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python bench/lossy.py --write BENCHMARKS.md

The vaekit and CompressAI trainings alternate, lambda by lambda, so that the load of a shared
machine falls on both alike; trained points in OUT are reused. Writes OUT/results.json,
OUT/results.md and OUT/rd.png.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from machine import describe
from PIL import Image
from sections import replace_section

import vaekit
from vaekit import plots
from vaekit.config import DataConfig
from vaekit.data import load_data
from vaekit.evaluation.reconstruction import psnr, ssim
from vaekit.workflows import compress as codec

ROOT = Path(__file__).resolve().parents[1]
VAEKIT_OPTIONS = "--arch conv --latent-dim 128"
QUALITIES = {
    "JPEG": [5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95],
    "WebP": [0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95],
}
BEGIN, END = "<!-- lossy:begin -->", "<!-- lossy:end -->"


def quality(original: np.ndarray, decoded: np.ndarray) -> dict:
    a, b = (torch.from_numpy(p).float() / 255 for p in (original, decoded))
    return {"psnr": float(psnr(a, b).mean()), "ssim": float(ssim(a, b).mean())}


def point(name: str, size: int, original: np.ndarray, decoded: np.ndarray, t_enc: float, t_dec: float, **extra) -> dict:
    n, (_, h, w) = len(original), original.shape[1:]
    return {
        "contender": name,
        "bytes": size,
        "bits_per_pixel": 8 * size / (n * h * w),
        **quality(original, decoded),
        "compress_images_per_s": n / t_enc,
        "decompress_images_per_s": n / t_dec,
        **extra,
    }


# -- the contenders --------------------------------------------------------------------------------------


def pillow_points(fmt: str, test: np.ndarray) -> list[dict]:
    points = []
    for q in QUALITIES[fmt]:
        save = {"quality": q, "optimize": True} if fmt == "JPEG" else {"quality": q, "method": 6}
        t0 = time.perf_counter()
        files = []
        for img in test:
            buf = io.BytesIO()
            Image.fromarray(img[0]).save(buf, format=fmt, **save)
            files.append(buf.getvalue())
        t1 = time.perf_counter()
        decoded = np.stack([np.asarray(Image.open(io.BytesIO(f)).convert("L"))[None] for f in files])
        t2 = time.perf_counter()
        points.append(point(fmt, sum(map(len, files)), test, decoded, t1 - t0, t2 - t1, quality=q))
        print(f"  {fmt} q={q}: {points[-1]['bits_per_pixel']:.3f} bpp, PSNR {points[-1]['psnr']:.2f}", flush=True)
    return points


def train_vaekit(lmbdas: list[float], seconds: float, out: Path) -> None:
    """One `vaekit sweep` over the lambdas so far (earlier points are reused, this one trained)."""
    vaekit_bin = Path(sys.executable).parent / "vaekit"
    cmd = [str(vaekit_bin), "sweep", "--data", "fashion-mnist", "--lmbda", ",".join(f"{v:g}" for v in lmbdas)]
    cmd += ["--epochs", "10000", "--time-limit", f"{seconds:g}", *shlex.split(VAEKIT_OPTIONS), "--out", str(out), "-q"]
    subprocess.run(cmd, check=True)


def vaekit_point(folder: Path, test: np.ndarray) -> dict:
    run = vaekit.load_run(folder)
    t0 = time.perf_counter()
    archive = codec.compress_lossy(run, test)[0]
    t1 = time.perf_counter()
    decoded = codec.decompress(run, codec.Archive.from_bytes(archive.to_bytes(), "bench"))
    t2 = time.perf_counter()
    rows = run.metrics()
    return point(
        "vaekit codec",
        len(archive.to_bytes()),
        test,
        decoded,
        t1 - t0,
        t2 - t1,
        lmbda=run.config.model.lmbda,
        epochs=len(rows),
        train_seconds=sum(r["seconds"] for r in rows),
    )


def compressai_point(lmbda: float, seconds: float, out: Path, data: Path, test: np.ndarray) -> dict:
    stem = out / f"compressai-lmbda-{lmbda:g}"
    if not Path(f"{stem}.json").is_file():
        python = ROOT / "bench" / ".venv-compressai" / "bin" / "python"
        cmd = [str(python), str(ROOT / "bench" / "compressai_worker.py"), "--data", str(data)]
        subprocess.run([*cmd, "--lmbda", str(lmbda), "--seconds", str(seconds), "--out", str(stem)], check=True)
    r = json.loads(Path(f"{stem}.json").read_text())
    decoded = np.load(f"{stem}.npy")
    return point(
        "CompressAI factorized prior",
        r["bytes"],
        test,
        decoded,
        r["compress_seconds"],
        r["decompress_seconds"],
        lmbda=lmbda,
        epochs=r["epochs"],
        train_seconds=r["train_seconds"],
    )


# -- matching ---------------------------------------------------------------------------------------------


def interpolate(curve: list[dict], x_key: str, y_key: str, x: float, log_y: bool = False) -> float | None:
    """y at x along a contender's points sorted by x (linear; log y for bytes); None outside them."""
    pts = sorted((p[x_key], math.log(p[y_key]) if log_y else p[y_key]) for p in curve)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 <= x <= x1 and x1 > x0:
            y = y0 + (y1 - y0) * (x - x0) / (x1 - x0)
            return math.exp(y) if log_y else y
    return None


def matched(ours: dict, curves: dict[str, list[dict]]) -> dict:
    """For one vaekit point: each contender's bytes at the same PSNR (and the saving), and its PSNR
    and SSIM at the same bits per pixel."""
    out = {}
    for name, curve in curves.items():
        at_psnr = interpolate(curve, "psnr", "bytes", ours["psnr"], log_y=True)
        out[name] = {
            "bytes_at_psnr": at_psnr,
            "saving_at_psnr": None if at_psnr is None else 1 - ours["bytes"] / at_psnr,
            "psnr_at_bpp": interpolate(curve, "bits_per_pixel", "psnr", ours["bits_per_pixel"]),
            "ssim_at_bpp": interpolate(curve, "bits_per_pixel", "ssim", ours["bits_per_pixel"]),
        }
    return out


# -- the report -------------------------------------------------------------------------------------------


def fmt(v, spec: str, none: str = "out of its range") -> str:
    return none if v is None else format(v, spec)


def report(res: dict, cmd: str) -> str:
    head = "| contender | setting | bits/pixel | PSNR (dB) | SSIM | compress images/s | decompress images/s |"
    lines = [
        BEGIN,
        "## Lossy compression: a learned codec vs JPEG, WebP and CompressAI (issue 17)",
        "",
        f"Command: `{cmd}`",
        "",
        f"Machine: {res['machine']}.",
        "",
        f"Fashion-MNIST test split, {res['images']:,} images 28 x 28, 8-bit grey. vaekit: "
        f"`vaekit sweep --data fashion-mnist --lmbda ... --epochs 10000 --time-limit {res['seconds']:g} "
        f"{VAEKIT_OPTIONS}` (one codec per lambda, {res['seconds']:g} s of training each); CompressAI: "
        f"FactorizedPrior(N={res['n']}, M={res['m']}), 1 channel, its training recipe, the same "
        f"{res['seconds']:g} s per lambda. Bits per pixel: all the bytes of the files (JPEG and WebP: one "
        "file per image, headers included; vaekit: one file; CompressAI: its bitstreams).",
        "",
        head,
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for p in res["points"]:
        setting = f"q={p['quality']}" if "quality" in p else f"lambda={p['lmbda']:g}, {p['epochs']:.2f} epochs"
        lines.append(
            f"| {p['contender']} | {setting} | {p['bits_per_pixel']:.3f} | {p['psnr']:.2f} | {p['ssim']:.4f} | "
            f"{p['compress_images_per_s']:,.0f} | {p['decompress_images_per_s']:,.0f} |"
        )
    lines += [
        "",
        "At each vaekit point: the other codecs' bytes at the same PSNR (log-linear between their "
        "points) and vaekit's saving, and their SSIM at the same bits per pixel.",
        "",
        "| vaekit lambda | bits/pixel | PSNR | vs WebP: bytes saved | vs JPEG: bytes saved | vs CompressAI: "
        "bytes saved | SSIM: vaekit / WebP / JPEG / CompressAI at its bpp |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for p in res["points"]:
        if p["contender"] != "vaekit codec":
            continue
        m = p["matched"]
        s = lambda k, m=m: fmt(m[k]["saving_at_psnr"], ".0%")
        ssims = " / ".join(
            [f"{p['ssim']:.4f}"] + [fmt(m[k]["ssim_at_bpp"], ".4f", "-") for k in ("WebP", "JPEG", "CompressAI")]
        )
        lines.append(
            f"| {p['lmbda']:g} | {p['bits_per_pixel']:.3f} | {p['psnr']:.2f} | {s('WebP')} | {s('JPEG')} | "
            f"{s('CompressAI')} | {ssims} |"
        )
    return "\n".join([*lines, "", END])


def rd_plot(res: dict, path: Path) -> None:
    fig, axes = plots.plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key in zip(axes, ("psnr", "ssim")):
        for name in dict.fromkeys(p["contender"] for p in res["points"]):
            pts = sorted((p["bits_per_pixel"], p[key]) for p in res["points"] if p["contender"] == name)
            ax.plot(*zip(*pts), "o-", label=name, ms=3)
        ax.set(xlabel="bits per pixel", ylabel=key.upper(), title=f"{key.upper()} against rate, Fashion-MNIST test")
        ax.set_xlim(0, 4)
        ax.legend(fontsize=8)
    plots.save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lmbdas", default="0.005,0.02,0.08,0.32")
    ap.add_argument("--seconds", type=float, default=300, help="training time per codec and lambda")
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--m", type=int, default=192)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "lossy")
    ap.add_argument("--test-images", type=int, default=None, help="the first N test images only (a quick try)")
    ap.add_argument("--write", type=Path, default=None, help="replace the section in this Markdown file")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    lmbdas = [float(v) for v in args.lmbdas.split(",")]
    res = {"machine": describe(), "seconds": args.seconds, "n": args.n, "m": args.m}
    splits = load_data(DataConfig(source="fashion-mnist"))
    train, test = (codec.to_pixels(d.x)[0] for d in (splits.train, splits.test))
    test = test[: args.test_images]
    data = args.out / "data.npz"
    if not data.is_file():
        np.savez(data, train=train, test=test)
    res["images"] = len(test)
    points = []
    for i, lmbda in enumerate(lmbdas):  # interleaved: vaekit, then CompressAI, lambda by lambda
        train_vaekit(lmbdas[: i + 1], args.seconds, args.out / "vaekit")
        points.append(vaekit_point(args.out / "vaekit" / f"lmbda-{lmbda:g}", test))
        points.append(compressai_point(lmbda, args.seconds, args.out, data, test))
        print(f"lambda {lmbda:g}: {points[-2]}\n  {points[-1]}", flush=True)
    for fmt_name in ("JPEG", "WebP"):
        points += pillow_points(fmt_name, test)
    curves = {name: [p for p in points if p["contender"].startswith(name)] for name in ("WebP", "JPEG", "CompressAI")}
    for p in points:
        if p["contender"] == "vaekit codec":
            p["matched"] = matched(p, curves)
    res["points"] = points
    (args.out / "results.json").write_text(json.dumps(res, indent=2))
    cmd = "python bench/lossy.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    md = report(res, cmd)
    (args.out / "results.md").write_text(md + "\n")
    rd_plot(res, args.out / "rd.png")
    print(md)
    if args.write:
        replace_section(args.write, md, BEGIN, END)


if __name__ == "__main__":
    main()
