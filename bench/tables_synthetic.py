"""Synthetic tables: vaekit against SDV's TVAE and CTGAN (their defaults) on mixed-type tables
bundled with statsmodels, side by side in this one script.

    bash bench/setup_tables.sh sdv                       # once: SDV, SDMetrics, statsmodels in bench/.venv-sdv
    OMP_NUM_THREADS=1 nice .venv/bin/python bench/tables_synthetic.py --seeds 2 --out bench/out/tables-synthetic

Tables (bench/sdv_worker.py TABLES): statsmodels' fair, anes96, grunfeld and randhie, split 80/20
with a fixed seed; the same columns are declared categorical for every contender. Each contender
learns the training rows and draws as many synthetic rows; SDMetrics' quality report (column
shapes, column-pair trends), a random forest trained on the synthetic rows and tested on the real
test rows (macro F1; trained on the real training rows for reference), the fraction of synthetic
rows that copy a training row (SDMetrics' NewRowSynthesis, numbers within 1%), and the training
time (vaekit: `vaekit train` without its pictures, from reading the CSV to the test evaluation;
SDV: synthesizer.fit). Per table and seed the contenders run one after another in an order that
rotates. Writes OUT/results.json and OUT/results.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

import vaekit
from vaekit.data import write_table
from vaekit.workflows import tables

ROOT = Path(__file__).resolve().parents[1]
SDV_PYTHON = ROOT / "bench" / ".venv-sdv" / "bin" / "python"
WORKER = ROOT / "bench" / "sdv_worker.py"
CONTENDERS = ("vaekit", "tvae", "ctgan")
METRICS = ("quality", "column_shapes", "column_pair_trends", "tstr_f1", "copies", "seconds")


def fail(message: str) -> None:
    print(f"tables_synthetic: error: {message}", file=sys.stderr)
    sys.exit(2)


def worker(*args: str) -> dict:
    done = subprocess.run([str(SDV_PYTHON), str(WORKER), *args], capture_output=True, text=True)
    if done.returncode != 0:
        fail(f"sdv_worker {args[0]} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1]) if args[0] != "export" else {}


def run_vaekit(folder: Path, seed: int, out: Path) -> float:
    meta = json.loads((folder / "meta.json").read_text())
    t0 = time.perf_counter()
    run = vaekit.train(
        str(folder / "train.csv"),
        out=out.with_suffix(""),
        overwrite=True,
        seed=seed,
        categorical=meta["categorical"],
        progress=False,
        figures=False,
    )
    seconds = time.perf_counter() - t0
    write_table(tables.sample_rows(run, meta["rows"], seed=seed), out)
    return seconds


def one_table(folder: Path, seeds: list[int], work: Path) -> dict:
    res: dict = {}
    for seed in seeds:
        order = CONTENDERS[seed % 3 :] + CONTENDERS[: seed % 3]
        cell: dict = {}
        for who in order:
            synthetic = work / f"{folder.name}-{who}-s{seed}.csv"
            if who == "vaekit":
                seconds = run_vaekit(folder, seed, synthetic)
            else:
                seconds = worker(
                    "fit", "--model", who, "--dir", str(folder), "--seed", str(seed), "--out", str(synthetic)
                )["seconds"]
            cell[who] = {**worker("evaluate", "--dir", str(folder), "--synthetic", str(synthetic)), "seconds": seconds}
        res[seed] = cell
        print(
            f"{folder.name} seed {seed}: "
            + ", ".join(f"{k} quality {cell[k]['quality']:.3f} ({cell[k]['seconds']:.0f}s)" for k in CONTENDERS),
            flush=True,
        )
    return res


def summary(results: dict) -> tuple[dict, str]:
    means = {
        name: {who: {m: float(np.mean([c[who][m] for c in cells.values()])) for m in METRICS} for who in CONTENDERS}
        for name, cells in results.items()
    }
    trtr = {name: float(np.mean([c["vaekit"]["trtr_f1"] for c in cells.values()])) for name, cells in results.items()}
    head = "| table | contender | quality | column shapes | column-pair trends | TSTR macro F1 (real: TRTR) | copies | training s |"
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, row in means.items():
        for who in CONTENDERS:
            m = row[who]
            lines.append(
                f"| {name} | {who} | {m['quality']:.3f} | {m['column_shapes']:.3f} | "
                f"{m['column_pair_trends']:.3f} | {m['tstr_f1']:.3f} ({trtr[name]:.3f}) | {m['copies']:.3f} | "
                f"{m['seconds']:.1f} |"
            )
    return {"means": means, "trtr_f1": trtr}, "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--tables", default=None, help="comma-separated names (default: all of sdv_worker.TABLES)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "tables-synthetic")
    args = ap.parse_args()
    if not SDV_PYTHON.is_file():
        fail("SDV's environment is missing: run `bash bench/setup_tables.sh sdv` first")
    torch.set_num_threads(1)
    data, work = args.out / "data", args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    worker("export", "--out", str(data))
    names = sorted(p.name for p in data.iterdir() if (p / "meta.json").is_file())
    if args.tables:
        names = [n for n in names if n in set(args.tables.split(","))]
    seeds = list(range(args.seeds))
    results = {name: one_table(data / name, seeds, work) for name in names}
    stats, md = summary(results)
    print(md)
    (args.out / "results.md").write_text(md + "\n")
    meta = {"command": "python " + " ".join(sys.argv), "machine": platform.platform(), "threads": 1, "seeds": seeds}
    (args.out / "results.json").write_text(json.dumps({**meta, **stats, "raw": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
