"""Judging anomaly scores: AUROC, AUPRC, FPR at 95% TPR, thresholds, ROC and histogram figures.

Convention everywhere: out-of-distribution examples are the positive class, and a higher
score means "more anomalous".
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from ..errors import VaekitError
from ..plots import plt, save_figure

TARGET_TPR = 0.95


def _labelled(in_scores, out_scores) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(in_scores, dtype=np.float64).ravel()
    b = np.asarray(out_scores, dtype=np.float64).ravel()
    if len(a) == 0 or len(b) == 0:
        raise VaekitError("judging a score needs at least one in-distribution and one out-of-distribution example")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise VaekitError("scores must be finite to compute AUROC")
    labels = np.concatenate([np.zeros(len(a)), np.ones(len(b))])
    return labels, np.concatenate([a, b])


def auroc(in_scores, out_scores) -> float:
    """Area under the ROC curve: the probability that a random out example scores higher than
    a random in example (ties count one half). 0.5 = chance, 1 = perfect, 0 = perfectly reversed."""
    labels, scores = _labelled(in_scores, out_scores)
    return float(roc_auc_score(labels, scores))


def auprc(in_scores, out_scores) -> float:
    """Area under the precision-recall curve with out as positives (average precision);
    chance level is the fraction of out examples."""
    labels, scores = _labelled(in_scores, out_scores)
    return float(average_precision_score(labels, scores))


def fpr_at_tpr(in_scores, out_scores, *, tpr: float = TARGET_TPR) -> float:
    """The fraction of in examples flagged when the threshold is set to flag `tpr` of the out
    examples (lower is better): the smallest FPR on the ROC curve whose TPR reaches `tpr`."""
    labels, scores = _labelled(in_scores, out_scores)
    fprs, tprs, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(fprs[np.searchsorted(tprs, tpr, side="left")])


def ood_metrics(in_scores, out_scores) -> dict[str, float]:
    return {
        "auroc": auroc(in_scores, out_scores),
        "auprc": auprc(in_scores, out_scores),
        "fpr95": fpr_at_tpr(in_scores, out_scores),
        "n_in": int(np.size(in_scores)),
        "n_out": int(np.size(out_scores)),
    }


def ood_table(in_scores: Mapping[str, np.ndarray], out_scores: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """{score name: ood_metrics} for every score present in both."""
    return {name: ood_metrics(in_scores[name], out_scores[name]) for name in in_scores if name in out_scores}


def choose_threshold(val_scores, *, fpr: float = 0.05) -> float:
    """The threshold that flags a fraction `fpr` of held-out in-distribution (validation)
    examples: their (1 - fpr) quantile. An example is flagged when its score is above it."""
    if not 0.0 < fpr < 1.0:
        raise VaekitError(f"the false-positive rate must lie strictly between 0 and 1, not {fpr}")
    s = np.asarray(val_scores, dtype=np.float64)
    if s.size == 0:
        raise VaekitError("choosing a threshold needs at least one validation example")
    return float(np.quantile(s, 1.0 - fpr, method="higher"))


def format_table(table: Mapping[str, Mapping[str, float]]) -> str:
    """A Markdown table of ood_table's result."""
    lines = ["| score | AUROC | AUPRC | FPR at 95% TPR |", "|---|---:|---:|---:|"]
    for name, m in table.items():
        lines.append(f"| {name} | {m['auroc']:.3f} | {m['auprc']:.3f} | {m['fpr95']:.3f} |")
    return "\n".join(lines)


# -- figures -------------------------------------------------------------------------------------------


def roc_figure(
    in_scores: Mapping[str, np.ndarray],
    out_scores: Mapping[str, np.ndarray],
    path: str | Path,
    *,
    title: str = "ROC, out-of-distribution as positives",
) -> Path:

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name in in_scores:
        if name not in out_scores:
            continue
        labels, scores = _labelled(in_scores[name], out_scores[name])
        f, t, _ = roc_curve(labels, scores)
        ax.plot(f, t, label=f"{name} (AUROC {auroc(in_scores[name], out_scores[name]):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="false-positive rate (in flagged)", ylabel="true-positive rate (out flagged)", title=title)
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, path)


def histograms_figure(
    in_scores: Mapping[str, np.ndarray],
    out_scores: Mapping[str, np.ndarray],
    path: str | Path,
    *,
    thresholds: Mapping[str, float] | None = None,
) -> Path:
    """One panel per score: in and out histograms on shared bins, with the threshold if given."""

    names = [n for n in in_scores if n in out_scores]
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.3 * rows), squeeze=False)
    for ax, name in zip(axes.ravel(), names):
        a, b = np.asarray(in_scores[name]), np.asarray(out_scores[name])
        lo, hi = np.percentile(np.concatenate([a, b]), [0.5, 99.5])
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 50)
        ax.hist(np.clip(a, bins[0], bins[-1]), bins=bins, alpha=0.55, density=True, label="in")
        ax.hist(np.clip(b, bins[0], bins[-1]), bins=bins, alpha=0.55, density=True, label="out")
        if thresholds and name in thresholds:
            ax.axvline(thresholds[name], color="k", ls="--", lw=1, label="threshold")
        ax.set(title=name, xlabel="score (higher = more anomalous)")
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    return save_figure(fig, path)
