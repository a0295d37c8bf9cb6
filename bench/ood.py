"""OOD benchmark: AUROC of every anomaly score, a model trained on Fashion-MNIST, several out sets.

    nice python bench/ood.py --epochs 10 --out bench/out/ood      # trains 4 models, then scores

Trains (or reuses, with --reuse) in OUT/:
  fmnist/             a conv VAE on Fashion-MNIST (Bernoulli likelihood unless --likelihood)
  fmnist/background/  its likelihood-ratio background model (uniform:0.2-perturbed inputs)
  fmnist-no9/         the same without class 9 (ankle boot), and its background model
Out sets (--n examples each, 8-bit like the in data):
  digits     scikit-learn's 8x8 digits resized to 28x28 (bilinear)
  font digits  digits drawn with the machine's fonts under random affine maps (bench/font_digits.py):
             simpler than Fashion-MNIST, as MNIST is
  uniform    uniform noise on [0, 1]
  gaussian   N(0.5, 0.25^2) noise clipped to [0, 1]
  constant   one grey level per image, uniform on [0, 1]
  flipped    Fashion-MNIST test images upside down
  class 9    held-out class: test ankle boots against the other test classes, model fmnist-no9
Scores: vaekit's (vaekit.evaluation.scores), among them the ensemble (the mean of recon_error, the
NLL and complexity, each rank-normalised against the run's validation split), and for the choice
of that default three other ways to combine the rank-normalised scores: with llr added (+llr),
and the largest instead of the mean (max, max+llr).
Writes OUT/results.json and OUT/results.md (the BENCHMARKS.md table) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import vaekit
from vaekit.data import load_split
from vaekit.evaluation.ood import ood_metrics
from vaekit.evaluation.scores import ensemble_members, rank_normalise, score_examples, with_ensemble
from vaekit.workflows import anomaly

sys.path.insert(0, str(Path(__file__).resolve().parent))
from font_digits import font_digits  # noqa: E402

HELD_OUT = 9


def quantize(x: torch.Tensor) -> torch.Tensor:
    """To the 8-bit grid k / 255 that real images (and the in data) live on."""
    return (x.clamp(0, 1) * 255).round() / 255


def out_sets(n: int, seed: int, test_x: torch.Tensor) -> dict[str, torch.Tensor]:
    from sklearn.datasets import load_digits

    g = torch.Generator().manual_seed(seed)
    digits = torch.from_numpy(load_digits().images / 16.0).float()[:, None]  # (1797, 1, 8, 8)
    digits = F.interpolate(digits, size=(28, 28), mode="bilinear", align_corners=False)
    pick = torch.randperm(len(test_x), generator=g)[:n]
    return {
        "digits": quantize(digits[:n]),
        "font digits": font_digits(n, seed=seed)[0],
        "uniform": quantize(torch.rand(n, 1, 28, 28, generator=g)),
        "gaussian": quantize(0.5 + 0.25 * torch.randn(n, 1, 28, 28, generator=g)),
        "constant": quantize(torch.rand(n, 1, 1, 1, generator=g).expand(n, 1, 28, 28).contiguous()),
        "flipped": test_x[pick].flip(-2),
    }


def combined(scores: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """vaekit's scores with its ensemble, plus three other combinations of the rank-normalised
    scores (z, against the validation split): the mean with llr, the largest, the largest with llr."""
    out = with_ensemble(scores, reference)
    z = {k: rank_normalise(scores[k], reference[k]) for k in scores}
    members = ensemble_members(list(scores))
    with_llr = members + (["llr"] if "llr" in scores else [])
    out["+llr"] = np.mean([z[k] for k in with_llr], 0)
    out["max"] = np.max([z[k] for k in members], 0)
    out["max+llr"] = np.max([z[k] for k in with_llr], 0)
    return out


def train_run(folder: Path, *, epochs: int, reuse: bool, **options):
    if reuse and (folder / "model.safetensors").exists():
        run = vaekit.load_run(folder)
    else:
        run = vaekit.train("fashion-mnist", out=folder, overwrite=True, epochs=epochs, progress=False, **options)
    if not (reuse and run.background() is not None):
        anomaly.fit_background(folder, epochs=epochs, overwrite=True, progress=False)
    return run.model, run.background().model, run.data().val


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--n", type=int, default=2000, help="examples per in / out set")
    ap.add_argument("--iw-samples", type=int, default=0)
    ap.add_argument("--likelihood", default=None, help="the VAE's likelihood (default: vaekit's choice, bernoulli)")
    ap.add_argument("--latent-dim", type=int, default=16)
    ap.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: vaekit's)")
    ap.add_argument("--lr-schedule", default=None, help="constant | cosine | plateau (default: vaekit's)")
    ap.add_argument("--arch", default=None, help="mlp | conv (default: vaekit's choice for the data)")
    ap.add_argument("--model", default="vae", help="vae | hvae (a hierarchical VAE adds the llr_top score)")
    ap.add_argument("--device", default=None, help="where to train (default: vaekit's choice); scores on the CPU")
    ap.add_argument("--out", type=Path, default=Path("bench/out/ood"))
    ap.add_argument("--reuse", action="store_true", help="reuse trained runs found in --out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-held-out", action="store_true", help="skip the held-out-class row (and its two trainings)")
    args = ap.parse_args()
    opts = dict(latent_dim=args.latent_dim, seed=args.seed, model=args.model)
    if args.device:
        opts["device"] = args.device
    args.out.mkdir(parents=True, exist_ok=True)  # a fresh clone has no bench/out
    if args.likelihood:
        opts["likelihood"] = args.likelihood
    if args.lr:
        opts["lr"] = args.lr
    if args.lr_schedule:
        opts["lr_schedule"] = args.lr_schedule
    if args.arch:
        opts["arch"] = args.arch
    model, bg, val = train_run(args.out / "fmnist", epochs=args.epochs, reuse=args.reuse, **opts)
    runs = ["fmnist", "fmnist/background"]
    if not args.no_held_out:
        held_model, held_bg, held_val = train_run(
            args.out / "fmnist-no9", epochs=args.epochs, reuse=args.reuse, exclude_labels=[HELD_OUT], **opts
        )
        runs += ["fmnist-no9", "fmnist-no9/background"]
    t_train = sum(_train_seconds(args.out / f) for f in runs)

    test = load_split("fashion-mnist:test")
    g = torch.Generator().manual_seed(args.seed)
    in_x = test.x[torch.randperm(len(test), generator=g)[: args.n]]
    t1 = time.perf_counter()
    settings = anomaly.ScoreSettings(iw_samples=args.iw_samples, seed=args.seed)

    def scorer(m, b, v):
        ref = anomaly.reference_scores(m, v, background=b, settings=settings)
        return lambda x: combined(score_examples(m, x, background=b, iw_samples=args.iw_samples, seed=args.seed), ref)

    score = scorer(model, bg, val)
    s_in = score(in_x)
    table: dict[str, dict[str, dict[str, float]]] = {}
    for name, x in out_sets(args.n, args.seed + 1, test.x).items():
        s_out = score(x)
        table[name] = {k: ood_metrics(s_in[k], s_out[k]) for k in s_in}
        print(f"{name}: " + ", ".join(f"{k} {v['auroc']:.3f}" for k, v in table[name].items()), flush=True)
    if not args.no_held_out:  # held-out class: in = the other classes of the test split, out = class 9
        is_out = test.y == HELD_OUT
        keep_in = torch.nonzero(~is_out).ravel()
        keep_in = keep_in[torch.randperm(len(keep_in), generator=g)[: args.n]]
        score9 = scorer(held_model, held_bg, held_val)
        s_in9 = score9(test.x[keep_in])
        s_out9 = score9(test.x[is_out][: args.n])
        table[f"class {HELD_OUT} (held out)"] = {k: ood_metrics(s_in9[k], s_out9[k]) for k in s_in9}
    t_score = time.perf_counter() - t1

    scores = list(s_in)
    lines = [
        "| out set | " + " | ".join(scores) + " |",
        "|---|" + "---:|" * len(scores),
    ]
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[k]['auroc']:.3f}" for k in scores) + " |")
    mean = {k: float(np.mean([row[k]["auroc"] for row in table.values()])) for k in scores}
    lines.append("| **mean** | " + " | ".join(f"**{mean[k]:.3f}**" for k in scores) + " |")
    worst = {k: min(row[k]["auroc"] for row in table.values()) for k in scores}
    lines.append("| **worst** | " + " | ".join(f"**{worst[k]:.3f}**" for k in scores) + " |")
    md = "\n".join(lines)
    print(md)
    print(f"training {t_train:.0f}s, scoring {t_score:.0f}s")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "command": "python " + " ".join(sys.argv),
        "epochs": args.epochs,
        "n": args.n,
        "iw_samples": args.iw_samples,
        "likelihood": model.config.likelihood,
        "latent_dim": args.latent_dim,
        "train_seconds": t_train,
        "score_seconds": t_score,
        "machine": platform.platform(),
        "threads": torch.get_num_threads(),
        "table": table,
        "mean_auroc": mean,
        "worst_auroc": worst,
        "val_nelbo": {r: _best_val(args.out / r) for r in runs if "/" not in r},
    }
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "results.md").write_text(md + "\n")


def _rows(folder: Path) -> list[dict]:
    return vaekit.load_run(folder).metrics()


def _best_val(folder: Path) -> float:
    return min((r["val_nelbo"] for r in _rows(folder)), default=math.nan)


def _train_seconds(folder: Path) -> float:
    """Seconds the run's epochs took (from metrics.jsonl, so also right for reused runs)."""
    return sum(r["seconds"] for r in _rows(folder))


if __name__ == "__main__":
    main()
