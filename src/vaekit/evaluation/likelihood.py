"""Likelihood: the -ELBO and the importance-sampled NLL (IWAE, Burda et al. 2015), nats per example;
bits/dim = nats / (D ln 2), reported only where p(x|z) is a probability mass over the data
(discretized likelihoods; Bernoulli on binary data)."""

from __future__ import annotations

import ctypes
import math
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from ..core.modes import evaluating
from ..data import Dataset
from ..errors import VaekitError
from .common import labels_for, mean_of, require_posterior, standard_error

DECODE_BUDGET = 8192  # decoded examples per forward pass when importance sampling (bounds memory)
# importance samples per example by default: a hierarchical model's top-down pass costs ~10x a flat
# decoder's, so it gets fewer (its bound is also tighter: 0.05 bits/dim from -ELBO to k = 100 on
# Fashion-MNIST, BENCHMARKS.md)
DEFAULT_IW_SAMPLES, HIERARCHICAL_IW_SAMPLES = 1000, 100


def default_iw_samples(model) -> int:
    return DEFAULT_IW_SAMPLES if model.group_dims is None else HIERARCHICAL_IW_SAMPLES


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
    """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x), z_i ~ q(z|x): (k, B) in float64
    (the model's log_importance_weights; a hierarchical model's cover all its groups).

    x (B, *data_shape). The k samples go through the decoder `chunk` at a time (default: as many
    as keep chunk * B <= DECODE_BUDGET), so memory is bounded whatever k is."""
    require_posterior(model)
    if k < 1:
        raise VaekitError("the number of importance samples must be at least 1")
    dev = model.device
    x = x.to(dev)
    y = labels_for(model, y)
    y = None if y is None else y.to(dev)
    b = x.shape[0]
    chunk = chunk or max(1, min(k, DECODE_BUDGET // max(b, 1)))
    out = []
    for start in range(0, k, chunk):
        c = min(chunk, k - start)
        out.append(model.log_importance_weights(x, y, k=c, generator=generator).double())  # (c, B)
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
    require_posterior(model)
    gen = torch.Generator(device=model.device).manual_seed(seed)
    ks = _k_ladder(iw_samples)
    batch_size = batch_size or max(1, min(256, DECODE_BUDGET // min(iw_samples, DECODE_BUDGET)))
    recon, kl, nll = [], [], {k: [] for k in ks}
    bar = tqdm(
        total=len(data), desc=f"IWAE k={iw_samples}", unit="ex", disable=not progress, leave=False, dynamic_ncols=True
    )
    with bar, evaluating(model):
        for x, y in data.batches(batch_size):
            yy = labels_for(model, y)
            x_dev = x.to(model.device)
            out = model(x_dev, None if yy is None else yy.to(model.device), generator=gen)
            recon.append(out.recon.double().cpu())
            kl.append(out.kl.double().cpu())
            log_w = iwae_log_weights(model, x, y, k=iw_samples, chunk=chunk, generator=gen)
            for k in ks:
                nll[k].append(-log_mean_exp(log_w[:k], 0).cpu())
            bar.update(len(x))
    recon_t, kl_t = torch.cat(recon), torch.cat(kl)
    nll_t = {k: torch.cat(v) for k, v in nll.items()}
    num_dims = math.prod(model.data_shape)
    discrete = model.likelihood.is_discrete_on(data.x)
    nelbo = recon_t + kl_t
    res = {
        "n_examples": len(data),
        "nelbo": mean_of(nelbo),
        "nelbo_se": standard_error(nelbo),
        "recon": mean_of(recon_t),
        "kl": mean_of(kl_t),
        "iw_samples": iw_samples,
        "nll": mean_of(nll_t[iw_samples]),
        "nll_se": standard_error(nll_t[iw_samples]),
        "nll_by_k": {str(k): mean_of(v) for k, v in nll_t.items()},
        "num_dims": num_dims,
        "likelihood": model.config.likelihood,
        "discrete": discrete,
        "conditional": model.config.num_classes > 0,
    }
    if discrete:
        res["nelbo_bits_per_dim"] = bits_per_dim(res["nelbo"], num_dims)
        res["nll_bits_per_dim"] = bits_per_dim(res["nll"], num_dims)
    return res


def _libc_malloc_trim():
    try:
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
