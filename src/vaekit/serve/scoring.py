"""How unusual one example looks to the model: the explorer's anomaly score.

The explorer shows the score docs/anomaly.md says to trust, chosen and thresholded exactly as
`vaekit score` flags with (vaekit.workflows.anomaly: pick_score, calibrate):

  ensemble     the mean of the scores, each rank-normalised against the validation split's
               (when validation data are given)
  complexity   else, when the likelihood is discretized (the NLL is then a code length)
  llr          else, when the run has a background model (`vaekit fit-background RUN`)
  nll_iw       else: the importance-sampled NLL with `samples` samples
  recon_error  for an AE, which has no likelihood

The threshold flags `fpr` (5%) of the run's validation split, when one is given. Conditional
models are outside vaekit.evaluation.scores (a label changes what "typical" means), so for them the
score stays the negative ELBO given the label, averaged over `samples` posterior draws, and
its threshold is the same quantile of their validation split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..core.modes import evaluating
from ..data import Dataset
from ..evaluation.ood import choose_threshold
from ..evaluation.scores import ENSEMBLE, SCORE_DESCRIPTIONS, available_scores, score_examples, with_ensemble
from ..workflows import anomaly

# Shown names and units of the scores the explorer may use.
LABELS = {
    "ensemble": ("ensemble of rank-normalised scores", "normal quantile"),
    "llr": ("likelihood ratio (llr)", "nats"),
    "complexity": ("complexity-corrected NLL", "nats"),
    "nll_iw": ("negative log-likelihood (IWAE)", "nats/example"),
    "nelbo": ("negative ELBO", "nats/example"),
    "recon_error": ("reconstruction error", "squared error/example"),
}
CONDITIONAL_HELP = (
    "recon + KL for this image given its label (an upper bound on -log p(x|y)); higher means the model "
    "finds it less typical."
)


@dataclass
class Scorer:
    """One anomaly score of one model, and the threshold that flags anomalies (None when no
    validation data were given). Call it on a batch: scorer(x, y) -> (B,) float32."""

    model: Any
    name: str  # a vaekit.evaluation.scores name (nelbo for a conditional model)
    background: Any = None  # the run's background model, for llr
    samples: int = 4  # importance samples (nll_iw) or, for a conditional model, ELBO draws
    threshold: float | None = None
    fpr: float | None = None  # the fraction of the validation split the threshold flags
    reference: dict | None = None  # the validation split's scores, which the ensemble ranks against

    @classmethod
    def for_model(
        cls, model, *, background=None, val: Dataset | None = None, fpr: float = 0.05, samples: int = 4, seed: int = 0
    ) -> Scorer:
        """The trusted score of `model` (with its run's background model for llr, when given), with
        the threshold chosen on `val` when given."""
        if model.config.num_classes:
            scorer = cls(model, "nelbo", samples=samples)
        else:
            bg = background if model.stochastic else None
            has_val = val is not None and len(val) > 0
            names = available_scores(model, iw_samples=scorer_iw(samples), background=bg, ensemble=has_val)
            scorer = cls(model, anomaly.pick_score(names, model=model), background=bg, samples=samples)
            if scorer.name == ENSEMBLE:
                settings = anomaly.ScoreSettings(iw_samples=scorer_iw(samples), seed=seed)
                scorer.reference = anomaly.reference_scores(model, val, background=bg, settings=settings)
        if val is not None and len(val) > 0:
            scorer.threshold, scorer.fpr = scorer._calibrate(val, fpr=fpr, seed=seed), fpr
        return scorer

    @property
    def conditional(self) -> bool:
        return bool(self.model.config.num_classes)

    @property
    def label(self) -> str:
        return LABELS[self.name][0]

    @property
    def units(self) -> str:
        return LABELS[self.name][1]

    @property
    def help(self) -> str:
        what = CONDITIONAL_HELP if self.conditional else SCORE_DESCRIPTIONS[self.name] + "; higher means less typical."
        if self.threshold is None:
            return what + " The percentile compares it with test-set images."
        return (
            what + f" The percentile compares it with test-set images; above {self.threshold:.4g} it is flagged as an "
            f"anomaly, a threshold that flags {self.fpr:.0%} of the run's validation images."
        )

    def flagged(self, value: float) -> bool | None:
        return None if self.threshold is None else bool(value > self.threshold)

    def __call__(self, x: Tensor, y: Tensor | None = None, *, seed: int = 0) -> Tensor:
        if self.conditional:
            return anomaly_score(self.model, x, y, samples=self.samples, seed=seed)
        s = score_examples(self.model, x, background=self.background, iw_samples=scorer_iw(self.samples), seed=seed)
        if self.name == ENSEMBLE:
            s = with_ensemble(s, self.reference)
        return torch.from_numpy(s[self.name]).float()

    def _calibrate(self, val: Dataset, *, fpr: float, seed: int) -> float:
        if self.conditional:
            x = anomaly.subsample(val.x, anomaly.CALIBRATION_EXAMPLES, seed)
            y = anomaly.subsample(val.y, anomaly.CALIBRATION_EXAMPLES, seed)
            return choose_threshold(anomaly_score(self.model, x, y, samples=self.samples, seed=seed).numpy(), fpr=fpr)
        if self.reference is not None:
            return anomaly.thresholds_for(self.reference, fpr)[self.name]
        settings = anomaly.ScoreSettings(iw_samples=scorer_iw(self.samples), seed=seed)
        return anomaly.calibrate(self.model, val, background=self.background, settings=settings, fpr=fpr)[self.name]


def scorer_iw(samples: int) -> int:
    """Importance samples for nll_iw: `samples` when it is at least 2, else none."""
    return samples if samples >= 2 else 0


def anomaly_score(
    model, x: Tensor, y: Tensor | None = None, *, samples: int = 4, seed: int = 0, batch_size: int = 512
) -> Tensor:
    """Per-example negative ELBO = recon + KL in nats: x (B, *data_shape) -> (B,); the
    explorer's score for conditional models (y: their labels).

    The recon term is averaged over `samples` draws z ~ q(z|x) from a generator seeded with
    `seed`, so the same image always gets the same score. For an AE the KL term is zero and
    this is the reconstruction's negative log-likelihood."""
    dev = model.device
    gen = torch.Generator(device=dev).manual_seed(seed)
    out = []
    with evaluating(model):
        for i in range(0, x.shape[0], batch_size):
            xb = x[i : i + batch_size].to(dev)
            yb = None if y is None else y[i : i + batch_size].to(dev)
            total = torch.zeros(xb.shape[0], dtype=torch.float64, device=dev)
            for _ in range(samples):
                o = model(xb, yb, generator=gen)
                total += (o.recon + o.kl).double()
            out.append((total / samples).float().cpu())
    return torch.cat(out)


def percentile_rank(value: float, reference: Tensor) -> float:
    """Percentage of reference values below `value` (ties count half): 0..100."""
    below = float((reference < value).double().mean())
    ties = float((reference == value).double().mean())
    return 100.0 * (below + 0.5 * ties)
