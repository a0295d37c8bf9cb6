"""The hierarchical VAE against the flat conv VAE at equal wall-clock: test NLL in bits/dim
(IWAE), -ELBO, FD, precision/recall and the sharpness ratio of samples, learning curves, time per
epoch and peak memory.

    .venv/bin/python bench/hvae.py --data fashion-mnist --budget 600 [--device cuda] [--docs]
    .venv/bin/python bench/hvae.py --data colour --budget 600

Contenders (every one trained for the same --budget seconds, seed 0, batch 128, its own defaults
otherwise): the flat conv VAE with the discretized logistic (the baseline of docs/evaluation.md),
the same with the discretized logistic mixture (10 components), and --model hvae with the
mixture. Each trains in a child process (`vaekit train --time-limit`), whose peak resident memory
the kernel reports (os.wait4). Run folders, results.json, table.md, learning_curves.png and the
sample grids go to bench/out/hvae/<data>/; --docs replaces the section in BENCHMARKS.md. On a
shared machine run it with one thread at low priority: OMP_NUM_THREADS=1 nice -n 15 ...
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from generation_hybrids import colour_crops
from machine import describe
from sections import replace_section

import vaekit
from vaekit import plots
from vaekit.core.sampling import sample
from vaekit.evaluation.classifier import get_classifier
from vaekit.evaluation.likelihood import likelihood_metrics
from vaekit.evaluation.sample_quality import sample_metrics

ROOT = Path(__file__).resolve().parents[1]
CONTENDERS = {
    "conv VAE": dict(model="vae", arch="conv", likelihood="discretized-logistic"),
    "conv VAE + mixture": dict(model="vae", arch="conv", likelihood="discretized-logistic-mixture"),
    "HVAE": dict(model="hvae", likelihood="discretized-logistic-mixture"),
}


def markers(a) -> tuple[str, str]:
    """One BENCHMARKS.md section per data set and device."""
    key = f"{a.data} {'gpu' if a.device.startswith('cuda') else a.device}"
    return f"<!-- bench/hvae.py {key} begin -->", f"<!-- bench/hvae.py {key} end -->"


def train(source: str, folder: Path, extra: dict, budget: float, device: str) -> dict:
    """vaekit.train in a child process -> its wall-clock seconds and peak resident memory."""
    # fp32: a likelihood in bits/dim, so no reduced-precision autocast on a GPU
    options = dict(out=str(folder), overwrite=True, progress=False, time_limit=budget, seed=0, batch_size=128)
    options |= dict(device=device, precision="fp32", **extra)
    cmd = [sys.executable, "-c", f"import vaekit; vaekit.train({source!r}, **{options!r})"]
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd)
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"training failed: {' '.join(cmd)}")
    return {"seconds_total": time.perf_counter() - t0, "peak_rss_mib": usage.ru_maxrss / 1024}


def curve(run: vaekit.Run) -> list[tuple[float, float]]:
    """(seconds of training so far, validation -ELBO in bits/dim) after each epoch."""
    dims, elapsed, points = math.prod(run.config.model.data_shape), 0.0, []
    for row in run.metrics():
        elapsed += row["seconds"]
        points.append((elapsed, row["val_nelbo"] / (dims * math.log(2))))
    return points


def measure(run: vaekit.Run, classifier, a) -> dict:
    data = run.data()
    test = data.test.subset(torch.arange(min(a.n_test, len(data.test))))
    t0 = time.perf_counter()
    lik = likelihood_metrics(run.model, test, iw_samples=a.iw_samples, progress=True)
    t1 = time.perf_counter()
    s = sample_metrics(run.model, data, classifier, n=min(a.n_fd, len(data.test)), seed=0)
    rows = run.metrics()
    return {
        "epochs": len(rows),
        "seconds_per_epoch": sum(r["seconds"] for r in rows) / len(rows),
        "nelbo_bits_per_dim": lik["nelbo_bits_per_dim"],
        "nll_bits_per_dim": lik["nll_bits_per_dim"],
        "iw_samples": a.iw_samples,
        "n_test": len(test),
        "seconds_iwae": t1 - t0,
        "fd": s["fd_samples"],
        "fd_reconstructions": s["fd_reconstructions"],
        "fd_train_reference": s["fd_train_reference"],
        "precision": s.get("precision_samples"),
        "recall": s.get("recall_samples"),
        "sharpness": s.get("sharpness_samples"),
        "parameters": sum(p.numel() for p in run.model.parameters()),
        "curve": curve(run),
    }


def learning_curves(results: dict, path: Path, title: str) -> None:
    fig, ax = plots.plt.subplots(figsize=(6.5, 4))
    for name, r in results.items():
        t, b = zip(*r["curve"])
        ax.plot(t, b, marker=".", label=name)
    ax.set_xlabel("training seconds")
    ax.set_ylabel("validation -ELBO, bits/dim")
    ax.set_title(title)
    lo = min(min(b for _, b in r["curve"]) for r in results.values())
    ax.set_ylim(lo - 0.1, lo + 1.5)
    ax.grid(alpha=0.3)
    ax.legend()
    plots.save_figure(fig, path)


def table(results: dict, a, machine: str) -> str:
    head = (
        "| model | epochs in budget | s/epoch | test NLL bits/dim (IWAE) | -ELBO bits/dim | FD samples | "
        "precision | recall | sharpness | parameters | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = "".join(
        f"| {n} | {r['epochs']} | {r['seconds_per_epoch']:.1f} | {r['nll_bits_per_dim']:.3f} | "
        f"{r['nelbo_bits_per_dim']:.3f} | {r['fd']:.2f} | {r['precision']:.3f} | {r['recall']:.3f} | "
        f"{r['sharpness']:.2f} | {r['parameters']:,} | {r['peak_rss_mib']:.0f} |\n"
        for n, r in results.items()
    )
    begin, end = markers(a)
    return (
        f"{begin}\n## Hierarchical VAE vs flat conv VAE at equal wall-clock ({a.data})\n\n"
        f"`{' '.join(sys.argv)}` on {machine}: every model trained {a.budget:.0f} s (seed 0, batch 128), "
        f"test NLL with k = {a.iw_samples} importance samples on {next(iter(results.values()))['n_test']} test "
        f"images, FD etc. on {a.n_fd} samples (N(0, I); the HVAE's lower groups at temperature 1).\n\n"
        f"{head}{rows}\n![learning curves](bench/out/hvae/{a.data}/learning_curves.png)\n{end}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=("fashion-mnist", "colour", "digits"), default="fashion-mnist")
    p.add_argument("--budget", type=float, default=600.0, help="training seconds per model")
    p.add_argument("--contenders", default=",".join(CONTENDERS))
    p.add_argument("--device", default="auto")
    p.add_argument("--iw-samples", type=int, default=100)
    p.add_argument("--n-test", type=int, default=10_000, help="test images for the IWAE NLL")
    p.add_argument("--n-fd", type=int, default=10_000)
    p.add_argument("--machine", default=None, help="how to name the machine (default: what bench/machine.py sees)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "hvae")
    p.add_argument("--docs", action="store_true", help="write the section of BENCHMARKS.md")
    p.add_argument("--reuse", action="store_true", help="measure the runs already in --out instead of training")
    a = p.parse_args()
    out = a.out / a.data
    out.mkdir(parents=True, exist_ok=True)
    source = str(colour_crops(out)) if a.data == "colour" else a.data
    names = a.contenders.split(",")
    runs, costs = {}, {}
    for name in names:
        folder = out / name.replace(" ", "-").replace("+", "").replace("--", "-").lower()
        cost_file = folder.with_suffix(".cost.json")
        if not (a.reuse and cost_file.is_file()):
            cost_file.write_text(json.dumps(train(source, folder, CONTENDERS[name], a.budget, a.device)))
        costs[name] = json.loads(cost_file.read_text())
        runs[name] = vaekit.load_run(folder, device="cpu" if a.device == "cpu" else a.device)
        print(f"{name}: trained {len(runs[name].metrics())} epochs, {costs[name]}", flush=True)
    data = runs[names[0]].data()
    classifier = get_classifier(runs[names[0]].config.data, data)
    results = {}
    for name, run in runs.items():
        results[name] = {**measure(run, classifier, a), **costs[name]}
        print(name, {k: v for k, v in results[name].items() if k != "curve"}, flush=True)
        plots.save_grid(out / f"samples-{name.replace(' ', '-').lower()}.png", sample(run.model, 64, seed=0))
    (out / "results.json").write_text(json.dumps(results, indent=1))
    learning_curves(results, out / "learning_curves.png", f"{a.data}, {a.budget:.0f} s per model")
    md = table(results, a, a.machine or describe())
    (out / "table.md").write_text(md + "\n")
    print(md)
    if a.docs:
        replace_section(ROOT / "BENCHMARKS.md", md, *markers(a))


if __name__ == "__main__":
    main()
