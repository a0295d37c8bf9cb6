"""Lossless compression benchmark: vaekit's bits-back ANS files against PNG (optimized, one file
per image), WebP lossless (one file per image), xz and bz2 (over the whole set as one array),
and against the model's own -ELBO and IWAE NLL, on the test splits of Fashion-MNIST (10,000
8-bit images) and of the 8x8 digits. Every contender's output is decoded again and checked pixel
for pixel. Speeds are medians over --repeats rounds, the contenders interleaved in each round.

    .venv/bin/pip install -e '.[compress]'
    OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python bench/compression.py --write BENCHMARKS.md

Trains the models it needs (the `vaekit train` commands are printed and kept in the results) into
OUT/<dataset>/, and reuses a run there that was trained with the same command. The peers need
nothing beyond vaekit's own dependencies (Pillow; lzma and bz2 are in Python). Writes
OUT/results.json and OUT/results.md and prints the table.
"""

from __future__ import annotations

import argparse
import bz2
import io
import json
import lzma
import math
import shlex
import statistics
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
from vaekit.data import Dataset
from vaekit.evaluation.likelihood import likelihood_metrics
from vaekit.workflows import compress as codec

ROOT = Path(__file__).resolve().parents[1]
TRAIN = {
    "fashion-mnist": "--likelihood discretized-logistic --arch conv --epochs 20 --lr-schedule cosine",
    "digits": "--likelihood discretized-logistic --arch conv --epochs 200 --lr-schedule cosine",
}
BEGIN, END = "<!-- compression:begin -->", "<!-- compression:end -->"


# -- the model ----------------------------------------------------------------------------------------------


def get_run(dataset: str, out: Path) -> tuple[vaekit.Run, dict]:
    """The trained run in OUT/<dataset>, trained here unless OUT/<dataset>.options.txt says a run
    with these very options is there already. Training time: the run's own epoch seconds."""
    folder, stamp = out / dataset, out / f"{dataset}.options.txt"
    options = f"--data {dataset} {TRAIN[dataset]}"
    command = f"vaekit train {options} --out {folder} --overwrite -q"
    if not (stamp.is_file() and stamp.read_text() == options and (folder / "model.safetensors").is_file()):
        print(f"training: {command}", flush=True)
        vaekit_bin = Path(sys.executable).parent / "vaekit"
        subprocess.run([str(vaekit_bin), *shlex.split(command)[1:]], check=True)
        stamp.write_text(options)
    run = vaekit.load_run(folder)
    rows = run.metrics()
    return run, {
        "command": f"vaekit train {options}",
        "epochs": len(rows),
        "train_seconds": sum(r["seconds"] for r in rows),
    }


# -- the contenders: bytes out, pixels back -----------------------------------------------------------------


def per_image(fmt: str, **save):
    """A codec writing one file per image (N, 1, H, W) uint8 with Pillow."""

    def encode(pixels: np.ndarray) -> list[bytes]:
        files = []
        for img in pixels:
            buf = io.BytesIO()
            Image.fromarray(img[0]).save(buf, format=fmt, **save)
            files.append(buf.getvalue())
        return files

    def decode(files: list[bytes]) -> np.ndarray:
        return np.stack([np.asarray(Image.open(io.BytesIO(f)).convert("L"))[None] for f in files])

    return encode, decode


def vaekit_codec(run):
    def encode(pixels: np.ndarray) -> list[bytes]:
        return [codec.compress(run, pixels).to_bytes()]

    def decode(files: list[bytes]) -> np.ndarray:
        return codec.decompress(run, codec.Archive.from_bytes(files[0], "bench"))

    return encode, decode


def contenders(run, shape: list[int]) -> dict:
    raw = lambda f: lambda files: np.frombuffer(f(files[0]), dtype=np.uint8).reshape(-1, *shape)
    return {
        "vaekit (bits-back ANS)": vaekit_codec(run),
        "PNG, optimize=True, per image": per_image("PNG", optimize=True),
        "WebP lossless, per image": per_image("WEBP", lossless=True, quality=100, method=6),
        "xz -9e, whole set": (
            lambda p: [lzma.compress(p.tobytes(), preset=9 | lzma.PRESET_EXTREME)],
            raw(lzma.decompress),
        ),
        "bz2 -9, whole set": (lambda p: [bz2.compress(p.tobytes(), 9)], raw(bz2.decompress)),
    }


def measure(codecs: dict, pixels: np.ndarray, repeats: int) -> dict:
    """Bytes, bits/dim and median compress / decompress seconds; every round trip checked."""
    times = {name: ([], []) for name in codecs}
    sizes = {}
    for r in range(repeats):
        for name, (encode, decode) in codecs.items():  # interleaved: each round runs every contender
            start = time.perf_counter()
            files = encode(pixels)
            mid = time.perf_counter()
            back = decode(files)
            end = time.perf_counter()
            if not np.array_equal(back, pixels):
                raise SystemExit(f"{name}: the round trip is not exact")
            times[name][0].append(mid - start)
            times[name][1].append(end - mid)
            sizes[name] = sum(len(f) for f in files)
            print(
                f"  round {r + 1}: {name}: {sizes[name]:,} bytes, {mid - start:.2f} s + {end - mid:.2f} s", flush=True
            )
    n, dims = len(pixels), pixels[0].size
    return {
        name: {
            "bytes": sizes[name],
            "bits_per_dim": 8 * sizes[name] / (n * dims),
            "compress_images_per_s": n / statistics.median(times[name][0]),
            "decompress_images_per_s": n / statistics.median(times[name][1]),
        }
        for name in codecs
    }


def model_bounds(run, pixels: np.ndarray, k: int, max_examples: int | None) -> dict:
    """The model's -ELBO on every image, and its IWAE NLL (k samples) on the first max_examples."""
    x = torch.from_numpy(pixels).float() / 255
    elbo = likelihood_metrics(run.model, Dataset(x), iw_samples=1, seed=0)
    sub = Dataset(x[:max_examples]) if max_examples else Dataset(x)
    iwae = likelihood_metrics(run.model, sub, iw_samples=k, seed=0, progress=True)
    se = lambda m, key: m[f"{key}_se"] / (m["num_dims"] * math.log(2))
    return {
        "nelbo_bits_per_dim": elbo["nelbo_bits_per_dim"],
        "nelbo_bits_per_dim_se": se(elbo, "nelbo"),
        "subset_nelbo_bits_per_dim": iwae["nelbo_bits_per_dim"],  # the -ELBO on the NLL's images, for the gap
        "nll_bits_per_dim": iwae["nll_bits_per_dim"],
        "nll_bits_per_dim_se": se(iwae, "nll"),
        "nll_k": k,
        "nll_examples": len(sub),
    }


# -- the report -------------------------------------------------------------------------------------------


def table(dataset: str, res: dict) -> str:
    b = res["bounds"]
    lines = [
        f"### {dataset}: {res['n']:,} test images, {' x '.join(map(str, res['shape']))}, 8-bit",
        "",
        f"Model: `{res['train']['command']}` ({res['train']['epochs']} epochs, {res['train']['train_seconds']:.0f} s of training).",
        "",
        "| contender | bytes | bits/dim | vs the model's -ELBO | compress images/s | decompress images/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in res["codecs"].items():
        rel = r["bits_per_dim"] / b["nelbo_bits_per_dim"] - 1
        lines.append(
            f"| {name} | {r['bytes']:,} | {r['bits_per_dim']:.3f} | {rel:+.1%} | "
            f"{r['compress_images_per_s']:,.0f} | {r['decompress_images_per_s']:,.0f} |"
        )
    lines += [
        f"| the model's -ELBO (one posterior sample per image) | | {b['nelbo_bits_per_dim']:.3f} +- {b['nelbo_bits_per_dim_se']:.3f} | | | |",
        f"| the model's NLL (IWAE k={b['nll_k']}, first {b['nll_examples']:,} images; their -ELBO: "
        f"{b['subset_nelbo_bits_per_dim']:.3f}) | | {b['nll_bits_per_dim']:.3f} +- {b['nll_bits_per_dim_se']:.3f} | | | |",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="fashion-mnist,digits")
    ap.add_argument("--repeats", type=int, default=3, help="timing rounds (sizes do not change)")
    ap.add_argument("--iw-samples", type=int, default=1000, help="k of the IWAE NLL")
    ap.add_argument("--iw-examples", type=int, default=1000, help="images the IWAE NLL is computed on (0: all)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "compression")
    ap.add_argument("--write", type=Path, default=None, help="replace the section in this Markdown file")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    header = f"{describe()}; coding build: {codec.build_text()}"
    results = {}
    for dataset in args.datasets.split(","):
        run, train = get_run(dataset, args.out)
        pixels = codec.to_pixels(run.data().test.x)[0]
        print(f"{dataset}: {len(pixels)} test images", flush=True)
        results[dataset] = {
            "n": len(pixels),
            "shape": list(pixels.shape[1:]),
            "train": train,
            "codecs": measure(contenders(run, list(pixels.shape[1:])), pixels, args.repeats),
            "bounds": model_bounds(run, pixels, args.iw_samples, args.iw_examples or None),
        }
        (args.out / "results.json").write_text(json.dumps({"machine": header, "results": results}, indent=2))
    cmd = "python bench/compression.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    md = "\n".join(
        [
            BEGIN,
            "## Lossless compression: bits-back ANS vs PNG, WebP, xz, bz2 (issue 17)",
            "",
            f"Command: `{cmd}`",
            "",
            f"Machine: {header}.",
            "",
            *(table(d, r) for d, r in results.items()),
            END,
        ]
    )
    (args.out / "results.md").write_text(md + "\n")
    print(md)
    if args.write:
        replace_section(args.write, md, BEGIN, END)


if __name__ == "__main__":
    main()
