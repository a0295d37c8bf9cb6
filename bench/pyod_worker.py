"""Runs inside bench/.venv-pyod (bash bench/setup_tables.sh pyod): one PyOD detector with its
defaults on one matrix, fitted on every row without labels; writes the rows' anomaly scores.

    bench/.venv-pyod/bin/python bench/pyod_worker.py --x X.npy --model vae --seed 0 --out scores.npy
Prints one JSON line: {"seconds": fit + scoring wall-clock, "version": pyod's}.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pyod
import torch
from pyod.models.auto_encoder import AutoEncoder
from pyod.models.vae import VAE


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--x", required=True)
    ap.add_argument("--model", choices=("vae", "ae"), required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    x = np.load(args.x)
    make = VAE if args.model == "vae" else AutoEncoder
    t0 = time.perf_counter()
    detector = make(random_state=args.seed, verbose=0).fit(x)
    scores = detector.decision_scores_  # the training rows' scores: the unsupervised protocol
    seconds = time.perf_counter() - t0
    np.save(args.out, np.asarray(scores, dtype=np.float64))
    print(json.dumps({"seconds": seconds, "version": pyod.__version__}))


if __name__ == "__main__":
    main()
