"""Lossless compression with a hierarchical VAE (every latent group coded by bits-back ANS): the
file's bits/dim against the model's -ELBO (all groups, 1 and 16 posterior samples per image) on
the first --images of the Fashion-MNIST test split, and compress / decompress speed in images/s.
The round trip is checked pixel for pixel.

    OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python bench/compression_hvae.py --images 1000

Trains a small hvae on the CPU for --train-seconds into OUT/fm-hvae (reused when there already).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

import vaekit
from vaekit.evaluation.scores import negative_elbo
from vaekit.workflows import compress as codec

ROOT = Path(__file__).resolve().parents[1]
TRAIN = (
    "--data fashion-mnist --model hvae --widths 16,16,16,16 --groups 1,1,1,1 --group-channels 4 --latent-dim 16 "
    "--likelihood discretized-logistic --epochs 50"
)


def get_run(out: Path, seconds: float) -> vaekit.Run:
    folder = out / "fm-hvae"
    if not (folder / "model.safetensors").is_file():
        cmd = f"{sys.executable} -m vaekit train {TRAIN} --time-limit {seconds} --out {folder} -q"
        print(cmd, flush=True)
        subprocess.run(shlex.split(cmd), check=True)
    return vaekit.load_run(folder)


def nelbo_bits_per_dim(model, pixels, samples: int) -> float:
    """-ELBO over every group, float32, continuous latents, averaged over `samples` draws per image."""
    x = torch.from_numpy(pixels).float() / 255
    gen, total = torch.Generator().manual_seed(0), 0.0
    with torch.no_grad():
        for i in range(0, len(x), 250):
            draws = [negative_elbo(model, x[i : i + 250], generator=gen) for _ in range(samples)]
            total += float(torch.stack(draws).double().mean(0).sum())
    return total / len(x) / math.log(2) / math.prod(model.data_shape)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--train-seconds", type=float, default=420)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "compression_hvae")
    args = ap.parse_args()
    run = get_run(args.out, args.train_seconds)
    pixels = codec.to_pixels(run.data().test.x[: args.images])[0]
    start = time.perf_counter()
    archive = codec.compress(run, pixels)
    compress_s = time.perf_counter() - start
    start = time.perf_counter()
    back = codec.decompress(run, codec.Archive.from_bytes(archive.to_bytes(), "x.vkc"))
    decompress_s = time.perf_counter() - start
    assert (back == pixels).all(), "the round trip is not exact"
    size = len(archive.to_bytes())
    result = {
        "images": len(pixels),
        "group_dims": run.model.group_dims,
        "bytes": size,
        "file_bits_per_dim": 8 * size / pixels.size,
        "payload_bits_per_dim": 32 * len(archive.words) / pixels.size,
        "nelbo_bits_per_dim_1_sample": codec.model_nelbo_bits_per_dim(run.model, pixels),
        "nelbo_bits_per_dim_16_samples": nelbo_bits_per_dim(run.model, pixels, 16),
        "compress_images_per_s": len(pixels) / compress_s,
        "decompress_images_per_s": len(pixels) / decompress_s,
        "threads": torch.get_num_threads(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"results-{args.images}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
