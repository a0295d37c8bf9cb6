"""Anomaly detection with a trained run: fit a background model, score data, flag anomalies
with a threshold chosen on validation data, and judge the scores on in/out data.

    from vaekit.workflows import anomaly
    anomaly.fit_background("runs/fmnist", epochs=10)        # once: writes runs/fmnist/background/
    run = vaekit.load_run("runs/fmnist")
    result = anomaly.score_data(run, examples)              # vaekit.data.read_examples(...)
    report = anomaly.ood_report(run, in_examples, out_examples, out_dir="ood/")

The per-example scores are in vaekit.evaluation.scores, the metrics and figures in
vaekit.evaluation.ood.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_write, write_json
from ..config import Corruption, RunConfig
from ..core.model import VAE
from ..data import Dataset, DataSplits, Examples, corrupt
from ..errors import VaekitError
from ..evaluation.ood import choose_threshold, format_table, histograms_figure, ood_table, roc_figure
from ..evaluation.scores import SCORE_DESCRIPTIONS, check_scorable, column_nll, score_examples, with_ensemble
from ..runs import Run, load_run, train_run

DEFAULT_PERTURBATION = "uniform:0.2"  # Ren et al. 2019 found mutation rates 0.1-0.3 work on images
CALIBRATION_EXAMPLES = 2000  # validation examples the thresholds are chosen on (at most)
# Which score flags anomalies when the user names none: the first one available. The ensemble
# (the mean rank-normalised score, vaekit.evaluation.scores.ensemble_score) comes first: measured
# on seven image out sets and twelve ADBench tables (BENCHMARKS.md, "Anomaly scores by default"),
# it was the one score that no out set left near chance where another score separated it well.
# Without it (an AE, or no reference data to rank against): complexity where the NLL is a code
# length of the 8-bit input (a discretized likelihood, see code_length_likelihood) and
# meaningless elsewhere, where llr is the best likelihood score.
PREFERRED_SCORES = ("ensemble", "complexity", "llr", "nll_iw", "nelbo", "recon_error")
TOP_COLUMNS = 3  # a table row's columns named in `vaekit score`'s output


@dataclass(frozen=True)
class ScoreSettings:
    """How scores are computed; the same settings score the validation data for thresholds."""

    iw_samples: int = 0  # k > 1: add the importance-sampled NLL and base complexity/llr on it
    compressor: str = "png"  # input-complexity code length: png or zlib
    batch_size: int = 256
    seed: int = 0

    def kwargs(self) -> dict[str, Any]:
        return {
            "iw_samples": self.iw_samples,
            "compressor": self.compressor,
            "batch_size": self.batch_size,
            "seed": self.seed,
        }


# -- the background model of the likelihood ratio ---------------------------------------------------


def fit_background(
    run_dir: str | Path,
    *,
    perturbation: str | Corruption = DEFAULT_PERTURBATION,
    overwrite: bool = False,
    progress: bool = True,
    **train_options: Any,
) -> Run:
    """Train the likelihood-ratio background model of a run into RUN/background/ (itself a run).

    It has the run's architecture, data and training settings (train_options change some, e.g.
    epochs=10, device="cuda"), but learns from inputs perturbed once, with a fixed seed, by
    `perturbation` (default uniform:0.2: each pixel replaced by a uniform draw with probability
    0.2, Ren et al. 2019); its info records the perturbation."""
    run = load_run(run_dir)
    if run.config.model.kind not in ("vae", "hvae"):
        raise VaekitError(
            f"a background model is for the likelihood ratio, which needs a VAE run, not a {run.config.model.kind}"
        )
    if run.config.model.num_classes:
        raise VaekitError("anomaly scores need an unconditional model; this run is conditioned on labels")
    perturb = perturbation if isinstance(perturbation, Corruption) else Corruption.parse(perturbation)
    out = run.background_path
    if run.background() is not None and not overwrite:
        raise VaekitError(f"{out} already holds a background model; pass --overwrite to train it again")
    given = {k: v for k, v in train_options.items() if v is not None}
    train_cfg = replace(run.config.train, denoise=None, **given)
    config = RunConfig(model=run.config.model, train=train_cfg, data=run.config.data)
    splits = run.data()
    clip = (0.0, 1.0) if splits.is_image else None
    gen = torch.Generator().manual_seed(run.config.train.seed + 1000)
    perturbed = DataSplits(
        Dataset(corrupt(splits.train.x, perturb, generator=gen, clip=clip), splits.train.y),
        Dataset(corrupt(splits.val.x, perturb, generator=gen, clip=clip), splits.val.y),
        splits.test,
        name=splits.name,
        is_image=splits.is_image,
        class_names=splits.class_names,
        official_test=splits.official_test,
    )
    info = {**run.info, "background_of": str(run.path), "perturbation": str(perturb)}
    return train_run(config, perturbed, out, overwrite=overwrite, info=info, progress=progress, figures=False)


# -- thresholds and flagging ------------------------------------------------------------------------------


def code_length_likelihood(model: VAE) -> bool:
    """Whether the model's NLL is a code length of 8-bit images (a discretized likelihood), the
    condition under which subtracting a compressor's code length (complexity) means anything.
    With a Bernoulli or Gaussian likelihood on grey levels it does not: the correction then
    ranks uniform noise as the most normal input there is (BENCHMARKS.md)."""
    return str(model.config.likelihood).startswith("discretized")


def pick_score(names: list[str], wanted: str | None = None, *, model=None) -> str:
    """The score named `wanted` (checked), or the most trustworthy of `names` (PREFERRED_SCORES;
    complexity only for a model whose NLL is a code length, when the model is given, else
    skipped)."""
    if wanted is None:
        skip = set() if model is not None and code_length_likelihood(model) else {"complexity"}
        return next(n for n in PREFERRED_SCORES if n in names and n not in skip)
    if wanted not in names:
        hint = ""
        if wanted == "llr":
            hint = " (fit a background model first: vaekit fit-background RUN)"
        elif wanted == "nll_iw":
            hint = " (pass --iw-samples K with K >= 2)"
        elif wanted not in SCORE_DESCRIPTIONS:
            hint = f" (scores: {', '.join(SCORE_DESCRIPTIONS)})"
        raise VaekitError(f"score {wanted!r} is not available here; available: {', '.join(names)}{hint}")
    return wanted


def subsample(x: torch.Tensor, n: int | None, seed: int) -> torch.Tensor:
    if n is None or len(x) <= n:
        return x
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx.sort().values]


def reference_scores(
    model,
    val: Dataset,
    *,
    background=None,
    settings: ScoreSettings = ScoreSettings(),
    max_examples: int | None = CALIBRATION_EXAMPLES,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Every score (the ensemble too) of `val`, the run's validation split: in-distribution data
    the model was not trained on, which thresholds and the ensemble's rank normalisation use."""
    x = subsample(val.x, max_examples, settings.seed)
    scores = score_examples(model, x, background=background, progress=progress, **settings.kwargs())
    return with_ensemble(scores, scores)


def calibrate(
    model,
    val: Dataset,
    *,
    background=None,
    settings: ScoreSettings = ScoreSettings(),
    fpr: float = 0.05,
    max_examples: int | None = CALIBRATION_EXAMPLES,
    progress: bool = False,
) -> dict[str, float]:
    """Thresholds that flag a fraction `fpr` of `val` (the run's validation split), one per score."""
    ref = reference_scores(
        model, val, background=background, settings=settings, max_examples=max_examples, progress=progress
    )
    return thresholds_for(ref, fpr)


def thresholds_for(reference: dict[str, np.ndarray], fpr: float) -> dict[str, float]:
    return {name: choose_threshold(s, fpr=fpr) for name, s in reference.items()}


@dataclass
class ScoreResult:
    names: list[str]  # one per row
    scores: dict[str, np.ndarray]  # score name -> (N,)
    labels: np.ndarray | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    flag_by: str | None = None
    fpr: float | None = None
    groups: list[str] | None = None  # "in" / "out" per row in an evaluation
    class_names: list[str] | None = None  # labels are written as these names when given
    extra: dict[str, list] = field(default_factory=dict)  # more columns, after the flag (a table's top columns)

    @property
    def flagged(self) -> np.ndarray | None:
        if self.flag_by is None:
            return None
        return self.scores[self.flag_by] > self.thresholds[self.flag_by]

    def write_csv(self, path: str | Path) -> Path:
        """One row per example: name, [set], [label], every score, [flagged]."""
        path = Path(path)
        if path.exists() and path.is_dir():
            raise VaekitError(f"--out {path} is a folder; give a .csv file name")
        cols = list(self.scores)
        flagged = self.flagged
        with io.StringIO(newline="") as f:
            w = csv.writer(f)
            w.writerow(
                ["name"]
                + (["set"] if self.groups else [])
                + (["label"] if self.labels is not None else [])
                + cols
                + (["flagged"] if flagged is not None else [])
                + list(self.extra)
            )
            for i, name in enumerate(self.names):
                row = [name]
                if self.groups:
                    row.append(self.groups[i])
                if self.labels is not None:
                    row.append(self.class_names[self.labels[i]] if self.class_names else int(self.labels[i]))
                row += [f"{self.scores[c][i]:.8g}" for c in cols]
                if flagged is not None:
                    row.append(int(flagged[i]))
                row += [values[i] for values in self.extra.values()]
                w.writerow(row)
            return atomic_write(path, f.getvalue())


def score_data(
    run: Run,
    examples: Examples,
    *,
    background: Run | None = None,
    settings: ScoreSettings = ScoreSettings(),
    flag_by: str | None = None,
    fpr: float = 0.05,
    progress: bool = False,
) -> ScoreResult:
    """Score every example with the run's model and flag those above the threshold of `flag_by`
    (default: the most trustworthy score available), chosen to flag `fpr` of the validation split.
    A table's rows also get the columns that add most to their score, and the count of cells
    holding a category never seen in training."""
    model, bg = run.model, None if background is None else background.model
    check_scorable(model)
    val = run.data().val
    ref = reference_scores(model, val, background=bg, settings=settings, progress=progress)
    scores = score_examples(model, examples.x, background=bg, progress=progress, **settings.kwargs())
    scores = with_ensemble(scores, ref)
    chosen = pick_score(list(scores), flag_by, model=model)
    labels = None if examples.y is None else examples.y.numpy()
    result = ScoreResult(examples.names, scores, labels, thresholds_for(ref, fpr), chosen, fpr)
    if run.table() is not None:
        result.extra = table_columns(run, examples, val, settings.seed)
        result.class_names = run.table().label_values or None
    return result


def table_columns(run: Run, examples: Examples, val: Dataset, seed: int) -> dict[str, list]:
    """A table row's TOP_COLUMNS columns whose cells the model finds least likely compared with
    the same column in validation rows (-log p(cell | z) minus its validation median, nats), and
    its cells holding a category never seen in training."""
    names = [c.name for c in run.table().columns]
    ref = np.median(column_nll(run.model, subsample(val.x, CALIBRATION_EXAMPLES, seed)), axis=0)
    excess = column_nll(run.model, examples.x) - ref  # (N, H)
    order = np.argsort(-excess, axis=1)[:, :TOP_COLUMNS]
    top = [
        ";".join(f"{names[j]} (+{excess[i, j]:.1f})" for j in row if excess[i, j] >= 0.05)
        for i, row in enumerate(order)
    ]
    unseen = [0] * len(examples) if examples.unseen is None else examples.unseen.tolist()
    return {"top_columns": top, "unseen_categories": unseen}


# -- evaluation on in / out data ------------------------------------------------------------------------------


def split_by_labels(examples: Examples, labels: list[int]) -> tuple[Examples, Examples]:
    """(rows whose label is not in `labels`, rows whose label is): the held-out-class setting."""
    if examples.y is None:
        raise VaekitError(f"{examples.source} has no labels, so --anomaly-label cannot pick anomalies from it")
    out = torch.isin(examples.y, torch.tensor(labels))
    if not bool(out.any()):
        raise VaekitError(f"{examples.source} has no example labelled {', '.join(map(str, labels))}")
    if bool(out.all()):
        raise VaekitError(f"every example of {examples.source} is labelled {', '.join(map(str, labels))}")

    return examples.take((~out).nonzero().ravel()), examples.take(out.nonzero().ravel())


def ood_report(
    run: Run,
    in_examples: Examples,
    out_examples: Examples,
    *,
    out_dir: str | Path | None = None,
    background: Run | None = None,
    settings: ScoreSettings = ScoreSettings(),
    fpr: float = 0.05,
    flag_by: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """AUROC, AUPRC and FPR at 95% TPR of every score on in vs out data, plus how the
    validation threshold does on both. With out_dir: metrics.json, report.md, roc.png,
    histograms.png and scores.csv there. Returns what metrics.json holds."""
    model, bg = run.model, None if background is None else background.model
    check_scorable(model)
    ref = reference_scores(model, run.data().val, background=bg, settings=settings, progress=progress)
    s_in = score_examples(model, in_examples.x, background=bg, progress=progress, **settings.kwargs())
    s_out = score_examples(model, out_examples.x, background=bg, progress=progress, **settings.kwargs())
    s_in, s_out = with_ensemble(s_in, ref), with_ensemble(s_out, ref)
    table = ood_table(s_in, s_out)
    thresholds = thresholds_for(ref, fpr)
    chosen = pick_score(list(s_in), flag_by, model=model)
    for name, m in table.items():
        m["threshold"] = thresholds[name]
        m["flagged_in"] = float(np.mean(s_in[name] > thresholds[name]))
        m["flagged_out"] = float(np.mean(s_out[name] > thresholds[name]))
    report = {
        "run": str(run.path),
        "in_data": in_examples.source,
        "out_data": out_examples.source,
        "n_in": len(in_examples),
        "n_out": len(out_examples),
        "settings": settings.kwargs(),
        "background": None if background is None else str(background.path),
        "threshold_fpr_on_validation": fpr,
        "flag_by": chosen,
        "scores": table,
        "descriptions": {n: SCORE_DESCRIPTIONS[n] for n in table},
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        if out_dir.exists() and not out_dir.is_dir():
            raise VaekitError(f"--report {out_dir} is a file; give a folder")
        write_json(out_dir / "metrics.json", report)
        roc_figure(s_in, s_out, out_dir / "roc.png", title=f"{in_examples.source} (in) vs {out_examples.source} (out)")
        histograms_figure(s_in, s_out, out_dir / "histograms.png", thresholds=thresholds)
        both = ScoreResult(
            in_examples.names + out_examples.names,
            {n: np.concatenate([s_in[n], s_out[n]]) for n in s_in},
            None
            if (in_examples.y is None or out_examples.y is None)
            else np.concatenate([in_examples.y.numpy(), out_examples.y.numpy()]),
            thresholds,
            chosen,
            fpr,
            ["in"] * len(in_examples) + ["out"] * len(out_examples),
        )
        both.write_csv(out_dir / "scores.csv")
        atomic_write(out_dir / "report.md", report_markdown(report))
    return report


def report_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Anomaly scores of {report['run']}",
        "",
        f"In-distribution: {report['in_data']} ({report['n_in']} examples); "
        f"out-of-distribution: {report['out_data']} ({report['n_out']} examples). "
        "Out is the positive class; a higher score means more anomalous.",
        "",
        format_table(report["scores"]),
        "",
        f"Thresholds flag {report['threshold_fpr_on_validation']:.0%} of the run's validation split; at them:",
        "",
        "| score | threshold | in flagged | out flagged |",
        "|---|---:|---:|---:|",
    ]
    for name, m in report["scores"].items():
        lines.append(f"| {name} | {m['threshold']:.4g} | {m['flagged_in']:.3f} | {m['flagged_out']:.3f} |")
    lines += ["", "Scores:", ""] + [f"- `{n}`: {d}" for n, d in report["descriptions"].items()]
    lines += ["", "![ROC](roc.png)", "", "![histograms](histograms.png)", ""]
    return "\n".join(lines)
