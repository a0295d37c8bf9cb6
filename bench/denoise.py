"""Denoising benchmark: PSNR/SSIM of noisy Fashion-MNIST test images before and after cleaning,
per noise level, for AE and VAE denoisers (trained with --denoise at that level) and for plain
AE and VAE runs (trained on clean images only) as the baseline.

    nice python bench/denoise.py --epochs 5 --out bench/out/denoise

Writes OUT/results.json and OUT/results.md (the BENCHMARKS.md table) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

import vaekit
from vaekit.data import load_split
from vaekit.workflows.denoising import denoising_quality

NOISES = ["gaussian:0.1", "gaussian:0.3", "gaussian:0.5", "saltpepper:0.2", "mask:0.5"]


def train_seconds(folder: Path) -> float:
    """Seconds the run's epochs took (from metrics.jsonl, so also right for reused runs)."""
    return sum(r["seconds"] for r in vaekit.load_run(folder).metrics())


def get_run(
    folder: Path,
    *,
    reuse: bool,
    lr: float | None = None,
    lr_schedule: str | None = None,
    arch: str | None = None,
    **options,
):
    options.update({k: v for k, v in dict(lr=lr, lr_schedule=lr_schedule, arch=arch).items() if v})
    if reuse and (folder / "model.safetensors").exists():
        return vaekit.load(folder)
    return vaekit.train("fashion-mnist", out=folder, overwrite=True, progress=False, figures=False, **options).model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--n", type=int, default=2000, help="test images to corrupt and clean")
    ap.add_argument("--noises", default=",".join(NOISES))
    ap.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: vaekit's)")
    ap.add_argument("--lr-schedule", default=None, help="constant | cosine | plateau (default: vaekit's)")
    ap.add_argument("--arch", default=None, help="mlp | conv (default: vaekit's choice for the data)")
    ap.add_argument("--out", type=Path, default=Path("bench/out/denoise"))
    ap.add_argument("--reuse", action="store_true", help="reuse trained runs found in --out")
    ap.add_argument("--train-only", action="store_true", help="train the runs, measure nothing")
    args = ap.parse_args()
    noises = args.noises.split(",")
    args.out.mkdir(parents=True, exist_ok=True)  # a fresh clone has no bench/out
    test = load_split("fashion-mnist:test")
    clean = test.x[torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[: args.n]]
    rows, seconds = [], {}
    pins = dict(reuse=args.reuse, lr=args.lr, lr_schedule=args.lr_schedule, arch=args.arch)
    for kind in ["ae", "vae"]:
        plain = get_run(args.out / f"{kind}-plain", **pins, model=kind, epochs=args.epochs)
        seconds[f"{kind}-plain"] = train_seconds(args.out / f"{kind}-plain")
        for noise in noises:
            tag = noise.replace(":", "")
            dae = get_run(args.out / f"{kind}-{tag}", **pins, model=kind, epochs=args.epochs, denoise=noise)
            seconds[f"{kind}-{tag}"] = train_seconds(args.out / f"{kind}-{tag}")
            if args.train_only:
                continue
            q = denoising_quality(dae, clean, noise, seed=1)
            base = denoising_quality(plain, clean, noise, seed=1)
            rows.append({"model": kind, **q, "psnr_plain": base["psnr_denoised"], "ssim_plain": base["ssim_denoised"]})
            print(json.dumps(rows[-1]), flush=True)
    if args.train_only:
        return
    lines = [
        "| noise | model | PSNR noisy | PSNR plain model | PSNR denoiser | gain (dB) | SSIM noisy | SSIM plain model | SSIM denoiser |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(rows, key=lambda r: (noises.index(r["noise"]) if r["noise"] in noises else 0, r["model"])):
        lines.append(
            f"| {r['noise']} | {r['model'].upper()} | {r['psnr_noisy']:.2f} | {r['psnr_plain']:.2f} | "
            f"{r['psnr_denoised']:.2f} | {r['psnr_denoised'] - r['psnr_noisy']:+.2f} | {r['ssim_noisy']:.3f} | "
            f"{r['ssim_plain']:.3f} | {r['ssim_denoised']:.3f} |"
        )
    md = "\n".join(lines)
    print(md)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(
        json.dumps(
            {
                "command": "python " + " ".join(sys.argv),
                "epochs": args.epochs,
                "n": args.n,
                "rows": rows,
                "train_seconds": seconds,
                "machine": platform.platform(),
                "threads": torch.get_num_threads(),
            },
            indent=2,
        )
        + "\n"
    )
    (args.out / "results.md").write_text(md + "\n")


if __name__ == "__main__":
    main()
