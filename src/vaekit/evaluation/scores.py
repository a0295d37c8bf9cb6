"""Per-example anomaly scores of a trained model: plain functions, higher = more anomalous.

Raw likelihood is a famously bad anomaly score: a model trained on Fashion-MNIST gives
simpler images (MNIST digits, constant images) a higher likelihood than its own test set
(Nalisnick et al. 2019). Two corrections remove the part of the likelihood that measures
how simple an input is, not how typical:

  recon_error  squared error between x and its reconstruction from the posterior mean,
               summed over one example (the classic autoencoder score; AE and VAE)
  nelbo        negative ELBO, recon + KL in nats per example (one posterior sample)
  nll_iw       importance-sampled negative log-likelihood with k samples (IWAE), nats per example
  complexity   nll - L(x): the model's NLL minus the input's lossless code length under a
               general-purpose compressor (PNG or zlib of the 8-bit image), both in nats
               (Serra et al. 2020, "input complexity")
  llr          nll - nll_background: minus the log-likelihood ratio against a background model
               of the same architecture trained on randomly perturbed inputs (Ren et al. 2019)
  llr_top      a hierarchical VAE's L(x) - L^{>k}(x): its ELBO minus the bound with only the top k
               groups from the posterior and the rest drawn from their priors (Havtorn et al. 2021,
               "Hierarchical VAEs know what they don't know"): the lower groups explain any image's
               pixels, so only what the top groups cannot explain makes the ratio large
  ensemble     the mean of recon_error, the NLL (nll_iw, else nelbo) and complexity, each first
               rank-normalised against the same scores of reference data (the run's validation
               split): see ensemble_score

`nll` in complexity and llr is nll_iw when k > 1 samples are asked for, else nelbo.
"""

from __future__ import annotations

import contextlib
import io
import math
import zlib

import numpy as np
import torch
from PIL import Image
from scipy.special import ndtri
from torch import Tensor
from tqdm import tqdm

from ..core.model import VAE
from ..core.modes import evaluating
from ..errors import VaekitError
from .likelihood import iwae_log_likelihood, log_mean_exp

LN2 = math.log(2.0)
COMPRESSORS = ("png", "zlib")
SCORE_NAMES = ("recon_error", "nelbo", "nll_iw", "complexity", "llr", "llr_top", "ensemble")
TOP_GROUPS = 1  # k of llr_top: the top group alone (Havtorn et al. 2021 found k = 1 or 2 best)
ENSEMBLE = "ensemble"
TAIL = 0.1  # rank_normalise continues the outer 10% of the reference's quantile curve beyond its range
SCORE_DESCRIPTIONS = {
    "recon_error": "squared reconstruction error from the posterior mean, summed over one example",
    "nelbo": "negative ELBO (recon + KL), nats per example",
    "nll_iw": "importance-sampled NLL (IWAE, k samples), nats per example",
    "complexity": "NLL minus the input's lossless code length, nats (Serra et al. 2020)",
    "llr": "NLL minus the background model's NLL: minus the likelihood ratio, nats (Ren et al. 2019)",
    "llr_top": "ELBO minus the ELBO with only the top latent group inferred (hierarchical VAE; Havtorn et al. 2021), "
    "nats",
    "ensemble": "the mean of recon_error, the NLL and complexity, each as a standard normal quantile of its rank "
    "among the validation split's",
}


# -- the scores themselves ---------------------------------------------------------------------------


def reconstruction_error(model: VAE, x: Tensor) -> Tensor:
    """sum_d (x_d - E[x_d | z = mu(x)])^2: (B, *shape) -> (B,). Works for AE and VAE (and a
    hierarchical VAE, every group at its posterior mean). For a table
    the sum runs over observed cells: transformed numbers, booleans and one-hot categories against
    the decoded probabilities (a Brier score)."""
    x_hat = model.reconstruction(x)
    if x.ndim == 4:  # images: compare with what the model can show
        x_hat = x_hat.clamp(0.0, 1.0)
    err = (x - x_hat).pow(2)
    mask = model.likelihood.value_mask(
        x
    )  # a table: observed values only (standardised numbers, one-hot vs probabilities)
    return (err if mask is None else err * mask).flatten(1).sum(1)


def negative_elbo(model: VAE, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """recon + KL with one posterior sample, nats per example: (B, *shape) -> (B,)."""
    out = model(x, generator=generator)
    return out.recon + out.kl


def top_groups_llr(
    model: VAE, x: Tensor, *, samples: int = 1, top: int = TOP_GROUPS, generator: torch.Generator | None = None
) -> Tensor:
    """LLR^{>k}(x) = L(x) - L^{>k}(x), both importance-weighted with `samples` draws (one draw:
    the ELBOs themselves), nats: (B, C, H, W) -> (B,). Higher = more anomalous."""
    full = model.log_importance_weights(x, k=samples, generator=generator).double()  # (S, B)
    top_only = model.log_importance_weights(x, k=samples, generator=generator, inferred=top).double()
    return log_mean_exp(full) - log_mean_exp(top_only)


def code_length(x: Tensor, *, compressor: str = "png") -> Tensor:
    """Lossless code length of each image quantized to 8 bits, in nats: (B, C, H, W) in [0, 1] -> (B,).

    png: the whole PNG file (Pillow, compression level 9); zlib: zlib level 9 on the raw bytes.
    Both include a fixed header of a few dozen bytes, a constant that shifts every score
    alike and so changes no ranking."""
    if compressor not in COMPRESSORS:
        raise VaekitError(f"unknown compressor {compressor!r}; choose {' or '.join(COMPRESSORS)}")
    if x.ndim != 4 or x.shape[1] not in (1, 3, 4):
        raise VaekitError("the input-complexity score needs images (N, C, H, W) with 1, 3 or 4 channels")
    pixels = (x.detach().float().clamp(0.0, 1.0) * 255).round().to(torch.uint8).cpu().numpy()
    pixels = pixels.transpose(0, 2, 3, 1)  # (B, H, W, C)
    lengths = [8 * len(_compress(img, compressor)) for img in pixels]  # bits
    return torch.tensor(lengths, dtype=torch.float64) * LN2


def _compress(img: np.ndarray, compressor: str) -> bytes:
    """img (H, W, C) uint8 -> compressed bytes."""
    if compressor == "zlib":
        return zlib.compress(np.ascontiguousarray(img).tobytes(), 9)
    buf = io.BytesIO()
    Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img).save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


def complexity_score(nll: Tensor, code_len: Tensor) -> Tensor:
    """S(x) = -log p(x) - L(x) (Serra et al. 2020, eq. 2), both in nats: (B,), (B,) -> (B,).

    A simple input has a short code and also a high likelihood under any model; subtracting
    the code length leaves how much better (or worse) the model explains x than a generic
    compressor does, which is large only for inputs like the training data."""
    return nll.double() - code_len.double()


def likelihood_ratio_score(nll: Tensor, nll_background: Tensor) -> Tensor:
    """-LLR(x) = -log p(x) + log p_background(x) (Ren et al. 2019): (B,), (B,) -> (B,).

    The background model, trained on perturbed inputs, learns the population-level
    statistics (background pixels, overall smoothness) and not the semantics; the ratio
    cancels what both models share."""
    return nll.double() - nll_background.double()


def rank_normalise(s: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Scores as standard normal quantiles of their rank among reference scores: (N,), (M,) -> (N,).

    Inside the reference's range z = Phi^-1((below + equal / 2 + 1/2) / (M + 1)), counting the
    reference scores below and equal to s (on the reference itself: rank / (M + 1), so z is
    roughly N(0, 1) whatever the score's units). Outside it, on either side, s is unlike anything
    in the reference: above its largest value z continues the quantile curve of its top TAIL as a
    straight line (so scores beyond anything seen keep their order instead of tying); below its
    smallest, z is as high as at the top, growing the same way with the distance. An input that a
    likelihood finds more probable than every reference input is atypical too (the typicality
    argument of Nalisnick et al. 2019): digits drawn in fonts are, under a model of Fashion-MNIST."""
    ref = np.sort(np.asarray(reference, dtype=np.float64))
    m = len(ref)
    if m == 0:
        raise VaekitError("rank normalisation needs reference scores")
    s = np.asarray(s, dtype=np.float64)
    rank = 0.5 * (np.searchsorted(ref, s, "left") + np.searchsorted(ref, s, "right"))
    z = ndtri((rank + 0.5) / (m + 1))
    z_top = ndtri((m + 0.5) / (m + 1))
    above, below = s > ref[-1], s < ref[0]
    z[above] = z_top + _tail_slope(ref[::-1]) * (s[above] - ref[-1])
    z[below] = z_top + _tail_slope(ref) * (ref[0] - s[below])
    return z


def _tail_slope(ordered: np.ndarray) -> float:
    """How fast z changes per unit of score over the outer TAIL of sorted reference scores, the
    extreme first: the quantile curve's slope there (1/spread for a degenerate tail)."""
    m = len(ordered)
    k = min(m - 1, int(np.ceil(TAIL * m)))
    spread = abs(ordered[k] - ordered[0])
    if spread == 0:
        return 1.0 / (float(np.std(ordered)) or 1.0)
    return float(ndtri((m + 0.5) / (m + 1)) - ndtri((m - k + 0.5) / (m + 1))) / spread


def ensemble_members(names: list[str]) -> list[str]:
    """The scores the ensemble averages: recon_error, one NLL (nll_iw when computed, else nelbo) and
    complexity, where available. Not llr: on the image out sets it lowered the ensemble's mean
    AUROC (0.940 -> 0.900) and its worst (0.763 -> 0.676; BENCHMARKS.md)."""
    nll = "nll_iw" if "nll_iw" in names else "nelbo"
    return [n for n in ("recon_error", nll, "complexity") if n in names]


def ensemble_score(scores: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> np.ndarray:
    """The mean rank-normalised score of each example (rank_normalise against `reference`, the same
    scores of in-distribution data) over ensemble_members: {name: (N,)} -> (N,). Inside the
    reference's range a score's z is at least Phi^-1(1/(M+1)); outside it z grows without bound,
    so one score that finds an input far beyond anything in the reference outweighs another that
    finds it unremarkable: the likelihood catches noise that complexity calls simple, complexity
    and the likelihood's lower side catch simple inputs the likelihood prefers, the
    reconstruction error semantic shifts. The mean (rather than the largest) also adds up weaker
    evidence of several scores (BENCHMARKS.md)."""
    names = ensemble_members(list(scores))
    return np.mean([rank_normalise(scores[n], reference[n]) for n in names], axis=0)


def with_ensemble(scores: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """scores plus the ensemble (when there are at least two scores to combine)."""
    if len(ensemble_members(list(scores))) < 2:
        return dict(scores)
    return {**scores, ENSEMBLE: ensemble_score(scores, reference)}


# -- all scores of a dataset ----------------------------------------------------------------------------


def check_scorable(model: VAE) -> None:
    if model.config.num_classes:
        raise VaekitError("anomaly scores need an unconditional model; this one is conditioned on labels")


def available_scores(
    model: VAE, *, iw_samples: int = 0, background=None, complexity: bool = True, ensemble: bool = False
) -> list[str]:
    """The scores score_examples returns for this model and these settings, in order; with
    ensemble=True also the ensemble where there are scores to combine (it needs reference data)."""
    if not model.stochastic:
        return ["recon_error"]  # an AE has no likelihood, so no likelihood-based score
    names = ["recon_error", "nelbo"]
    if iw_samples > 1:
        names.append("nll_iw")
    if complexity and len(model.data_shape) == 3:
        names.append("complexity")
    if background is not None:
        names.append("llr")
    if model.group_dims is not None:
        names.append("llr_top")
    return names + ([ENSEMBLE] if ensemble else [])


def _iwae_nll(model: VAE, x: Tensor, *, k: int, generator: torch.Generator | None) -> Tensor:
    """-log p(x) estimated with k importance samples (the IWAE bound): (B,) nats."""
    return -iwae_log_likelihood(model, x, k=k, generator=generator)


@torch.no_grad()
def score_examples(
    model,
    x: Tensor,
    *,
    background=None,
    iw_samples: int = 0,
    compressor: str = "png",
    batch_size: int = 256,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Every available score of every example: x (N, *shape) -> {name: float64 (N,)}.

    background: a model trained on perturbed inputs (see vaekit.workflows.anomaly.fit_background), for
    llr. iw_samples k > 1 adds nll_iw, which then also drives complexity and llr. The same
    seed gives the same scores."""
    check_scorable(model)
    if background is not None:
        check_scorable(background)
        if list(background.data_shape) != list(model.data_shape):
            raise VaekitError("the background model was trained on data of another shape than the model")
    if iw_samples < 0 or iw_samples == 1:
        raise VaekitError("iw_samples must be 0 (no importance sampling) or at least 2")
    if compressor not in COMPRESSORS:
        raise VaekitError(f"unknown compressor {compressor!r}; choose {' or '.join(COMPRESSORS)}")
    names = available_scores(model, iw_samples=iw_samples, background=background)
    dev = model.device
    gen = torch.Generator(device=dev).manual_seed(seed)
    gen_bg = None if background is None else torch.Generator(device=background.device).manual_seed(seed + 1)
    parts: dict[str, list[Tensor]] = {n: [] for n in names}
    starts = range(0, x.shape[0], batch_size)
    if progress:
        starts = tqdm(starts, desc="scoring", unit="batch", leave=False)
    with evaluating(model), evaluating(background) if background is not None else contextlib.nullcontext():
        for i in starts:
            xb = x[i : i + batch_size].to(dev)
            got = {"recon_error": reconstruction_error(model, xb)}
            if model.stochastic:
                got["nelbo"] = negative_elbo(model, xb, generator=gen)
                nll = got["nelbo"]
                if iw_samples > 1:
                    nll = got["nll_iw"] = _iwae_nll(model, xb, k=iw_samples, generator=gen)
                if "complexity" in names:
                    got["complexity"] = complexity_score(nll.cpu(), code_length(xb, compressor=compressor))
                if background is not None:
                    xg = xb.to(background.device)
                    nll_bg = (
                        _iwae_nll(background, xg, k=iw_samples, generator=gen_bg)
                        if iw_samples > 1
                        else negative_elbo(background, xg, generator=gen_bg)
                    )
                    got["llr"] = likelihood_ratio_score(nll.cpu(), nll_bg.cpu())
                if "llr_top" in names:
                    got["llr_top"] = top_groups_llr(model, xb, samples=max(iw_samples, 1), generator=gen)
            for n in names:
                parts[n].append(got[n].detach().double().cpu())
    scores = {n: torch.cat(parts[n]).numpy() if parts[n] else np.zeros(0) for n in names}
    for n, s in scores.items():
        if not np.all(np.isfinite(s)):
            raise VaekitError(f"the {n} score is not finite for {int((~np.isfinite(s)).sum())} examples")
    return scores


@torch.no_grad()
def column_nll(model, x: Tensor, *, batch_size: int = 256) -> np.ndarray:
    """A table's -log p(cell | z = the posterior mean) per column, nats: (N, D) -> (N, H), 0 for a
    missing cell; what each column adds to a row's reconstruction term."""
    parts = []
    with evaluating(model):
        for i in range(0, x.shape[0], batch_size):
            xb = x[i : i + batch_size].to(model.device)
            parts.append(-model.decode(model.encode(xb).mode()).column_log_prob(xb).double().cpu())
    return torch.cat(parts).numpy() if parts else np.zeros((0, len(model.likelihood.layout.heads)))
