"""Lossy coding with a codec (a model trained with --model codec, Balle et al. 2017): each image's
code y is rounded to integers, and every integer is entropy-coded with the learned factorized
prior (vaekit.core.entropy) on constriction's ANS stack; decoding pops the integers and decodes
them into the image.

The tables depend only on the prior, not on the image: for each latent dimension d the masses of
the integers in its coding range [lo_d, hi_d] (all but 1e-9 of the mass at each end; the end
integers take the tails, and a code outside the range is clamped to it, which the coder counts).
Both sides compute them from the same weights in float64 on the CPU (vaekit.core.coding's
coding_model), so they agree bit for bit; the decoded image itself needs no such care.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ..errors import VaekitError
from .coding import constriction_module, deterministic_cpu, table_rows, wrong_stream
from .entropy import FactorizedDensity
from .model import VAE

MAX_TABLE_ROWS = 2**16  # latent values per chunk (with their tables): bounds memory


def check_codec(model: VAE) -> None:
    if model.config.kind != "codec":
        raise VaekitError("lossy compression needs a codec: train one with --model codec --lmbda L")
    if model.config.num_classes:
        raise VaekitError("compression needs an unconditional model; this one is conditioned on labels")


def latent_tables(prior: FactorizedDensity) -> tuple[Tensor, Tensor, np.ndarray]:
    """(lo, hi (D,) int64, masses (D, K) float64): row d holds P(round(y_d) = lo_d + j) for
    lo_d + j <= hi_d, then zeros up to the widest range's K."""
    lo, hi = prior.integer_range()
    length = hi - lo + 1  # (D,)
    j = torch.arange(int(length.max()) + 1, dtype=torch.float64)  # (K + 1,) edge indices
    edges = lo.to(torch.float64)[None, :] + j[:, None] - 0.5  # (K + 1, D): lo_d + j - 1/2
    with torch.no_grad():
        cdf = prior.cdf(edges)
    cdf[0] = 0.0  # the first integer takes the lower tail ...
    cdf[j[:, None] >= length[None, :]] = 1.0  # ... the last the upper one; past it nothing is left
    return lo, hi, table_rows(torch.diff(cdf, dim=0).t().clamp_min(0.0), "latent")


def quantize(model: VAE, x: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, int]:
    """Images (B, *shape) -> (symbols (B, D) int64 in [0, hi - lo]: the integer code minus lo,
    how many codes were clamped to their range)."""
    code = model.encode(x.to(model.device, next(model.parameters()).dtype)).mode().cpu().long()
    clamped = torch.minimum(torch.maximum(code, lo), hi)
    return clamped - lo, int((clamped != code).sum())


def encode(
    model: VAE, x: Tensor, *, chunk: int, on_chunk: Callable[[int], None] | None = None
) -> tuple[np.ndarray, Tensor, int]:
    """Images (N, *shape) in [0, 1] -> (the ANS stack as uint32 words, the integer codes sent
    (N, D) as floats, how many were clamped to their range). model: a float64 CPU copy
    (vaekit.core.coding.float64_cpu); chunk: images coded per call."""
    check_codec(model)
    c = constriction_module()
    lo, hi, tables = latent_tables(model.prior)
    coder, family, clamped = c.stream.stack.AnsCoder(), c.stream.model.Categorical(perfect=False), 0
    starts, sent = list(range(0, len(x), chunk)), []
    with deterministic_cpu():
        for start in reversed(starts):  # a stack: push the last chunk first, so the first comes off first
            symbols, n = quantize(model, x[start : start + chunk], lo, hi)
            rows = np.ascontiguousarray(
                np.broadcast_to(tables, (len(symbols), *tables.shape)).reshape(-1, tables.shape[1])
            )
            coder.encode_reverse(symbols.reshape(-1).numpy().astype(np.int32), family, rows)
            clamped += n
            sent.append(symbols + lo)
            if on_chunk:
                on_chunk(len(symbols))
    codes = torch.cat(sent[::-1]).to(torch.float64) if sent else torch.zeros(0, model.latent_dim, dtype=torch.float64)
    return coder.get_compressed(), codes, clamped


def decode(
    model: VAE, words: np.ndarray, count: int, *, chunk: int, on_chunk: Callable[[int], None] | None = None
) -> Tensor:
    """The inverse of encode, up to the codec's loss: -> the integer codes (count, D) as floats."""
    check_codec(model)
    c = constriction_module()
    lo, _, tables = latent_tables(model.prior)
    try:
        coder = c.stream.stack.AnsCoder(np.ascontiguousarray(words, dtype=np.uint32))
    except ValueError:
        raise wrong_stream() from None
    family, codes = c.stream.model.Categorical(perfect=False), []
    with deterministic_cpu():
        for start in range(0, count, chunk):
            b = min(chunk, count - start)
            rows = np.ascontiguousarray(np.broadcast_to(tables, (b, *tables.shape)).reshape(-1, tables.shape[1]))
            codes.append(torch.from_numpy(coder.decode(family, rows).astype(np.int64)).view(b, -1) + lo)
            if on_chunk:
                on_chunk(b)
    if not coder.is_empty():
        raise wrong_stream()
    return torch.cat(codes).to(torch.float64) if codes else torch.zeros(0, model.latent_dim, dtype=torch.float64)


def default_chunk(model: VAE) -> int:
    return max(1, MAX_TABLE_ROWS // model.latent_dim)


def code_images(model: VAE, codes: Tensor, *, batch_size: int = 256) -> np.ndarray:
    """Integer codes (N, D) -> decoded 8-bit images (N, *shape) uint8."""
    out = []
    with torch.no_grad():
        for i in range(0, len(codes), batch_size):
            mean = model.decode_mean(codes[i : i + batch_size].to(model.device, next(model.parameters()).dtype))
            out.append((mean.clamp(0.0, 1.0) * 255).round().to(torch.uint8).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, *model.data_shape), dtype=np.uint8)
