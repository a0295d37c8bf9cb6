"""Lossless coding of 8-bit images with a VAE: bits-back coding with asymmetric numeral systems
(BB-ANS, Townsend, Bird and Barber 2019); the entropy coder is constriction's ANS stack.

A VAE whose likelihood p(x|z) is a mass over the 256 grey levels (a discretized logistic,
Gaussian or logistic mixture) is a code: an ANS coder is a stack of bits, and each image is pushed as

    1. pop   z ~ Q(z|x)       decoding the latent from the bits already on the stack ("bits back")
    2. push  x with p(x|z)    -log2 p(x|z) bits
    3. push  z with P(z)      -log2 P(z) bits

so the stack grows by -log2 p(x|z) - log2 P(z) + log2 Q(z|x) bits: on average the -ELBO. The
decoder runs the steps backwards (pop z with P, pop x with p(x|z), push z back with Q(z|x),
which it can compute now that it has x) and returns the stack to where it was.

The latent space is discrete: each dimension of the N(0, 1) prior is cut into 2**bits buckets
of equal prior mass (LatentGrid), so P(bucket) = 2**-bits exactly, z is the bucket's median, and
Q(bucket | x) is the Gaussian posterior's mass over it. For buckets much narrower than the
posterior, log Q - log P is the continuous log q(z|x) - log p(z), so the code length is the
model's -ELBO.

Images go in chunks (a batch through the networks at once, the chunk's pixels and latents as one
product distribution). All chunks form one chain: every chunk's latents are popped from the bits
the earlier chunks left, so the random "initial bits" the first image's latents are popped from
are paid once (initial_words: about bits * D_z bits). A chunk is only as large as the bits on the
stack can pay for (next_chunk): the first is one image and they grow with the stack.

Decoding needs the very same probability tables on both sides, to the last bit. Both sides
therefore compute them the same way: on the CPU, in float64, one thread, in the same chunks (so
every tensor has the same shape and position), from the same weights (coding_model); the tables
are quantized by constriction (24-bit fixed point, every symbol at least one unit, so every
symbol can be coded). What must match between two machines is said in docs/compression.md.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from ..errors import VaekitError
from .distributions import DiagonalGaussian
from .likelihoods import DiscretizedLikelihood
from .model import VAE

DEFAULT_LATENT_BITS = 12  # buckets per latent dimension: 2**12, each 1/4096 of the prior's mass
LATENT_BITS_RANGE = (4, 16)
DEFAULT_STEP_BITS = 6  # lower groups: z on a grid of step 2**-6 (measured: docs/compression.md)
STEP_BITS_RANGE = (2, 10)
EXTENT = 16  # lower groups: |z| < 16 on the grid (the Gaussians are clipped to it)
MIN_STD = 1e-6  # in grid steps: constriction needs a positive std
# probability-table entries per chunk (8 MiB of float64; 32 MiB measured 2x slower): sets the chunk size
TABLE_BUDGET = 2**20
MAX_CHUNK = 64
SEED_TEXT = b"vaekit bits-back initial words"
HEAD_BITS = 64  # the ANS coder's head (its state), which is never all popped


def constriction_module():
    """constriction, an optional dependency (pip install 'vaekit[compress]')."""
    try:
        import constriction
    except ImportError:
        raise VaekitError("compression needs the constriction package: pip install 'vaekit[compress]'") from None
    return constriction


def check_codable(model: VAE) -> None:
    """Refuse, in one sentence, a model bits-back coding cannot use."""
    if not model.stochastic:
        raise VaekitError("bits-back coding needs a VAE (a posterior to draw the latents from); this is an autoencoder")
    if not isinstance(model.likelihood, DiscretizedLikelihood):
        raise VaekitError(
            f"lossless compression needs a likelihood over the 256 grey levels (train with --likelihood "
            f"discretized-logistic, discretized-gaussian or discretized-logistic-mixture); this model's is "
            f"{model.config.likelihood}"
        )
    if model.config.num_classes:
        raise VaekitError("compression needs an unconditional model; this one is conditioned on labels")


def float64_cpu(model: VAE) -> VAE:
    """A float64 copy of the model on the CPU, in eval mode: what both sides compute tables with."""
    return copy.deepcopy(model).to(device="cpu", dtype=torch.float64).eval()


def coding_model(model: VAE) -> VAE:
    check_codable(model)
    return float64_cpu(model)


@contextlib.contextmanager
def deterministic_cpu() -> Iterator[None]:
    """One CPU thread while coding (a reduction split over threads may round differently)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            yield
    finally:
        torch.set_num_threads(threads)


class LatentGrid:
    """N(0, 1) per latent dimension cut into 2**bits buckets of equal prior mass."""

    def __init__(self, bits: int = DEFAULT_LATENT_BITS):
        lo, hi = LATENT_BITS_RANGE
        if not (isinstance(bits, int) and lo <= bits <= hi):
            raise VaekitError(f"latent bits must be an integer from {lo} to {hi}, not {bits!r}")
        self.bits, self.size = bits, 2**bits
        u = torch.arange(self.size + 1, dtype=torch.float64) / self.size
        self.edges = torch.special.ndtri(u)  # (size + 1,): -inf, ..., +inf
        self.centres = torch.special.ndtri((torch.arange(self.size, dtype=torch.float64) + 0.5) / self.size)

    def posterior_masses(self, mu: Tensor, logvar: Tensor) -> Tensor:
        """Q(bucket | x) for every bucket: mu, logvar (B, D_z) -> (B, D_z, size), rows sum to 1."""
        sigma = torch.exp(0.5 * logvar)[..., None]
        cdf = torch.special.ndtr((self.edges - mu[..., None]) / sigma)  # (B, D_z, size + 1)
        cdf[..., 0], cdf[..., -1] = 0.0, 1.0  # the open ends, exactly (inf / inf would be nan)
        return torch.diff(cdf, dim=-1).clamp_min(0.0)


class LowerGrid:
    """The lower groups' latents (Gaussian priors and posteriors, thousands of numbers): a
    uniform grid z = k * 2**-step_bits, |z| < EXTENT, coded as constriction's QuantizedGaussian
    (mean and std per number in grid steps; no tables here). For steps much finer than the
    posterior, log Q(k) - log P(k) is log q(z) - log p(z); the Gaussians are clipped to the
    grid's range and every k in it keeps a nonzero probability."""

    def __init__(self, step_bits: int = DEFAULT_STEP_BITS):
        lo, hi = STEP_BITS_RANGE
        if not (isinstance(step_bits, int) and lo <= step_bits <= hi):
            raise VaekitError(f"the latent grid step must be 2**-n with n from {lo} to {hi}, not {step_bits!r}")
        self.step_bits, self.step = step_bits, 2.0**-step_bits
        self.extent = EXTENT * 2**step_bits  # symbols -extent .. extent - 1

    def parameters(self, law: DiagonalGaussian) -> tuple[np.ndarray, np.ndarray]:
        """law (B, D_g) -> its means and stds in grid steps, (B * D_g,) float64 each."""
        mean, std = law.mu / self.step, (torch.exp(0.5 * law.logvar) / self.step).clamp_min(MIN_STD)
        arrs = [np.ascontiguousarray(t.reshape(-1).numpy()) for t in (mean, std)]
        if not all(np.isfinite(a).all() for a in arrs):
            raise VaekitError("the model gives non-finite latent probabilities; its weights cannot code these images")
        return arrs[0], arrs[1]

    def values(self, k: Tensor) -> Tensor:
        return k.to(torch.float64) * self.step


def latent_need(dims: list[int], bits: int, step_bits: int) -> int:
    """Bits one image's latents take off the stack, about: bits per top number (its grid), and
    per lower number the entropy of a unit-variance Gaussian on the grid (log2 sqrt(2 pi e) =
    2.05 bits above step_bits), rounded up."""
    return dims[0] * bits + sum(dims[1:]) * (step_bits + 3)


def next_chunk(stack_bits: int, need_per_image: int, largest: int, left: int) -> int:
    """Images in the next chunk: as many as the bits on the stack can give latents to (a chunk
    pops up to need_per_image bits per image; popping from a stack that runs dry gives latents
    that are not drawn from Q, which costs bits), at least one and at most `largest`."""
    return max(1, min(largest, left, (stack_bits - HEAD_BITS) // need_per_image))


def default_chunk(data_shape: list[int]) -> int:
    """Images per chunk: as many as keep the pixel tables within TABLE_BUDGET entries."""
    return max(1, min(MAX_CHUNK, TABLE_BUDGET // (math.prod(data_shape) * 256)))


def initial_words(need_bits: int) -> np.ndarray:
    """The bits the first image's latents are popped from: need_bits (latent_need) plus the
    coder's 64-bit head. Fixed pseudo-random words, the same on every machine (sha256), so the
    decoder can check that it ends where the encoder began."""
    n = math.ceil(need_bits / 32) + 2
    stream = b"".join(hashlib.sha256(SEED_TEXT + i.to_bytes(4, "little")).digest() for i in range(math.ceil(n / 8)))
    words = np.frombuffer(stream, dtype="<u4")[:n].astype(np.uint32)
    words[-1] |= np.uint32(1 << 31)  # the top word of an ANS stack must not be zero
    return words


def wrong_stream() -> VaekitError:
    return VaekitError(
        "the stream does not decode to what was compressed (it ends elsewhere than the encoder began): the "
        "data are damaged or this machine computed other probabilities than the compressing one (docs/compression.md)"
    )


def table_rows(masses: Tensor, what: str) -> np.ndarray:
    """(..., K) float64 masses -> a C-contiguous (rows, K) array for constriction."""
    arr = np.ascontiguousarray(masses.reshape(-1, masses.shape[-1]).numpy())
    if not np.isfinite(arr).all():
        raise VaekitError(f"the model gives non-finite {what} probabilities; its weights cannot code these images")
    return arr


class BitsBack:
    """Push and pop chunks of 8-bit images on an ANS stack with a float64 coding_model, over every
    latent group top first (one group for a flat VAE). Each chunk's size goes on the stack after
    it (uniform over 1..largest), so that the decoder, which pops it first, cuts the images
    exactly as the encoder did."""

    def __init__(self, model: VAE, bits: int, largest: int, step_bits: int = DEFAULT_STEP_BITS):
        self.c = constriction_module()
        self.model, self.largest = model, largest
        self.grid, self.lower = LatentGrid(bits), LowerGrid(step_bits)
        self.categorical = self.c.stream.model.Categorical(perfect=False)
        self.prior = self.c.stream.model.Uniform(self.grid.size)
        self.gaussian = self.c.stream.model.QuantizedGaussian(-self.lower.extent, self.lower.extent - 1)
        self.sizes = self.c.stream.model.Uniform(max(2, largest))  # constriction needs 2 symbols or more
        self.dims, self.shape = model.group_dims or [model.latent_dim], list(model.data_shape)
        self.need_per_image = latent_need(self.dims, bits, step_bits)

    def _law(self, g: int, law: DiagonalGaussian, prior: bool) -> tuple:
        """constriction's model (and its parameters) for group g's symbols under `law`: the top
        group on the equal-mass grid (its prior N(0, I) uniform over the buckets), lower groups
        quantized Gaussians on the uniform grid."""
        if g > 0:
            return self.gaussian, *self.lower.parameters(law)
        if prior:
            return (self.prior,)
        return self.categorical, table_rows(self.grid.posterior_masses(law.mu, law.logvar), "posterior")

    def _pop(self, coder, g: int, law: DiagonalGaussian, prior: bool, store: list) -> Tensor:
        """Pop group g's symbols (b * D_g,) under `law` into `store`; -> their z values (b, D_g)."""
        model, *params = self._law(g, law, prior)
        symbols = coder.decode(model, *params) if params else coder.decode(model, law.mu.numel())
        store.append(symbols)
        return self._values(g, symbols, law.mu.shape)

    def _values(self, g: int, symbols: np.ndarray, shape) -> Tensor:
        k = torch.from_numpy(symbols.astype(np.int64))
        return (self.grid.centres[k] if g == 0 else self.lower.values(k)).view(shape)

    def _pixel_table(self, params: Tensor) -> np.ndarray:
        return table_rows(self.model.likelihood(params).base_dist.bin_masses().flatten(1, -2), "pixel")

    def push(self, coder, pixels: np.ndarray) -> None:
        """Encode a chunk, pixels (b, *shape) uint8, onto the stack: pop z_1..z_G with Q (the
        bits back), push x with p(x | z), push z_G..z_1 with P(z_g | z_<g)."""
        x = torch.from_numpy(pixels).to(torch.float64) / 255.0
        symbols: list[np.ndarray] = []
        params, passes = self.model.code_pass(x, len(pixels), lambda g, q, p: self._pop(coder, g, q, False, symbols))
        coder.encode_reverse(pixels.reshape(-1).astype(np.int32), self.categorical, self._pixel_table(params))
        for g in reversed(range(len(passes))):
            coder.encode_reverse(symbols[g], *self._law(g, passes[g].p, True))
        coder.encode_reverse(np.array([len(pixels) - 1], dtype=np.int32), self.sizes)

    def pop(self, coder, left: int) -> np.ndarray:
        """Decode the chunk pushed last: -> (b, *shape) uint8. left: images still to decode. Pop
        z_1..z_G with P, x with p(x | z), then push z_G..z_1 back with Q, known now that x is."""
        b = int(coder.decode(self.sizes)) + 1
        if b > min(left, self.largest):
            raise wrong_stream()
        symbols: list[np.ndarray] = []
        params, _ = self.model.code_pass(None, b, lambda g, q, p: self._pop(coder, g, p, True, symbols))
        pixels = coder.decode(self.categorical, self._pixel_table(params)).astype(np.uint8).reshape(b, *self.shape)
        x = torch.from_numpy(pixels).to(torch.float64) / 255.0
        given = lambda g, q, p: self._values(g, symbols[g], p.mu.shape)
        _, passes = self.model.code_pass(x, b, given, params=False)
        for g in reversed(range(len(passes))):
            coder.encode_reverse(symbols[g], *self._law(g, passes[g].q, False))
        return pixels


def encode(
    model: VAE,
    pixels: np.ndarray,
    *,
    bits: int = DEFAULT_LATENT_BITS,
    step_bits: int = DEFAULT_STEP_BITS,
    chunk: int,
    on_chunk: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Images (N, *data_shape) uint8 -> the ANS stack as uint32 words. model: a coding_model;
    bits: the top group's grid (LatentGrid); step_bits: the lower groups' (LowerGrid, unused by a
    flat VAE); chunk: the most images per chunk."""
    bb = BitsBack(model, bits, chunk, step_bits)
    if list(pixels.shape[1:]) != bb.shape or pixels.dtype != np.uint8:
        raise VaekitError(f"images to code must be uint8 of shape (N, {', '.join(map(str, bb.shape))})")
    coder = bb.c.stream.stack.AnsCoder(initial_words(bb.need_per_image))
    start = 0
    with deterministic_cpu():
        while start < len(pixels):
            b = next_chunk(coder.num_valid_bits(), bb.need_per_image, chunk, len(pixels) - start)
            bb.push(coder, np.ascontiguousarray(pixels[start : start + b]))
            start += b
            if on_chunk:
                on_chunk(b)
    return coder.get_compressed()


def decode(
    model: VAE,
    words: np.ndarray,
    count: int,
    *,
    bits: int = DEFAULT_LATENT_BITS,
    step_bits: int = DEFAULT_STEP_BITS,
    chunk: int,
    on_chunk: Callable[[int], None] | None = None,
) -> np.ndarray:
    """The inverse of encode: uint32 words -> (count, *data_shape) uint8. VaekitError when the
    stack does not end at the initial words: the tables were not the encoder's."""
    bb = BitsBack(model, bits, chunk, step_bits)
    try:
        coder = bb.c.stream.stack.AnsCoder(np.ascontiguousarray(words, dtype=np.uint32))
    except ValueError:  # an ANS stack never ends in a zero word
        raise wrong_stream() from None
    chunks, left = [], count
    with deterministic_cpu():
        while left > 0:  # a stack: the chunk pushed last comes off first
            chunks.append(bb.pop(coder, left))
            left -= len(chunks[-1])
            if on_chunk:
                on_chunk(len(chunks[-1]))
    if not np.array_equal(coder.get_compressed(), initial_words(bb.need_per_image)):
        raise wrong_stream()
    return np.concatenate(chunks[::-1]) if chunks else np.zeros((0, *bb.shape), dtype=np.uint8)
