"""Request latency of the explorer's live endpoints (issue 7): is a decode fast enough to feel live?

    .venv/bin/python bench/serve_latency.py --run runs/fmnist            # target: decode median < 30 ms

Serves the run with `vaekit serve` in a subprocess on a loopback port (as a user would) and times
sequential requests from an HTTP client with keep-alive, one at a time as the page sends them
(it never has more than one decode in flight). Each round sends a slider decode (POST /api/decode
with a fresh z ~ N(0, I)) and a map decode (POST /api/map/decode at a random map point); every
tenth round also fetches the page's 24-sample grid. The model's decode alone (no HTTP, in this
process) is timed too, to show where the time goes. When the run folder is missing, a small conv
VAE is trained on Fashion-MNIST first (--epochs, default 3). Writes bench/out/serve_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import torch

import vaekit
from vaekit.core import sampling


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def summary(ms: list[float]) -> dict[str, float]:
    return {
        "n": len(ms),
        "median_ms": statistics.median(ms),
        "p95_ms": pct(ms, 95),
        "min_ms": min(ms),
        "max_ms": max(ms),
    }


def start_server(run: Path, port: int, threads: int | None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    proc = subprocess.Popen(
        [sys.executable, "-m", "vaekit", "serve", str(run), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    for line in proc.stdout:
        print("  server:", line.rstrip())
        if f"127.0.0.1:{port}" in line:
            break
    else:
        raise SystemExit("vaekit serve exited before printing its address")
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise SystemExit("vaekit serve did not start listening")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, default=Path("runs/fmnist"))
    ap.add_argument("--epochs", type=int, default=3, help="epochs when the run must be trained first")
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the server (default: torch's)")
    ap.add_argument("--out", type=Path, default=Path("bench/out/serve_latency.json"))
    args = ap.parse_args()

    if not (args.run / "model.safetensors").exists():
        print(f"{args.run} is missing: training a conv VAE on Fashion-MNIST for {args.epochs} epochs ...")
        vaekit.train("fashion-mnist", out=args.run, epochs=args.epochs, arch="conv", overwrite=True)

    model = vaekit.load(args.run)
    rng = np.random.default_rng(0)
    d = model.latent_dim
    # the model alone, batch of one, as the server runs it
    for _ in range(args.warmup):
        sampling.decode(model, torch.randn(1, d))
    model_ms = []
    for _ in range(args.rounds):
        z = torch.from_numpy(rng.standard_normal((1, d)).astype(np.float32))
        t0 = time.perf_counter()
        sampling.decode(model, z)
        model_ms.append(1000 * (time.perf_counter() - t0))

    port = free_port()
    proc = start_server(args.run, port, args.threads)
    base = f"http://127.0.0.1:{port}"
    times: dict[str, list[float]] = {"decode": [], "map_decode": [], "samples_24": []}
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            info = client.get("/api/info").json()
            u = client.get("/api/map").json()["u"]
            span = (min(u), max(u))

            def timed(name, method, url, **kw):
                t0 = time.perf_counter()
                r = client.request(method, url, **kw)
                dt = 1000 * (time.perf_counter() - t0)
                r.raise_for_status()
                if name is not None:
                    times[name].append(dt)

            for i in range(args.warmup + args.rounds):
                keep = i >= args.warmup
                z = rng.standard_normal(d).round(4).tolist()
                timed("decode" if keep else None, "POST", "/api/decode", json={"z": z})
                u, v = rng.uniform(*span, size=2).tolist()
                timed("map_decode" if keep else None, "POST", "/api/map/decode", json={"u": u, "v": v})
                if i % 10 == 0:
                    timed("samples_24" if keep else None, "GET", "/api/samples", params={"n": 24, "seed": i})
    finally:
        proc.terminate()
        proc.wait(timeout=20)

    result = {
        "run": str(args.run),
        "data": info["data"],
        "model": f"{info['kind']} {info['arch']}",
        "latent_dim": d,
        "data_shape": info["data_shape"],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (shared), torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads, server OMP_NUM_THREADS={args.threads or 'default'}",
        "model_decode_only": summary(model_ms),
        **{name: summary(ms) for name, ms in times.items() if ms},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{result['data']} {result['model']}, latent {d}, {result['machine']}")
    print(f"{'what':<34}{'n':>6}{'median ms':>12}{'p95 ms':>10}")
    labels = {
        "model_decode_only": "model decode only (no HTTP)",
        "decode": "POST /api/decode (sliders)",
        "map_decode": "POST /api/map/decode (map)",
        "samples_24": "GET /api/samples?n=24",
    }
    for key, label in labels.items():
        if key in result:
            s = result[key]
            print(f"{label:<34}{s['n']:>6}{s['median_ms']:>12.2f}{s['p95_ms']:>10.2f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
