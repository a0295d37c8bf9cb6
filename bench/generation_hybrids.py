"""Sharp generation: a plain VAE and a VAE-GAN (--adversarial), each sampled from N(0, I), a
Gaussian mixture and a latent diffusion prior (`vaekit fit-prior --kind gmm|diffusion`), measured
side by side: FD, precision and recall (k = 3) in the feature classifier's features, the sharpness
ratio of samples, the reconstructions' SSIM, FD and sharpness, and what each costs to train.

    .venv/bin/python bench/generation_hybrids.py --data fashion-mnist [--n 10000] [--docs]
    .venv/bin/python bench/generation_hybrids.py --data colour [--docs]

fashion-mnist: the official 60,000 / 10,000 split. colour: 32x32 crops of scikit-learn's two
bundled photographs (china.jpg, flower.jpg; no download), every 8 pixels, the left 80% of each
photograph for training and the right 20% for testing, labelled by photograph (so the FD's
classifier tells the two textures apart). Both models of a data set share every setting but
--adversarial. Run folders, tables (table.md, results.json) and the sample grids go to
bench/out/hybrids/<data>/ (an existing run or prior there is reused); --docs also writes the grids
to docs/images/. Run it with one thread at low priority on a shared machine:
OMP_NUM_THREADS=1 nice -n 15 ...
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_sample_images

import vaekit
from vaekit import plots
from vaekit.core.sampling import reconstruct, sample
from vaekit.evaluation.classifier import get_classifier
from vaekit.evaluation.reconstruction import reconstruction_metrics
from vaekit.evaluation.sample_quality import sample_metrics
from vaekit.workflows.fit_prior import fit_prior

ROOT = Path(__file__).resolve().parents[1]
PRIORS = ("standard", "gmm", "diffusion")
PRIOR_LABEL = {"standard": "N(0, I)", "gmm": "GMM (10, full)", "diffusion": "latent diffusion"}
# every setting both models of a data set share; the VAE-GAN adds ADVERSARIAL
SETTINGS = {
    "fashion-mnist": dict(epochs=12, latent_dim=16),
    "colour": dict(epochs=30, latent_dim=32, batch_size=64),
}
ADVERSARIAL = {
    "fashion-mnist": dict(adversarial=True, adversarial_start=1266, adversarial_weight=0.25),  # after 3 epochs
    "colour": dict(adversarial=True, adversarial_start=1000, adversarial_weight=0.25),  # after 10 epochs
}
CROP, STRIDE, TRAIN_PART = 32, 8, 0.8


def colour_crops(folder: Path) -> Path:
    """crops.npz: 32x32 crops of scikit-learn's sample photographs, split by position (see above)."""
    path = folder / "crops.npz"
    if path.is_file():
        return path
    parts = {"train": ([], []), "test": ([], [])}
    for label, img in enumerate(load_sample_images().images):  # (427, 640, 3) uint8 each
        h, w, _ = img.shape
        cut = int(w * TRAIN_PART)
        for split, (x0, x1) in (("train", (0, cut)), ("test", (cut, w))):
            for top in range(0, h - CROP + 1, STRIDE):
                for left in range(x0, x1 - CROP + 1, STRIDE):
                    parts[split][0].append(img[top : top + CROP, left : left + CROP])
                    parts[split][1].append(label)
    folder.mkdir(parents=True, exist_ok=True)
    (x, y), (xt, yt) = parts["train"], parts["test"]
    np.savez(path, x=np.stack(x), y=np.array(y), x_test=np.stack(xt), y_test=np.array(yt))
    return path


def trained(source: str, out: Path, name: str, options: dict) -> tuple[vaekit.Run, float]:
    """The run `name` (trained now, or reused) and its training seconds (the epochs' own time
    as metrics.jsonl records it, so a reused run reports what its training took)."""
    if not (out / name / "model.safetensors").is_file():
        vaekit.train(source, out=out / name, overwrite=True, progress=False, **options)
    run = vaekit.load_run(out / name)
    return run, sum(r["seconds"] for r in run.metrics())


def priors_fitted(run: vaekit.Run) -> dict[str, float]:
    """Fit the GMM and the diffusion prior (unless already fitted) -> their fit seconds."""
    seconds = {"standard": 0.0}
    for kind in PRIORS[1:]:
        if kind not in run.priors.fitted():
            fit_prior(run.path, kind=kind, progress=False)
        seconds[kind] = run.priors.info(kind)["seconds"]
    return seconds


def measured(run: vaekit.Run, classifier, n: int) -> list[dict]:
    """One row per prior: sample measures (n samples vs n test examples) and the reconstructions'."""
    data = run.data()
    rec = reconstruction_metrics(run.model, data.test, classifier=classifier)
    rows = []
    for kind in PRIORS:
        t0 = time.perf_counter()
        s = sample_metrics(run.model, data, classifier, n=n, prior=run.prior(kind), seed=0)
        rows.append({"prior": kind, **s, "recon_ssim": rec["ssim"], "seconds_measure": time.perf_counter() - t0})
    return rows


def sample_grid(runs: dict[str, vaekit.Run], rows: list[dict], path: Path, title: str) -> Path:
    """64 samples (seed 0) per model and prior, one panel each, models in rows."""
    fig, axes = plots.plt.subplots(len(runs), len(PRIORS), figsize=(3.3 * len(PRIORS), 3.6 * len(runs)))
    for i, (name, run) in enumerate(runs.items()):
        for j, kind in enumerate(PRIORS):
            r = next(r for r in rows if r["model"] == name and r["prior"] == kind)
            x = sample(run.model, 64, prior=run.prior(kind), seed=0)
            axes[i, j].imshow(plots.image_grid(x, nrow=8, min_tile=0))
            axes[i, j].set_title(
                f"{name}, {PRIOR_LABEL[kind]}\nFD {r['fd_samples']:.2f}, sharpness {r.get('sharpness_samples', float('nan')):.2f}",
                fontsize=9,
            )
            axes[i, j].axis("off")
    fig.suptitle(title, fontsize=10)
    return plots.save_figure(fig, path, dpi=110)


def reconstruction_grid(runs: dict[str, vaekit.Run], path: Path) -> Path:
    """16 test images, then each model's reconstructions of them, one row each."""
    data = next(iter(runs.values())).data()
    x = data.test.x[:: max(1, len(data.test) // 16)][:16]
    rows = [x, *(reconstruct(run.model, x) for run in runs.values())]
    fig, axes = plots.plt.subplots(len(rows), 1, figsize=(8, 1.0 * len(rows) + 0.4))
    for ax, images, label in zip(axes, rows, ["test images", *runs]):
        ax.imshow(plots.image_grid(images, nrow=16, min_tile=0))
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    return plots.save_figure(fig, path, dpi=110)


def markdown(rows: list[dict], seconds: dict[str, float], n: int) -> str:
    lines = [
        "| model | prior | FD | precision | recall | sharpness | train s (+ prior fit s) | recon SSIM | recon FD | recon sharpness |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        sharp = lambda k, r=r: f"{r[k]:.3f}" if r.get(k) is not None else "-"  # noqa: E731
        fit = f" + {r['fit_seconds']:.0f}" if r["prior"] != "standard" else ""
        lines.append(
            f"| {r['model']} | {PRIOR_LABEL[r['prior']]} | {r['fd_samples']:.2f} | {r['precision_samples']:.3f} | "
            f"{r['recall_samples']:.3f} | {sharp('sharpness_samples')} | {seconds[r['model']]:.0f}{fit} | "
            f"{r['recon_ssim']:.4f} | {r['fd_reconstructions']:.2f} | {sharp('sharpness_reconstructions')} |"
        )
    ref = rows[0]
    lines.append(
        f"\n{n} samples vs {n} test examples. Floor (training vs test examples): FD {ref['fd_train_reference']:.2f}, "
        f"precision {ref['precision_train_reference']:.3f}, recall {ref['recall_train_reference']:.3f}, "
        f"sharpness {ref.get('sharpness_train_reference', float('nan')):.3f}. {ref['classifier']}."
    )
    return "\n".join(lines)


def targets(rows: list[dict]) -> list[str]:
    """The issue's targets, each met or not, per VAE-GAN row (against the plain VAE with the same prior)."""
    plain = {r["prior"]: r for r in rows if r["model"] == "VAE"}
    plain_ssim = next(iter(plain.values()))["recon_ssim"]
    out = []
    for r in (r for r in rows if r["model"] == "VAE-GAN"):
        p = plain[r["prior"]]
        checks = [
            ("FD <= 3", r["fd_samples"] <= 3, f"{r['fd_samples']:.2f}"),
            (
                "recall >= plain - 0.05",
                r["recall_samples"] >= p["recall_samples"] - 0.05,
                f"{r['recall_samples']:.3f} vs {p['recall_samples']:.3f}",
            ),
            (
                "sharpness >= 0.8",
                (r.get("sharpness_samples") or 0) >= 0.8,
                f"{r.get('sharpness_samples', float('nan')):.3f}",
            ),
            (
                "SSIM >= plain - 0.02",
                r["recon_ssim"] >= plain_ssim - 0.02,
                f"{r['recon_ssim']:.4f} vs {plain_ssim:.4f}",
            ),
        ]
        out.append(
            f"VAE-GAN + {PRIOR_LABEL[r['prior']]}: "
            + "; ".join(f"{name} {'met' if ok else 'not met'} ({v})" for name, ok, v in checks)
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=sorted(SETTINGS), default="fashion-mnist")
    p.add_argument("--n", type=int, default=10000, help="samples per measurement (at most the test split)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "hybrids")
    p.add_argument("--docs", action="store_true", help="also write the grids to docs/images/")
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs per model (default: 12 fashion-mnist, 30 colour); fewer to try it",
    )
    a = p.parse_args()
    t_start = time.perf_counter()
    out = a.out / a.data
    source = "fashion-mnist" if a.data == "fashion-mnist" else str(colour_crops(out))
    settings = {**SETTINGS[a.data], **({"epochs": a.epochs} if a.epochs else {})}
    runs, seconds, fits = {}, {}, {}
    for name, extra in (("VAE", {}), ("VAE-GAN", ADVERSARIAL[a.data])):
        runs[name], seconds[name] = trained(source, out, name.lower(), {**settings, **extra})
        print(f"{name}: trained in {seconds[name]:.0f} s", flush=True)
        fits[name] = priors_fitted(runs[name])
        print(f"{name}: priors fitted in " + ", ".join(f"{k} {v:.0f} s" for k, v in fits[name].items()), flush=True)
    data = runs["VAE"].data()
    classifier = get_classifier(runs["VAE"].config.data, data)
    n = min(a.n, len(data.test))
    rows = []
    for name, run in runs.items():
        for r in measured(run, classifier, n):
            rows.append({"model": name, "fit_seconds": fits[name][r["prior"]], **r})
    table = markdown(rows, seconds, n)
    lines = targets(rows)
    print(table + "\n\n" + "\n".join(lines))
    (out / "table.md").write_text(table + "\n\n" + "\n".join(lines) + "\n")
    (out / "results.json").write_text(
        json.dumps(
            {"rows": rows, "train_seconds": seconds, "settings": settings, "adversarial": ADVERSARIAL[a.data]},
            indent=1,
            default=str,
        )
    )
    folders = [out, *([ROOT / "docs" / "images"] if a.docs else [])]
    title = f"{data.name}: 64 samples each (seed 0)"
    for folder in folders:
        sample_grid(runs, rows, folder / f"hybrids_{a.data}_samples.png", title)
        reconstruction_grid(runs, folder / f"hybrids_{a.data}_reconstructions.png")
    print(f"\nwrote {out}/table.md, results.json and the grids; {time.perf_counter() - t_start:.0f} s in all")


if __name__ == "__main__":
    main()
