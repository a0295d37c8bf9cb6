"""Anomaly detection on ADBench's classical tables, the unsupervised protocol: each detector is fit
on every row of a table without its labels and scores every row; AUROC and AUPRC against the
labels, several seeds. vaekit (its default score, and every other score it computes) against
scikit-learn's IsolationForest and PyOD's VAE and AutoEncoder, all with their defaults, side by
side in this one script (per table and seed the contenders run one after another, in an order
that rotates, so that load on a shared machine falls on all of them alike).

    bash bench/setup_tables.sh pyod                      # once: PyOD in bench/.venv-pyod
    OMP_NUM_THREADS=1 nice .venv/bin/python bench/tables_anomaly.py --seeds 3 --out bench/out/tables-anomaly

The tables are read from ../shared/data/tables (relative to the repository root; --data to
change): .npz files holding X (rows x features) and y (1 = anomaly). vaekit is trained as a user
would (`vaekit train --data X.npy`: its default splits, so it learns from 81% of the rows; every
row is then scored, `vaekit score --data X.npy`); the others fit on all rows. Writes
OUT/results.json and OUT/results.md. --reuse-peers PREVIOUS/results.json takes PyOD's cells
(its scores and times) from an earlier run with the same seeds instead of running PyOD again
(PyOD's code has not changed; vaekit and IsolationForest always run).
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
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score

import vaekit
from vaekit.workflows import anomaly

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "tables"
PYOD_PYTHON = ROOT / "bench" / ".venv-pyod" / "bin" / "python"
CONTENDERS = ("vaekit", "iforest", "pyod-vae", "pyod-ae")


def fail(message: str) -> None:
    print(f"tables_anomaly: error: {message}", file=sys.stderr)
    sys.exit(2)


def metrics(y: np.ndarray, s: np.ndarray) -> dict[str, float]:
    return {"auroc": float(roc_auc_score(y, s)), "auprc": float(average_precision_score(y, s))}


def run_vaekit(x_path: Path, folder: Path, seed: int) -> tuple[dict[str, np.ndarray], str, float]:
    """-> (every score of every row, the score vaekit flags by, seconds to train and score)."""
    t0 = time.perf_counter()
    run = vaekit.train(
        str(x_path), out=folder, overwrite=True, seed=seed, split_seed=seed, progress=False, figures=False
    )
    result = anomaly.score_data(run, run.examples(str(x_path)))
    return result.scores, result.flag_by, time.perf_counter() - t0


def run_iforest(x: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    s = -IsolationForest(random_state=seed).fit(x).score_samples(x)
    return s, time.perf_counter() - t0


def run_pyod(x_path: Path, model: str, seed: int, out: Path) -> tuple[np.ndarray, float]:
    cmd = [
        str(PYOD_PYTHON),
        str(ROOT / "bench" / "pyod_worker.py"),
        "--x",
        str(x_path),
        "--model",
        model,
        "--seed",
        str(seed),
        "--out",
        str(out),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        fail(f"PyOD {model} failed on {x_path.name}: {done.stderr.strip().splitlines()[-1]}")
    return np.load(out), json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def one_table(path: Path, seeds: list[int], work: Path, previous: dict) -> dict:
    d = np.load(path)
    x, y = np.asarray(d["X"], dtype=np.float64), np.asarray(d["y"]).astype(int)
    x_path = work / f"{path.stem}.npy"
    np.save(x_path, x)  # the features only: no detector sees the labels
    res: dict = {"rows": int(x.shape[0]), "features": int(x.shape[1]), "anomalies": float(y.mean()), "seeds": {}}
    for seed in seeds:
        order = CONTENDERS[seed % 4 :] + CONTENDERS[: seed % 4]
        cell: dict = {}
        for who in order:
            if who == "vaekit":
                scores, flag_by, secs = run_vaekit(x_path, work / "runs" / f"{path.stem}-s{seed}", seed)
                cell["vaekit"] = {"default": flag_by, "seconds": secs, **{k: metrics(y, s) for k, s in scores.items()}}
            elif who == "iforest":
                s, secs = run_iforest(x, seed)
                cell["iforest"] = {**metrics(y, s), "seconds": secs}
            elif who in previous.get(str(seed), {}):
                cell[who] = {**previous[str(seed)][who], "reused": True}
            else:
                s, secs = run_pyod(x_path, who.split("-")[1], seed, work / f"{path.stem}-{who}-s{seed}.npy")
                cell[who] = {**metrics(y, s), "seconds": secs}
        res["seeds"][seed] = cell
        v = cell["vaekit"]
        print(
            f"{path.stem} seed {seed}: vaekit {v['default']} {v[v['default']]['auroc']:.3f} ({v['seconds']:.0f}s), "
            + ", ".join(f"{k} {cell[k]['auroc']:.3f} ({cell[k]['seconds']:.0f}s)" for k in CONTENDERS[1:]),
            flush=True,
        )
    return res


def summary(results: dict[str, dict]) -> tuple[dict, str]:
    """Means over seeds per table and over tables; the markdown table."""
    names = list(results)
    first = next(iter(results[names[0]]["seeds"].values()))
    vaekit_scores = [k for k in first["vaekit"] if k not in ("default", "seconds")]
    cols = [("vaekit default", lambda c: c["vaekit"][c["vaekit"]["default"]])]
    cols += [(f"vaekit {k}", lambda c, k=k: c["vaekit"][k]) for k in vaekit_scores]
    cols += [(k, lambda c, k=k: c[k]) for k in CONTENDERS[1:]]
    per_table: dict = {}
    for name in names:
        cells = list(results[name]["seeds"].values())
        per_table[name] = {
            label: {m: float(np.mean([get(c)[m] for c in cells])) for m in ("auroc", "auprc")} for label, get in cols
        }
        per_table[name]["seconds"] = {
            "vaekit": float(np.mean([c["vaekit"]["seconds"] for c in cells])),
            **{k: float(np.mean([c[k]["seconds"] for c in cells])) for k in CONTENDERS[1:]},
        }
    labels = [label for label, _ in cols]
    mean = {
        label: {m: float(np.mean([per_table[n][label][m] for n in names])) for m in ("auroc", "auprc")}
        for label in labels
    }
    lines = [
        "| table | " + " | ".join(labels) + " | seconds (vaekit / IF / PyOD VAE / PyOD AE) |",
        "|---|" + "---:|" * (len(labels) + 1),
    ]
    for n in names:
        t = per_table[n]["seconds"]
        secs = " / ".join(f"{t[k]:.1f}" for k in ("vaekit", *CONTENDERS[1:]))
        lines.append(f"| {n} | " + " | ".join(f"{per_table[n][lab]['auroc']:.3f}" for lab in labels) + f" | {secs} |")
    lines.append("| **mean AUROC** | " + " | ".join(f"**{mean[lab]['auroc']:.3f}**" for lab in labels) + " | |")
    lines.append("| mean AUPRC | " + " | ".join(f"{mean[lab]['auprc']:.3f}" for lab in labels) + " | |")
    return {"per_table": per_table, "mean": mean}, "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of ADBench .npz tables")
    ap.add_argument("--tables", default=None, help="comma-separated table names (file stems); default: all")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "tables-anomaly")
    ap.add_argument("--reuse-peers", type=Path, default=None, help="an earlier results.json whose PyOD cells to reuse")
    args = ap.parse_args()
    if not args.data.is_dir():
        fail(
            f"the ADBench tables are not at {args.data.resolve()} (expected ../shared/data/tables beside the "
            "repository, or pass --data FOLDER)"
        )
    paths = sorted(args.data.glob("*.npz"))
    if args.tables:
        wanted = set(args.tables.split(","))
        paths = [p for p in paths if p.stem in wanted]
    if not paths:
        fail(f"no .npz tables in {args.data.resolve()}")
    if not PYOD_PYTHON.is_file():
        fail("PyOD's environment is missing: run `bash bench/setup_tables.sh pyod` first")
    torch.set_num_threads(1)
    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seeds))
    earlier = json.loads(args.reuse_peers.read_text())["raw"] if args.reuse_peers else {}
    peers = {
        n: {s: {k: v for k, v in c.items() if k.startswith("pyod")} for s, c in t["seeds"].items()}
        for n, t in earlier.items()
    }
    results = {p.stem: one_table(p, seeds, work, peers.get(p.stem, {})) for p in paths}
    stats, md = summary(results)
    print(md)
    (args.out / "results.md").write_text(md + "\n")
    meta = {
        "command": "python " + " ".join(sys.argv),
        "machine": platform.platform(),
        "threads": 1,
        "vaekit": vaekit.__version__,
        "seeds": seeds,
    }
    (args.out / "results.json").write_text(json.dumps({**meta, **stats, "raw": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
