"""Two runs on the same data side by side, typically an AE and a VAE: the tutorial's claim that
an AE's latent space cannot be sampled at random while a VAE's can, measured.

For each model: decoded z ~ N(0, I) and their FD (classifier features) to the test split, the
same for z drawn from a Gaussian fitted to the model's own training codes (which shows whether
the decoder or the latent layout is to blame), how recognisable the samples are to the
classifier, how far the codes lie from N(0, I), and reconstruction error. Pictures: samples,
interpolations, reconstructions and latent scatters of both, in one HTML page and as PNGs.

    vaekit.workflows.compare.compare("runs/fmnist-ae", "runs/fmnist-vae", out="compare/")
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write, write_json
from ..core import sampling
from ..core.model import VAE
from ..core.sampling import reconstruct
from ..errors import VaekitError
from ..evaluation import sharpness
from ..evaluation.classifier import get_classifier
from ..evaluation.common import labels_for
from ..evaluation.latent import latent_metrics
from ..evaluation.precision_recall import knn_radii, precision_recall
from ..evaluation.reconstruction import reconstruction_metrics
from ..evaluation.sample_quality import (
    class_confidence,
    feature_frechet_distance,
    frechet_distance,
    gaussian_stats,
    generate,
)
from ..runs import Run, load_run
from . import html
from .pictures import interpolation_grid, interpolation_pairs, reconstruction_grid, scatter_png

COMPARE_JSON, COMPARE_HTML = "compare.json", "compare.html"


def _label(run: Run, other_kind: str) -> str:
    kind = run.config.model.kind.upper()
    return kind if kind != other_kind else f"{kind} ({run.path.name})"


def fitted_codes(model: VAE, data, n: int, *, seed: int = 0) -> torch.Tensor:
    """n codes from N(m, S), the Gaussian that matches the mean and covariance of the model's
    aggregate posterior on its training split (S = Cov(mu) + mean(var) for a VAE) -> (n, D)."""
    enc = sampling.encode_dataset(model, data.train)
    mu = enc["mu"].double()
    cov = torch.cov(mu.T).reshape(mu.shape[1], mu.shape[1])
    if model.stochastic:
        cov = cov + torch.diag(enc["logvar"].double().exp().mean(0))
    cov = cov + 1e-6 * torch.eye(mu.shape[1], dtype=cov.dtype)
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn(n, mu.shape[1], generator=gen, dtype=torch.float64)
    return (mu.mean(0) + eps @ torch.linalg.cholesky(cov).T).float()


def model_summary(run: Run, data, classifier, *, n: int, seed: int = 0) -> dict[str, Any]:
    """The numbers compare() puts side by side for one run's model (test split, n samples)."""
    model, test = run.model, data.test
    ref = test.x[:n]
    ref_f = classifier.features(ref)
    ref_stats = gaussian_stats(ref_f)
    ref_radii = knn_radii(ref_f)
    can_sharpness = sharpness.is_measurable(model.data_shape)

    def measured(x: torch.Tensor) -> dict[str, Any]:
        """FD, precision, recall and sharpness ratio of generated examples x (n, ...)."""
        f = classifier.features(x)
        return {
            "fd": frechet_distance(*gaussian_stats(f), *ref_stats),
            **precision_recall(ref_f, f, real_radii=ref_radii),
            "sharpness": sharpness.sharpness_ratio(x, ref) if can_sharpness else None,
        }

    prior_samples = generate(model, n, seed=seed)
    at_standard = measured(prior_samples)
    run_prior = run.prior()  # the run's default sampling prior (N(0, I) unless one was fitted)
    at_run_prior = (
        at_standard if run_prior.kind == "standard" else measured(generate(model, n, seed=seed, prior=run_prior))
    )
    lat = latent_metrics(model, test)
    rec = reconstruction_metrics(model, test, classifier=classifier)
    code_std = sorted(lat["code_std"])
    recon = reconstruct(model, ref, labels_for(model, test.y[:n] if test.y is not None else None))
    return {
        "kind": model.config.kind,
        "arch": model.config.arch,
        "likelihood": model.config.likelihood,
        "latent_dim": model.latent_dim,
        "run": str(run.path),
        "run_prior": run_prior.kind,
        **{f"{k}_prior_samples": v for k, v in at_standard.items()},
        **{f"{k}_run_prior_samples": v for k, v in at_run_prior.items()},
        "fd_fitted_gaussian_samples": frechet_distance(
            *gaussian_stats(classifier.features(generate(model, n, z=fitted_codes(model, data, n, seed=seed)))),
            *ref_stats,
        ),
        **{f"prior_samples_{k}": v for k, v in class_confidence(classifier, prior_samples).items()},
        "prior_mismatch": lat["prior_mismatch"],
        "code_std_median": code_std[len(code_std) // 2],
        "active_units": lat["active_units"],
        "recon_mse": rec["mse"],
        "recon_psnr": rec["psnr"],
        "recon_ssim": rec["ssim"],
        "sharpness_reconstructions": sharpness.sharpness_ratio(recon, ref) if can_sharpness else None,
        "classifier_accuracy_reconstruction": rec.get("classifier_accuracy_reconstruction"),
    }


def _same_data(a: Run, b: Run) -> None:
    da, db = a.config.data, b.config.data
    sa, sb = a.config.model.data_shape, b.config.model.data_shape
    if da.source != db.source or sa != sb:
        raise VaekitError(
            f"{a.path} was trained on {da.source} {tuple(sa)} and {b.path} on {db.source} {tuple(sb)}; "
            "compare needs two runs on the same data"
        )
    if (da.test_fraction, da.split_seed) != (db.test_fraction, db.split_seed):
        raise VaekitError(f"{a.path} and {b.path} split their data differently, so their test splits differ")


ROWS = [  # key, label, format, what is better
    ("fd_prior_samples", "FD (classifier features), z ~ N(0, I)", "{:.3f}", "lower"),
    ("precision_prior_samples", "precision of N(0, I) samples (k=3)", "{:.3f}", "higher"),
    ("recall_prior_samples", "recall of N(0, I) samples (k=3)", "{:.3f}", "higher"),
    ("sharpness_prior_samples", "sharpness ratio of N(0, I) samples", "{:.3f}", "near 1"),
    ("run_prior", "the run's sampling prior (vaekit fit-prior)", "{}", ""),
    ("fd_run_prior_samples", "FD (classifier features), z ~ the run's prior", "{:.3f}", "lower"),
    ("precision_run_prior_samples", "precision, z ~ the run's prior", "{:.3f}", "higher"),
    ("recall_run_prior_samples", "recall, z ~ the run's prior", "{:.3f}", "higher"),
    ("sharpness_run_prior_samples", "sharpness ratio, z ~ the run's prior", "{:.3f}", "near 1"),
    ("fd_fitted_gaussian_samples", "FD (classifier features), z ~ Gaussian fit to codes", "{:.3f}", "lower"),
    ("prior_samples_confidence", "classifier confidence on N(0, I) samples", "{:.1%}", "higher"),
    ("prior_samples_class_coverage", "class coverage of N(0, I) samples (1 = uniform)", "{:.2f}", "higher"),
    ("prior_mismatch", "KL(Gaussian fit of codes || N(0, I)), nats", "{:.2f}", "lower"),
    ("code_std_median", "median std of the codes per dimension", "{:.3f}", "near 1"),
    ("active_units", "active units", "{}", ""),
    ("recon_mse", "reconstruction MSE", "{:.5f}", "lower"),
    ("recon_psnr", "reconstruction PSNR, dB", "{:.2f}", "higher"),
    ("recon_ssim", "reconstruction SSIM", "{:.4f}", "higher"),
    ("sharpness_reconstructions", "sharpness ratio of reconstructions", "{:.3f}", "near 1"),
    ("classifier_accuracy_reconstruction", "classifier accuracy on reconstructions", "{:.1%}", "higher"),
]


def _fmt(fmt: str, v) -> str:
    return "n/a" if v is None else fmt.format(v)


def findings(a: dict[str, Any], b: dict[str, Any], la: str, lb: str) -> list[str]:
    """The comparison in sentences, from the numbers."""
    out = []
    for key, what in (
        ("fd_prior_samples", "decoded N(0, I) samples"),
        ("fd_fitted_gaussian_samples", "samples from a Gaussian fitted to each model's codes"),
    ):
        fa, fb = a[key], b[key]
        lo, hi = (la, lb) if fa < fb else (lb, la)
        ratio = max(fa, fb) / max(min(fa, fb), 1e-12)
        out.append(f"{what}: {lo} FD {min(fa, fb):.3f} vs {hi} FD {max(fa, fb):.3f} ({ratio:.1f}x lower for {lo})")
    out.append(
        f"codes vs N(0, I): {la} {a['prior_mismatch']:.1f} nats, {lb} {b['prior_mismatch']:.1f} nats "
        f"(median code std {a['code_std_median']:.2f} vs {b['code_std_median']:.2f})"
    )
    ra, rb = a["recon_mse"], b["recon_mse"]
    out.append(f"reconstruction MSE: {la} {ra:.5f}, {lb} {rb:.5f} ({la if ra < rb else lb} reconstructs better)")
    return out


def compare(
    run_a: str | Path,
    run_b: str | Path,
    *,
    out: str | Path = "compare",
    n_samples: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """Compare two runs on the same data (e.g. an AE and a VAE); write compare.json,
    compare.html and PNGs to `out` and return the JSON's content."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise VaekitError(f"--out {out} is a file; give a folder")
    t0 = time.perf_counter()
    ra, rb = load_run(run_a, device=device), load_run(run_b, device=device)
    _same_data(ra, rb)
    data = rb.data()
    if not data.has_labels:
        raise VaekitError(f"{data.name} has no labels, so there is no feature classifier to measure samples with")
    test = data.test
    n = min(n_samples or len(test), len(test))
    if n < 2:
        raise VaekitError("compare needs at least 2 test examples")
    clf = get_classifier(rb.config.data, data, progress=progress)
    la, lb = _label(ra, rb.config.model.kind.upper()), _label(rb, ra.config.model.kind.upper())
    sa = model_summary(ra, data, clf, n=n, seed=seed)
    sb = model_summary(rb, data, clf, n=n, seed=seed)
    floor = feature_frechet_distance(
        clf,
        data.train.x[torch.randperm(len(data.train), generator=torch.Generator().manual_seed(seed))[:n]],
        test.x[:n],
    )
    res = {
        "labels": [la, lb],
        "models": {la: sa, lb: sb},
        "n": n,
        "seed": seed,
        "data": data.name,
        "fd_train_reference": floor,
        "classifier": clf.describe(),
        "findings": findings(sa, sb, la, lb),
    }

    pictures: dict[str, dict[str, bytes]] = {}
    pairs = interpolation_pairs(test, 6)
    for label, run, tag in ((la, ra, "a"), (lb, rb, "b")):
        model = run.model
        grid, per_row = reconstruction_grid(model, test)
        fit = generate(model, 64, z=fitted_codes(model, data, 64, seed=seed))
        pictures[label] = {
            "samples": html.grid_png(generate(model, 64, seed=seed), nrow=8),
            "run_prior": html.grid_png(generate(model, 64, seed=seed, prior=run.prior()), nrow=8),
            "fitted": html.grid_png(fit, nrow=8),
            "interpolations": html.grid_png(interpolation_grid(model, test, pairs), nrow=10),
            "reconstructions": html.grid_png(grid, nrow=per_row),
            "scatter": scatter_png(model, test, data.class_names, f"{label} latent space, test split"),
        }
        for what, png in pictures[label].items():
            atomic_write(out / f"{what}_{tag}_{model.config.kind}.png", png)
    res["seconds"] = time.perf_counter() - t0
    write_json(out / COMPARE_JSON, res)
    atomic_write(out / COMPARE_HTML, _html(res, pictures, ra.path, rb.path))
    return res


def format_table(res: dict[str, Any]) -> str:
    la, lb = res["labels"]
    a, b = res["models"][la], res["models"][lb]
    rows = [(label, _fmt(fmt, a[key]), _fmt(fmt, b[key]), better) for key, label, fmt, better in ROWS]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(la), *(len(r[1]) for r in rows))
    w2 = max(len(lb), *(len(r[2]) for r in rows))
    lines = [
        f"{res['data']}: {la} ({a['run']}) vs {lb} ({b['run']}), {res['n']} test examples and samples",
        f"{'':<{w0}}  {la:>{w1}}  {lb:>{w2}}  better",
    ]
    lines += [f"{r[0]:<{w0}}  {r[1]:>{w1}}  {r[2]:>{w2}}  {r[3]}" for r in rows]
    lines.append(f"FD floor (training vs test examples): {res['fd_train_reference']:.3f}; {res['classifier']}")
    lines += [f"- {f}" for f in res["findings"]]
    return "\n".join(lines)


def _html(res: dict[str, Any], pictures: dict[str, dict[str, bytes]], run_a: Path, run_b: Path) -> str:
    la, lb = res["labels"]
    a, b = res["models"][la], res["models"][lb]
    rows = [[label, _fmt(fmt, a[key]), _fmt(fmt, b[key]), better] for key, label, fmt, better in ROWS]
    numbers = html.table(rows, header=["", la, lb, "better"])
    numbers += f"<p>FD floor (training vs test examples, same features and n): {res['fd_train_reference']:.3f}. {html.esc(res['classifier'])}</p>"
    numbers += "<ul>" + "".join(f"<li>{html.esc(f)}</li>" for f in res["findings"]) + "</ul>"
    captions = {
        "samples": f"decoded z ~ N(0, I), seed {res['seed']}"
        + (", the same z for both" if a["latent_dim"] == b["latent_dim"] else ""),
        "run_prior": "decoded z ~ the run's sampling prior",
        "fitted": "decoded z ~ Gaussian fitted to the model's own training codes",
        "interpolations": "straight lines between the posterior means of the same test pairs",
        "reconstructions": "test examples (odd rows) and reconstructions (even rows)",
        "scatter": "posterior means of the test split",
    }
    sections = [("Numbers", numbers)]
    titles = {
        "samples": "Samples from N(0, I)",
        "run_prior": "Samples from each run's sampling prior",
        "fitted": "Samples from a Gaussian fitted to the codes",
        "interpolations": "Interpolations",
        "reconstructions": "Reconstructions",
        "scatter": "Latent space",
    }
    for what, title in titles.items():
        figs = "".join(html.figure(pictures[label][what], f"{label}: {captions[what]}") for label in (la, lb))
        sections.append((title, f'<div class="side">{figs}</div>'))
    return html.page(f"vaekit compare: {la} vs {lb}", f"{run_a} vs {run_b}, {res['data']}", sections)
