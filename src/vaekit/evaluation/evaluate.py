"""Every metric for one model on one split -> a JSON-ready dict, and that dict as table rows.

Units: log-likelihoods and losses are nats per example (summed over one example's dimensions,
averaged over examples); bits/dim = nats / (D ln 2) where p(x|z) is a probability mass."""

from __future__ import annotations

import time
from typing import Any

import torch

from ..core.priors import PRIOR_NAMES
from ..data import Dataset, DataSplits
from ..errors import VaekitError
from .latent import latent_metrics
from .likelihood import default_iw_samples, likelihood_metrics
from .reconstruction import SSIM_WINDOW, reconstruction_metrics
from .sample_quality import sample_metrics


def evaluate(
    model,
    data: DataSplits,
    *,
    split: str = "test",
    iw_samples: int | None = None,
    max_examples: int | None = None,
    classifier=None,
    n_samples: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    progress: bool = False,
    prior=None,
    binarized: bool = False,
    name: str = "",
) -> dict[str, Any]:
    """Every metric for one model on one split -> a JSON-ready dict with sections
    likelihood (VAE only), latent, reconstruction, samples (with a FeatureClassifier; drawn from
    `prior`, N(0, I) when None), and the seconds each took. max_examples: evaluate on the first
    N examples of the split only. name: what the model is called in the result (its run folder).
    binarized=True (a run trained with dynamic binarization) evaluates one fixed (seeded)
    binarization of the split, as the literature does, so its Bernoulli NLL is a proper one in
    bits/dim."""
    iw_samples = default_iw_samples(model) if iw_samples is None else iw_samples
    if iw_samples < 1:
        raise VaekitError("--iw-samples must be at least 1")
    ds = data.split(split)
    if max_examples is not None:
        if max_examples < 2:
            raise VaekitError("--max-examples must be at least 2")
        ds = ds.subset(torch.arange(min(max_examples, len(ds))))
    if len(ds) < 2:
        raise VaekitError(f"the {split} split has {len(ds)} example(s); evaluation needs at least 2")
    if binarized:
        ds = Dataset(torch.bernoulli(ds.x, generator=torch.Generator().manual_seed(seed)), ds.y)
    res: dict[str, Any] = {
        "model": {
            "kind": model.config.kind,
            "arch": model.config.arch,
            "likelihood": model.config.likelihood,
            "latent_dim": model.latent_dim,
            "run": name,
        },
        "data": data.name,
        "split": split,
        "n_examples": len(ds),
        "of": len(data.split(split)),
        "binarized": binarized,
        "iw_samples": iw_samples,
        "seed": seed,
        "seconds": {},
    }
    sections = [
        (
            "likelihood",
            lambda: likelihood_metrics(
                model, ds, iw_samples=iw_samples, batch_size=batch_size, seed=seed, progress=progress
            ),
        ),
        ("latent", lambda: latent_metrics(model, ds)),
        ("reconstruction", lambda: reconstruction_metrics(model, ds, classifier=classifier)),
        ("samples", lambda: sample_metrics(model, data, classifier, split=split, n=n_samples, seed=seed, prior=prior)),
    ]
    for name, fn in sections:
        if name == "likelihood" and not model.stochastic:
            res[name] = None
            continue
        if name == "samples" and classifier is None:
            res[name] = None
            continue
        t0 = time.perf_counter()
        res[name] = fn()
        res["seconds"][name] = time.perf_counter() - t0
    return res


def metric_rows(res: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """An evaluate() result as (section, metric, value, note) rows, units in every value; the
    text table and the HTML report both print these."""
    rows: list[tuple[str, str, str, str]] = []
    lik = res.get("likelihood")
    subset = f"first {res['n_examples']} of {res['of']}" if res["n_examples"] < res["of"] else f"all {res['of']}"
    if lik:
        head = f"{subset} {res['split']} examples" + (", one fixed binarization" if res.get("binarized") else "")
        bpd = lambda key: f"{lik[key]:.4f} bits/dim" if lik["discrete"] else ""  # noqa: E731
        cond = " (log p(x|y): conditional model)" if lik["conditional"] else ""
        rows.append(
            (
                "likelihood",
                "-ELBO",
                f"{lik['nelbo']:.2f} ± {lik['nelbo_se']:.2f} nats/example",
                f"recon {lik['recon']:.2f} + KL {lik['kl']:.2f}; {head}",
            )
        )
        if lik["discrete"]:
            rows.append(("likelihood", "-ELBO", bpd("nelbo_bits_per_dim"), f"{lik['likelihood']} likelihood"))
        rows.append(
            (
                "likelihood",
                f"NLL, IWAE k={lik['iw_samples']}",
                f"{lik['nll']:.2f} ± {lik['nll_se']:.2f} nats/example",
                "importance-sampled -log p(x), Burda et al. 2015" + cond,
            )
        )
        if lik["discrete"]:
            rows.append(
                (
                    "likelihood",
                    f"NLL, IWAE k={lik['iw_samples']}",
                    bpd("nll_bits_per_dim"),
                    f"{lik['likelihood']} likelihood: a probability mass, comparable with the literature",
                )
            )
        else:
            why = (
                "Bernoulli on grey levels is not a distribution over the data"
                if lik["likelihood"] == "bernoulli"
                else f"the {lik['likelihood']} likelihood is a density, not a probability mass"
            )
            rows.append(("likelihood", "bits/dim", "n/a", why + "; use a discretized likelihood"))
        rows.append(
            (
                "likelihood",
                "NLL by k",
                "  ".join(f"k={k}: {v:.2f}" for k, v in lik["nll_by_k"].items()),
                "nats/example; same samples, prefixes",
            )
        )
    lat = res.get("latent")
    if lat:
        d = lat["latent_dim"]
        rows.append(
            (
                "latent",
                "active units",
                f"{lat['active_units']} / {d}",
                f"Cov_x(E_q[z_d]) > {lat['active_unit_threshold']} (Burda et al. 2015)",
            )
        )
        if lat["kl_per_dim"] is not None:
            kl = lat["kl_per_dim"]
            order = sorted(range(d), key=lambda i: -kl[i])
            shown = ", ".join(f"z{i} {kl[i]:.2f}" for i in order[:8]) + (", ..." if d > 8 else "")
            rows.append(("latent", "KL per dimension", f"{sum(kl):.2f} nats in all", f"largest first: {shown}"))
        rows.append(
            (
                "latent",
                "prior mismatch",
                f"{lat['prior_mismatch']:.2f} nats",
                "KL(Gaussian fit of the aggregate posterior || N(0, I))",
            )
        )
        for w in lat["warnings"]:
            rows.append(("latent", "WARNING", w, ""))
    rec = res.get("reconstruction")
    if rec:
        rows.append(("reconstruction", "MSE", f"{rec['mse']:.5f}", "per value, posterior-mean reconstructions"))
        if rec.get("psnr") is not None:
            rows.append(("reconstruction", "PSNR", f"{rec['psnr']:.2f} dB", "per image, peak 1.0"))
        if rec.get("ssim") is not None:
            rows.append(
                ("reconstruction", "SSIM", f"{rec['ssim']:.4f}", f"{SSIM_WINDOW}x{SSIM_WINDOW} window, as scikit-image")
            )
        if "classifier_accuracy_reconstruction" in rec:
            rows.append(
                (
                    "reconstruction",
                    "classifier accuracy",
                    f"{rec['classifier_accuracy_reconstruction']:.1%}",
                    f"on reconstructions (on the originals: {rec['classifier_accuracy_original']:.1%})",
                )
            )
    smp = res.get("samples")
    if smp:
        drawn = PRIOR_NAMES.get(smp.get("prior", "standard"), smp.get("prior"))
        rows.append(
            (
                "samples",
                "FD (classifier features)",
                f"{smp['fd_samples']:.3f}",
                f"{smp['n']} decoded z ~ {drawn} vs {res['split']} examples; lower is better; not FID",
            )
        )
        if smp.get("fd_samples_standard") is not None:
            rows.append(
                (
                    "samples",
                    "FD, z ~ N(0, I)",
                    f"{smp['fd_samples_standard']:.3f}",
                    "the same, drawn from N(0, I) instead of the fitted prior",
                )
            )
        rows.append(
            (
                "samples",
                "FD references",
                f"{smp['fd_reconstructions']:.3f} / {smp['fd_train_reference']:.3f}",
                "reconstructions / training examples (the floor) vs the same examples",
            )
        )
        rows += _fidelity_rows(smp)
        rows.append(
            (
                "samples",
                "classifier on samples",
                f"confidence {smp['samples_confidence']:.1%}",
                f"class coverage {smp['samples_class_coverage']:.2f} (1 = every class equally)",
            )
        )
        rows.append(("samples", "feature classifier", "", smp["classifier"]))
    return rows


def _fidelity_rows(smp: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Precision / recall and sharpness rows of a samples section (absent in evaluations saved
    before they existed, and for data they do not apply to)."""
    rows = []
    if smp.get("precision_samples") is not None:
        rows.append(
            (
                "samples",
                f"precision / recall (k={smp['k']})",
                f"{smp['precision_samples']:.3f} / {smp['recall_samples']:.3f}",
                f"samples in the data's manifold / data in the samples' (Kynkaanniemi et al. 2019); "
                f"training examples: {smp['precision_train_reference']:.3f} / {smp['recall_train_reference']:.3f}",
            )
        )
    if smp.get("sharpness_samples") is not None:
        rows.append(
            (
                "samples",
                "sharpness ratio",
                f"{smp['sharpness_samples']:.3f}",
                f"Laplacian energy of samples / of the data (1 = as sharp); reconstructions "
                f"{smp['sharpness_reconstructions']:.3f}, training examples {smp['sharpness_train_reference']:.3f}",
            )
        )
    return rows


def format_table(res: dict[str, Any]) -> str:
    """evaluate()'s result as a plain-text table."""
    rows = metric_rows(res)
    w_metric = max((len(r[1]) for r in rows), default=0)
    w_value = min(max((len(r[2]) for r in rows if r[1] != "WARNING"), default=0), 32)
    m = res["model"]
    lines = [
        f"{m['kind'].upper()} {m['run']} ({m['arch']}, {m['likelihood']} likelihood, latent {m['latent_dim']}) "
        f"on {res['data']}, {res['split']} split"
    ]
    section = None
    for sec, metric, value, note in rows:
        if sec != section:
            lines.append(sec)
            section = sec
        if metric == "WARNING":
            lines.append(f"  WARNING: {value}")
        else:
            lines.append(f"  {metric:<{w_metric}}  {value:<{w_value}}  {note}".rstrip())
    if res["seconds"]:
        lines.append("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in res["seconds"].items()))
    return "\n".join(lines)
