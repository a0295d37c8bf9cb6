"""Evaluation: the numbers papers report, computed the same way for every run.

Plain functions over a model and tensors, so other parts of vaekit (anomaly scores, sweeps)
build on them:

  iwae_log_weights / iwae_log_likelihood   importance-sampled log p(x) per example (Burda et al. 2015)
  active_units / unit_activity             Cov_x(E_q[z_d]) per latent dimension (Burda et al. 2015)
  collapse_warnings                        posterior-collapse diagnostics in words
  mse / psnr / ssim                        reconstruction quality, per example
  gaussian_stats / frechet_distance        the Frechet distance between two Gaussians
  evaluate                                 all of it for one model on one split -> dict

Units: log-likelihoods and losses are nats per example (summed over one example's dimensions,
averaged over examples); bits/dim = nats / (D ln 2), reported only where p(x|z) is a
probability mass over the data (discretized likelihoods; Bernoulli on binary data).
"""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .data import DataSplits, Dataset
from .errors import VaekitError

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. 2015: unit d is active when Cov_x(E_q[z_d]) > 0.01
COLLAPSED_KL = 0.01  # nats: a latent dimension whose mean KL is below this carries no information
DECODE_BUDGET = 8192  # decoded examples per forward pass when importance sampling (bounds memory)
SSIM_WINDOW = 7  # scikit-image's default window for structural_similarity
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _require_posterior(model) -> None:
    if not model.stochastic:
        raise VaekitError(
            "this is an autoencoder (a point-mass code has no density), so it has no ELBO or "
            "log-likelihood; train a VAE to get them"
        )


def _labels_for(model, y: Tensor | None) -> Tensor | None:
    """The labels a (conditional) model takes, else None."""
    if model.config.num_classes == 0:
        return None
    if y is None:
        raise VaekitError("this model is conditional: the data must have labels")
    return y


# -- likelihood -----------------------------------------------------------------------------------


@torch.no_grad()
def iwae_log_weights(
    model,
    x: Tensor,
    y: Tensor | None = None,
    *,
    k: int,
    chunk: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x), z_i ~ q(z|x): (k, B) in float64.

    x (B, *data_shape). The k samples go through the decoder `chunk` at a time (default: as many
    as keep chunk * B <= DECODE_BUDGET), so memory is bounded whatever k is."""
    _require_posterior(model)
    if k < 1:
        raise VaekitError("the number of importance samples must be at least 1")
    dev = model.device
    x = x.to(dev)
    y = _labels_for(model, y)
    y = None if y is None else y.to(dev)
    b = x.shape[0]
    chunk = chunk or max(1, min(k, DECODE_BUDGET // max(b, 1)))
    q = model.encode(x, y)  # mu, logvar (B, D_z)
    out = []
    for start in range(0, k, chunk):
        c = min(chunk, k - start)
        z = q.rsample(c, generator=generator)  # (c, B, D_z)
        flat_z = z.reshape(c * b, -1)  # row i * B + j is sample i of example j
        flat_x = x.expand(c, *x.shape).reshape(c * b, *x.shape[1:])
        flat_y = None if y is None else y.repeat(c)
        log_px = model.decode(flat_z, flat_y).log_prob(flat_x).view(c, b)
        log_w = log_px + model.prior.log_prob(z) - q.log_prob(z)  # (c, B)
        out.append(log_w.double())
    del z, flat_z, flat_x, log_px, log_w
    release_freed_memory()
    return torch.cat(out)


def log_mean_exp(log_w: Tensor, dim: int = 0) -> Tensor:
    """log((1/k) sum_i exp(log_w_i)) along dim, without overflow."""
    return torch.logsumexp(log_w, dim) - math.log(log_w.shape[dim])


def iwae_log_likelihood(
    model,
    x: Tensor,
    y: Tensor | None = None,
    *,
    k: int,
    chunk: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Importance-sampled estimate of log p(x) (or log p(x|y) for a conditional model) per
    example, nats: (B,) float64 on the model's device.

    log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x) (the IWAE bound, Burda et al. 2015):
    in expectation a lower bound on log p(x) that rises weakly with k and reaches log p(x) as
    k -> inf; k = 1 is a one-sample ELBO. -result is the NLL; an anomaly score needs nothing more."""
    return log_mean_exp(iwae_log_weights(model, x, y, k=k, chunk=chunk, generator=generator), 0)


def bits_per_dim(nats: float, num_dims: int) -> float:
    return nats / (num_dims * math.log(2))


def _k_ladder(k: int) -> list[int]:
    """1, 10, 100, ... up to k, and k itself."""
    ladder = [10**i for i in range(int(math.log10(k)) + 1) if 10**i < k]
    return ladder + [k]


def likelihood_metrics(
    model,
    data: Dataset,
    *,
    iw_samples: int = 1000,
    batch_size: int | None = None,
    chunk: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """-ELBO (recon + KL), and the IWAE NLL with iw_samples samples, in nats per example over
    `data`; bits/dim where the likelihood is discrete on these data. Standard errors are over
    examples. The NLL is also given at k = 1, 10, 100, ... from prefixes of the same samples."""
    _require_posterior(model)
    gen = torch.Generator(device=model.device).manual_seed(seed)
    ks = _k_ladder(iw_samples)
    batch_size = batch_size or max(1, min(256, DECODE_BUDGET // min(iw_samples, DECODE_BUDGET)))
    recon, kl, nll = [], [], {k: [] for k in ks}
    bar = _bar(len(data), progress, f"IWAE k={iw_samples}")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for x, y in data.batches(batch_size):
                yy = _labels_for(model, y)
                x_dev = x.to(model.device)
                out = model(x_dev, None if yy is None else yy.to(model.device), generator=gen)
                recon.append(out.recon.double().cpu())
                kl.append(out.kl.double().cpu())
                log_w = iwae_log_weights(model, x, y, k=iw_samples, chunk=chunk, generator=gen)
                for k in ks:
                    nll[k].append(-log_mean_exp(log_w[:k], 0).cpu())
                bar.update(len(x))
    finally:
        model.train(was_training)
        bar.close()
    recon_t, kl_t = torch.cat(recon), torch.cat(kl)
    nll_t = {k: torch.cat(v) for k, v in nll.items()}
    num_dims = math.prod(model.data_shape)
    discrete = model.likelihood.is_discrete_on(data.x)
    nelbo = recon_t + kl_t
    res = {
        "n_examples": len(data),
        "nelbo": _mean(nelbo), "nelbo_se": _se(nelbo),
        "recon": _mean(recon_t), "kl": _mean(kl_t),
        "iw_samples": iw_samples,
        "nll": _mean(nll_t[iw_samples]), "nll_se": _se(nll_t[iw_samples]),
        "nll_by_k": {str(k): _mean(v) for k, v in nll_t.items()},
        "num_dims": num_dims,
        "likelihood": model.config.likelihood,
        "discrete": discrete,
        "conditional": model.config.num_classes > 0,
    }  # fmt: skip
    if discrete:
        res["nelbo_bits_per_dim"] = bits_per_dim(res["nelbo"], num_dims)
        res["nll_bits_per_dim"] = bits_per_dim(res["nll"], num_dims)
    return res


def _libc_malloc_trim():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None


_MALLOC_TRIM = _libc_malloc_trim()


def release_freed_memory() -> None:
    """Hand freed heap memory back to the OS (glibc only). Importance sampling frees tens of MB
    of decoder output per batch; glibc then raises its mmap threshold and serves later blocks
    from a heap that fragments, so without this a 10,000-example k=1000 evaluation grew by
    ~50 MB per batch, to several GB. With it, memory stays flat."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _mean(t: Tensor) -> float:
    return float(t.double().mean())


def _se(t: Tensor) -> float:
    return float(t.double().std() / math.sqrt(len(t))) if len(t) > 1 else float("nan")


def _bar(total: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="ex", disable=not enabled, leave=False, dynamic_ncols=True)


# -- latent health --------------------------------------------------------------------------------


def unit_activity(mu: Tensor) -> Tensor:
    """Cov_x(E_q[z_d]): the variance over examples of each posterior mean, mu (N, D) -> (D,)."""
    if mu.shape[0] < 2:
        raise VaekitError("unit activity needs at least 2 examples")
    return mu.double().var(0, correction=1)


def active_units(mu: Tensor, *, threshold: float = ACTIVE_UNIT_THRESHOLD) -> int:
    """How many latent dimensions are active (Burda et al. 2015): Cov_x(E_q[z_d]) > threshold.
    mu (N, D): posterior means of N examples."""
    return int((unit_activity(mu) > threshold).sum())


def collapse_warnings(
    kl_per_dim: Sequence[float] | None,
    activity: Sequence[float],
    *,
    threshold: float = ACTIVE_UNIT_THRESHOLD,
) -> list[str]:
    """Posterior-collapse diagnostics in words; kl_per_dim (D,) mean KL per dimension in nats
    (None for an AE), activity (D,) from unit_activity."""
    d = len(activity)
    inactive = [i for i, a in enumerate(activity) if a <= threshold]
    notes = []
    if kl_per_dim is not None:
        total = float(sum(kl_per_dim))
        if total < COLLAPSED_KL * d:
            notes.append(
                f"posterior collapse: KL(q(z|x) || p(z)) is {total:.3g} nats per example in all, so q(z|x) is "
                "the prior for every x and the decoder ignores z"
            )
        else:
            collapsed = [i for i, v in enumerate(kl_per_dim) if v < COLLAPSED_KL]
            if collapsed:
                notes.append(
                    f"{len(collapsed)} of {d} latent dimensions have collapsed to the prior (mean KL < "
                    f"{COLLAPSED_KL} nats): {_dims(collapsed)}"
                )
    if inactive and not (notes and notes[0].startswith("posterior collapse")):
        notes.append(
            f"{len(inactive)} of {d} latent dimensions are inactive (Cov_x(E_q[z_d]) <= {threshold}): {_dims(inactive)}"
        )
    return notes


def _dims(idx: list[int]) -> str:
    shown = ", ".join(str(i) for i in idx[:12])
    return shown + (f" and {len(idx) - 12} more" if len(idx) > 12 else "")


def prior_mismatch(mu: Tensor, var: Tensor | None = None) -> float:
    """KL(N(m, S) || N(0, I)) in nats, where N(m, S) matches the mean and covariance of the
    aggregate posterior q(z) = mean_x q(z|x): S = Cov(mu) + mean(var). mu, var (N, D); var=None
    for an AE's point codes. How far the codes the decoder was trained on lie from where N(0, I)
    samples fall: near 0 for a well-fitted VAE, large for an AE."""
    mu = mu.double()
    m = mu.mean(0)
    s = torch.cov(mu.T).reshape(mu.shape[1], mu.shape[1])
    if var is not None:
        s = s + torch.diag(var.double().mean(0))
    d = mu.shape[1]
    logdet = torch.linalg.slogdet(s + 1e-12 * torch.eye(d, dtype=s.dtype))[1]
    return float(0.5 * (torch.trace(s) + m @ m - d - logdet))


def latent_metrics(model, data: Dataset, *, batch_size: int = 1024) -> dict[str, Any]:
    """KL per latent dimension (nats, analytic, mean over data), unit activity, active units,
    posterior-collapse warnings, and how far the aggregate posterior is from N(0, I)."""
    from .sampling import encode_dataset

    enc = encode_dataset(model, data if model.config.num_classes else Dataset(data.x), batch_size=batch_size)
    mu = enc["mu"]
    activity = unit_activity(mu)
    kl_per_dim = None
    var = None
    if model.stochastic:
        var = enc["logvar"].double().exp()
        kl_per_dim = (0.5 * (mu.double() ** 2 + var - 1.0 - enc["logvar"].double())).mean(0).tolist()
    return {
        "latent_dim": model.latent_dim,
        "active_units": int((activity > ACTIVE_UNIT_THRESHOLD).sum()),
        "active_unit_threshold": ACTIVE_UNIT_THRESHOLD,
        "activity": activity.tolist(),
        "kl_per_dim": kl_per_dim,
        "code_std": mu.double().std(0).tolist(),
        "prior_mismatch": prior_mismatch(mu, var),
        "warnings": collapse_warnings(kl_per_dim, activity.tolist()),
    }


# -- reconstruction quality ------------------------------------------------------------------------


def mse(x: Tensor, x_hat: Tensor) -> Tensor:
    """Mean squared error per example, averaged over its dimensions: (N, ...) -> (N,)."""
    return ((x.double() - x_hat.double()) ** 2).flatten(1).mean(1)


def psnr(x: Tensor, x_hat: Tensor, *, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio per example in dB, 10 log10(range^2 / MSE): (N,). A perfect
    reconstruction is capped at 100 dB rather than infinity."""
    return 10.0 * torch.log10(data_range**2 / mse(x, x_hat).clamp_min(data_range**2 * 1e-10))


def ssim(x: Tensor, x_hat: Tensor, *, data_range: float = 1.0, window: int = SSIM_WINDOW) -> Tensor:
    """Structural similarity per image (Wang et al. 2004), as scikit-image computes it by default:
    a window x window uniform filter, sample covariances, K1 = 0.01, K2 = 0.03, averaged over the
    positions where the window fits and over channels. x, x_hat (N, C, H, W) -> (N,)."""
    if x.ndim != 4 or x.shape != x_hat.shape:
        raise VaekitError("SSIM needs two image batches of the same shape (N, C, H, W)")
    if min(x.shape[2:]) < window:
        raise VaekitError(f"SSIM needs images at least {window}x{window} pixels")
    a, b = x.double(), x_hat.double()
    n, c = a.shape[:2]

    def local_mean(t: Tensor) -> Tensor:  # (N, C, H, W) -> (N, C, H - w + 1, W - w + 1)
        return F.avg_pool2d(t.reshape(n * c, 1, *t.shape[2:]), window, stride=1).reshape(n, c, *[s - window + 1 for s in t.shape[2:]])

    cov_norm = window**2 / (window**2 - 1)  # sample, not population, covariance
    ua, ub = local_mean(a), local_mean(b)
    va = cov_norm * (local_mean(a * a) - ua * ua)
    vb = cov_norm * (local_mean(b * b) - ub * ub)
    vab = cov_norm * (local_mean(a * b) - ua * ub)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = (2 * ua * ub + c1) * (2 * vab + c2) / ((ua**2 + ub**2 + c1) * (va + vb + c2))
    return s.flatten(1).mean(1)


def reconstruction_metrics(model, data: Dataset, *, classifier=None, batch_size: int = 512) -> dict[str, Any]:
    """MSE, and for images in [0, 1] PSNR (dB) and SSIM, of the posterior-mean reconstructions;
    with a FeatureClassifier also its accuracy on the originals and on the reconstructions."""
    from .sampling import reconstruct

    sums: dict[str, list[Tensor]] = {"mse": [], "psnr": [], "ssim": []}
    correct = {"original": 0, "reconstruction": 0}
    images = len(model.data_shape) == 3
    can_ssim = images and min(model.data_shape[1:]) >= SSIM_WINDOW
    labelled = classifier is not None and data.y is not None
    for x, y in data.batches(batch_size):
        rec = reconstruct(model, x, _labels_for(model, y))
        sums["mse"].append(mse(x, rec))
        if images:
            sums["psnr"].append(psnr(x, rec))
        if can_ssim:
            sums["ssim"].append(ssim(x, rec))
        if labelled:
            correct["original"] += int((classifier.predict(x) == y).sum())
            correct["reconstruction"] += int((classifier.predict(rec) == y).sum())
    res: dict[str, Any] = {k: (_mean(torch.cat(v)) if v else None) for k, v in sums.items()}
    if labelled:
        res["classifier_accuracy_original"] = correct["original"] / len(data)
        res["classifier_accuracy_reconstruction"] = correct["reconstruction"] / len(data)
    return res


# -- sample quality -------------------------------------------------------------------------------


def gaussian_stats(features: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and covariance (F, F) of features (N, F), in float64."""
    f = np.asarray(features.detach().cpu() if isinstance(features, Tensor) else features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise VaekitError("Gaussian statistics need at least 2 feature vectors (N, F)")
    return f.mean(0), np.cov(f, rowvar=False)


def _psd_sqrt(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Frechet (2-Wasserstein squared) distance between N(mu1, cov1) and N(mu2, cov2):
    |mu1 - mu2|^2 + tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2)).

    tr((cov1 cov2)^(1/2)) is computed as the sum of the square roots of the eigenvalues of the
    symmetric PSD matrix cov1^(1/2) cov2 cov1^(1/2) (same spectrum), which needs no complex
    arithmetic and never returns a negative distance from round-off."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(np.asarray(cov2, np.float64))
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (mu1.size, mu1.size):
        raise VaekitError("the two Gaussians must have means (F,) and covariances (F, F) of the same F")
    s1 = _psd_sqrt(cov1)
    eig = np.linalg.eigvalsh(s1 @ cov2 @ s1)
    tr_sqrt = np.sqrt(np.clip(eig, 0, None)).sum()
    return float(max(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * tr_sqrt, 0.0))


def feature_frechet_distance(classifier, a: Tensor, b: Tensor) -> float:
    """FD (classifier features) between two sets of examples (N, *data_shape)."""
    return frechet_distance(*gaussian_stats(classifier.features(a)), *gaussian_stats(classifier.features(b)))


def generate(model, n: int, *, seed: int = 0, z: Tensor | None = None) -> Tensor:
    """n examples decoded (likelihood means) from z ~ N(0, I), or from the given codes z (n, D);
    a conditional model gets labels 0, 1, ..., K-1, 0, 1, ... -> (n, *data_shape) on the CPU."""
    from .sampling import _images, sample

    k = model.config.num_classes
    y = None if k == 0 else torch.arange(n) % k
    if z is None:
        return sample(model, n, seed=seed, y=y)
    with torch.no_grad():  # the models have no dropout or batch norm: eval mode changes nothing here
        return torch.cat([_images(model, zz, None if y is None else y[i : i + 1024])
                          for i, zz in zip(range(0, n, 1024), z.split(1024))])  # fmt: skip


def class_confidence(classifier, x: Tensor) -> dict[str, float]:
    """How recognisable generated examples are to the classifier: mean top-class probability,
    and the entropy of the predicted-class histogram relative to log K (1: every class equally)."""
    p = classifier.probabilities(x)  # (N, K)
    counts = torch.bincount(p.argmax(1), minlength=p.shape[1]).double()
    freq = counts / counts.sum()
    ent = -(freq[freq > 0] * freq[freq > 0].log()).sum()
    return {"confidence": float(p.max(1).values.mean()), "class_coverage": float(ent / math.log(p.shape[1]))}


def sample_metrics(
    model, data: DataSplits, classifier, *, split: str = "test", n: int | None = None, seed: int = 0
) -> dict[str, Any]:
    """FD (classifier features) between n samples from N(0, I) and the split's examples, with two
    references on the same features and n: the model's reconstructions, and the training set
    itself (the floor that a perfect generator would reach, up to sampling noise)."""
    ref = data.split(split)
    n = min(n or len(ref), len(ref))
    if n < 2:
        raise VaekitError("sample quality needs at least 2 examples in the split")
    ref_x = ref.x[:n]
    ref_stats = gaussian_stats(classifier.features(ref_x))
    fd = lambda x: frechet_distance(*gaussian_stats(classifier.features(x)), *ref_stats)  # noqa: E731
    samples = generate(model, n, seed=seed)
    from .sampling import reconstruct

    recon = torch.cat([reconstruct(model, x, _labels_for(model, y)) for x, y in ref.subset(torch.arange(n)).batches(512)])
    train_x = data.train.x[torch.randperm(len(data.train), generator=torch.Generator().manual_seed(seed))[:n]]
    return {
        "n": n,
        "fd_samples": fd(samples),
        "fd_reconstructions": fd(recon),
        "fd_train_reference": fd(train_x),
        **{f"samples_{k}": v for k, v in class_confidence(classifier, samples).items()},
        "classifier_test_accuracy": classifier.meta.get("test_accuracy"),
        "classifier": classifier.describe(),
    }


# -- everything -----------------------------------------------------------------------------------


def evaluate(
    model,
    data: DataSplits,
    *,
    split: str = "test",
    iw_samples: int = 1000,
    max_examples: int | None = None,
    classifier=None,
    n_samples: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Every metric for one model on one split -> a JSON-ready dict with sections
    likelihood (VAE only), latent, reconstruction, samples (with a FeatureClassifier), and the
    seconds each took. max_examples: evaluate on the first N examples of the split only.
    A run trained with dynamic binarization is evaluated on one fixed (seeded) binarization of
    the split, as the literature does, so its Bernoulli NLL is a proper one in bits/dim."""
    if iw_samples < 1:
        raise VaekitError("--iw-samples must be at least 1")
    ds = data.split(split)
    if max_examples is not None:
        if max_examples < 2:
            raise VaekitError("--max-examples must be at least 2")
        ds = ds.subset(torch.arange(min(max_examples, len(ds))))
    if len(ds) < 2:
        raise VaekitError(f"the {split} split has {len(ds)} example(s); evaluation needs at least 2")
    binarized = getattr(getattr(model, "run_config", None), "train", None)
    binarized = binarized is not None and binarized.binarize == "dynamic"
    if binarized:
        ds = Dataset(torch.bernoulli(ds.x, generator=torch.Generator().manual_seed(seed)), ds.y)
    res: dict[str, Any] = {
        "model": {"kind": model.config.kind, "arch": model.config.arch, "likelihood": model.config.likelihood,
                  "latent_dim": model.latent_dim, "run": str(getattr(model, "run_dir", ""))},
        "data": data.name, "split": split, "n_examples": len(ds), "of": len(data.split(split)),
        "binarized": binarized, "iw_samples": iw_samples, "seed": seed, "seconds": {},
    }  # fmt: skip
    sections = [
        ("likelihood", lambda: likelihood_metrics(model, ds, iw_samples=iw_samples, batch_size=batch_size,
                                                  seed=seed, progress=progress)),
        ("latent", lambda: latent_metrics(model, ds)),
        ("reconstruction", lambda: reconstruction_metrics(model, ds, classifier=classifier)),
        ("samples", lambda: sample_metrics(model, data, classifier, split=split, n=n_samples, seed=seed)),
    ]  # fmt: skip
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


# -- presentation ---------------------------------------------------------------------------------


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
        rows.append(("likelihood", "-ELBO", f"{lik['nelbo']:.2f} ± {lik['nelbo_se']:.2f} nats/example",
                     f"recon {lik['recon']:.2f} + KL {lik['kl']:.2f}; {head}"))  # fmt: skip
        if lik["discrete"]:
            rows.append(("likelihood", "-ELBO", bpd("nelbo_bits_per_dim"), f"{lik['likelihood']} likelihood"))
        rows.append(("likelihood", f"NLL, IWAE k={lik['iw_samples']}", f"{lik['nll']:.2f} ± {lik['nll_se']:.2f} nats/example",
                     "importance-sampled -log p(x), Burda et al. 2015" + cond))  # fmt: skip
        if lik["discrete"]:
            rows.append(("likelihood", f"NLL, IWAE k={lik['iw_samples']}", bpd("nll_bits_per_dim"),
                         f"{lik['likelihood']} likelihood: a probability mass, comparable with the literature"))  # fmt: skip
        else:
            why = ("Bernoulli on grey levels is not a distribution over the data" if lik["likelihood"] == "bernoulli"
                   else f"the {lik['likelihood']} likelihood is a density, not a probability mass")  # fmt: skip
            rows.append(("likelihood", "bits/dim", "n/a", why + "; use a discretized likelihood"))
        rows.append(("likelihood", "NLL by k", "  ".join(f"k={k}: {v:.2f}" for k, v in lik["nll_by_k"].items()),
                     "nats/example; same samples, prefixes"))  # fmt: skip
    lat = res.get("latent")
    if lat:
        d = lat["latent_dim"]
        rows.append(("latent", "active units", f"{lat['active_units']} / {d}",
                     f"Cov_x(E_q[z_d]) > {lat['active_unit_threshold']} (Burda et al. 2015)"))  # fmt: skip
        if lat["kl_per_dim"] is not None:
            kl = lat["kl_per_dim"]
            order = sorted(range(d), key=lambda i: -kl[i])
            shown = ", ".join(f"z{i} {kl[i]:.2f}" for i in order[:8]) + (", ..." if d > 8 else "")
            rows.append(("latent", "KL per dimension", f"{sum(kl):.2f} nats in all", f"largest first: {shown}"))
        rows.append(("latent", "prior mismatch", f"{lat['prior_mismatch']:.2f} nats",
                     "KL(Gaussian fit of the aggregate posterior || N(0, I))"))  # fmt: skip
        for w in lat["warnings"]:
            rows.append(("latent", "WARNING", w, ""))
    rec = res.get("reconstruction")
    if rec:
        rows.append(("reconstruction", "MSE", f"{rec['mse']:.5f}", "per value, posterior-mean reconstructions"))
        if rec.get("psnr") is not None:
            rows.append(("reconstruction", "PSNR", f"{rec['psnr']:.2f} dB", "per image, peak 1.0"))
        if rec.get("ssim") is not None:
            rows.append(("reconstruction", "SSIM", f"{rec['ssim']:.4f}", f"{SSIM_WINDOW}x{SSIM_WINDOW} window, as scikit-image"))
        if "classifier_accuracy_reconstruction" in rec:
            rows.append(("reconstruction", "classifier accuracy", f"{rec['classifier_accuracy_reconstruction']:.1%}",
                         f"on reconstructions (on the originals: {rec['classifier_accuracy_original']:.1%})"))  # fmt: skip
    smp = res.get("samples")
    if smp:
        rows.append(("samples", "FD (classifier features)", f"{smp['fd_samples']:.3f}",
                     f"{smp['n']} decoded z ~ N(0, I) vs {res['split']} examples; lower is better; not FID"))  # fmt: skip
        rows.append(("samples", "FD references", f"{smp['fd_reconstructions']:.3f} / {smp['fd_train_reference']:.3f}",
                     "reconstructions / training examples (the floor) vs the same examples"))  # fmt: skip
        rows.append(("samples", "classifier on samples", f"confidence {smp['samples_confidence']:.1%}",
                     f"class coverage {smp['samples_class_coverage']:.2f} (1 = every class equally)"))  # fmt: skip
        rows.append(("samples", "feature classifier", "", smp["classifier"]))
    return rows


def format_table(res: dict[str, Any]) -> str:
    """evaluate()'s result as a plain-text table."""
    rows = metric_rows(res)
    w_metric = max((len(r[1]) for r in rows), default=0)
    w_value = min(max((len(r[2]) for r in rows if r[1] != "WARNING"), default=0), 32)
    m = res["model"]
    lines = [f"{m['kind'].upper()} {m['run']} ({m['arch']}, {m['likelihood']} likelihood, latent {m['latent_dim']}) "
             f"on {res['data']}, {res['split']} split"]  # fmt: skip
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
