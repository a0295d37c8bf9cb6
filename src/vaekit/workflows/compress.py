"""Compression of 8-bit images into one file with a trained run: lossless with a VAE by bits-back
ANS (vaekit.core.coding), so the file size is the model's -ELBO made real; lossy with a codec
(--model codec) by entropy-coding its rounded latents (vaekit.core.codec).

The file (.vkc), all integers little-endian:

    magic         4 bytes   b"VKC" and a zero byte
    format        1         FORMAT_VERSION
    method        1         0: lossless (bits-back ANS with a VAE), 1: lossy (a codec's quantized latents)
    weights      32         sha256 of the run's model.safetensors (Run.weights_digest)
    likelihood    1 + n     the run's likelihood, as text
    count         4         images
    shape         1 + 4 r   rank r, then each dimension (C, H, W for images)
    latent bits   1         lossless: buckets per top latent number, 2**bits (vaekit.core.coding.LatentGrid); lossy: 0
    step bits     1         (format 2) a hierarchical VAE's lower groups: grid step 2**-n (coding.LowerGrid); else 0
    chunk         2         the most images per chunk
    build         1 + n     what computes the probabilities (build_text): torch and its CPU kernels, constriction
    names         4 + n     the images' names (a folder's relative paths) as zlib-compressed JSON; 0 bytes: numbered
    crc32         4         of the payload
    words         4         payload length in 32-bit words
    payload       4 words   the ANS stack

Format 1 (before hierarchical models were coded over every group) has no step bits; its
lossless files of flat VAEs decode as before, those of hierarchical ones are refused.

Decompressing needs the same run (its weights' hash is checked) and the same build (checked
too, unless allowed otherwise; then a wrong result is still caught, because the stream must end
at the encoder's initial bits).
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import math
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from tqdm import tqdm

from ..atomic import atomic_write
from ..core import codec, coding
from ..core.modes import evaluating
from ..data import read_examples
from ..errors import VaekitError
from ..evaluation.likelihood import bits_per_dim
from ..evaluation.reconstruction import psnr, ssim
from ..evaluation.scores import negative_elbo
from ..plots import save_image
from ..runs import Run

MAGIC = b"VKC\x00"
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
METHODS = ("lossless", "lossy")  # the method byte's meanings, by value
SUFFIX = ".vkc"
ELBO_BATCH = 256


def build_text() -> str:
    """What the probability tables depend on besides the weights and vaekit's format: torch (its
    version and the CPU kernels it picked) and constriction (its quantization)."""
    try:
        constriction_version = importlib.metadata.version("constriction")
    except importlib.metadata.PackageNotFoundError:
        constriction_version = "missing"
    return f"torch {torch.__version__} {torch.backends.cpu.get_cpu_capability()}; constriction {constriction_version}"


@dataclass
class Archive:
    """A .vkc file's header and payload (see the module docstring)."""

    weights_sha256: str
    likelihood: str
    count: int
    shape: list[int]
    latent_bits: int
    chunk: int
    build: str
    names: list[str] | None
    words: np.ndarray  # uint32
    method: str = "lossless"
    step_bits: int = 0  # a hierarchical VAE's lower-group grid (coding.LowerGrid); 0: none (flat VAE, lossy)
    version: int = FORMAT_VERSION

    def to_bytes(self) -> bytes:
        text = lambda s: struct.pack("<B", len(s.encode())) + s.encode()
        names = zlib.compress(json.dumps(self.names).encode(), 9) if self.names is not None else b""
        payload = self.words.astype("<u4").tobytes()
        return b"".join(
            [
                MAGIC,
                struct.pack("<BB", FORMAT_VERSION, METHODS.index(self.method)),
                bytes.fromhex(self.weights_sha256),
                text(self.likelihood),
                struct.pack("<IB", self.count, len(self.shape)),
                struct.pack(f"<{len(self.shape)}I", *self.shape),
                struct.pack("<BBH", self.latent_bits, self.step_bits, self.chunk),
                text(self.build),
                struct.pack("<I", len(names)),
                names,
                struct.pack("<II", zlib.crc32(payload), len(self.words)),
                payload,
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Archive:
        """VaekitError in one sentence for anything that is not an intact .vkc file vaekit reads."""
        if not data.startswith(MAGIC):
            raise VaekitError(f"{where} is not a file written by `vaekit compress`")
        reader = _Reader(data, len(MAGIC), where)
        version, method = reader.unpack("<BB")
        if version not in READABLE_FORMATS:
            raise VaekitError(f"{where} is in compression format {version}; this vaekit reads formats 1 and 2")
        if method >= len(METHODS):
            raise VaekitError(f"{where} was written with a compression method this vaekit does not know ({method})")
        digest, likelihood = reader.take(32).hex(), reader.text()
        count, rank = reader.unpack("<IB")
        shape = list(reader.unpack(f"<{rank}I"))
        if version >= 2:
            latent_bits, step_bits, chunk = reader.unpack("<BBH")
        else:
            (latent_bits, chunk), step_bits = reader.unpack("<BH"), 0
        build = reader.text()
        names = reader.take(reader.unpack("<I")[0])
        crc, n_words = reader.unpack("<II")
        payload = reader.take(4 * n_words)
        if zlib.crc32(payload) != crc or reader.pos != len(data):
            raise VaekitError(f"{where} is damaged (its payload does not match its checksum or length)")
        return cls(
            digest,
            likelihood,
            count,
            shape,
            latent_bits,
            chunk,
            build,
            _names(names, count, where),
            np.frombuffer(payload, dtype="<u4").astype(np.uint32),
            METHODS[method],
            step_bits,
            version,
        )


class _Reader:
    """Reads a .vkc header field by field; a file that ends early is damaged."""

    def __init__(self, data: bytes, pos: int, where: str):
        self.data, self.pos, self.where = data, pos, where

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise VaekitError(f"{self.where} is damaged (it ends early)")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def text(self) -> str:
        return self.take(self.unpack("<B")[0]).decode("utf-8", errors="replace")


def _names(blob: bytes, count: int, where: str) -> list[str] | None:
    """The stored names, each a relative path inside the output folder, or None (numbered)."""
    if not blob:
        return None
    try:
        names = json.loads(zlib.decompress(blob))
    except (zlib.error, ValueError):
        raise VaekitError(f"{where} is damaged (its names are unreadable)") from None
    ok = isinstance(names, list) and len(names) == count and all(isinstance(n, str) for n in names)
    if not ok or any(PurePosixPath(n).is_absolute() or ".." in PurePosixPath(n).parts or not n for n in names):
        raise VaekitError(f"{where} is damaged (its names are not {count} relative paths)")
    return names


# -- compressing -----------------------------------------------------------------------------------


def to_pixels(x: torch.Tensor) -> tuple[np.ndarray, bool]:
    """Examples in [0, 1] -> (uint8 levels round(255 x), whether x was on that grid already)."""
    scaled = x.detach().double().clamp(0.0, 1.0) * 255.0
    levels = scaled.round()
    return levels.to(torch.uint8).numpy(), bool((scaled - levels).abs().max() < 1e-3) if len(x) else True


@dataclass
class Summary:
    """What a compression gives: sizes in bytes, time, and the model's own bound (lossless) or
    the decoded images' quality (lossy)."""

    images: int
    shape: list[int]  # one image
    bytes: int
    seconds: float
    on_grid: bool  # the inputs were 8-bit already (else they were rounded to 8 bits)
    nelbo_bits_per_dim: float | None = None  # lossless: the model's -ELBO on the same 8-bit images
    psnr: float | None = None  # lossy: the decoded images against the inputs, dB and SSIM, means over images
    ssim: float | None = None
    clamped: int = 0  # lossy: codes outside their coding range, clamped to it

    @property
    def raw_bytes(self) -> int:
        return self.images * math.prod(self.shape)

    @property
    def bits_per_dim(self) -> float:
        return 8 * self.bytes / max(1, self.raw_bytes)

    @property
    def bits_per_pixel(self) -> float:
        """Bits per pixel location (all channels of a pixel together), the lossy literature's bpp."""
        return self.bits_per_dim * (self.shape[0] if len(self.shape) == 3 else 1)

    @property
    def images_per_s(self) -> float:
        return self.images / max(self.seconds, 1e-9)


def compress(
    run: Run,
    pixels: np.ndarray,
    *,
    latent_bits: int = coding.DEFAULT_LATENT_BITS,
    names: list[str] | None = None,
    progress: bool = False,
) -> Archive:
    """Code 8-bit images (N, *shape) uint8 losslessly with the run's VAE, over every latent group
    of a hierarchical one. names: kept in the file (a folder's paths)."""
    model = coding.coding_model(run.model)
    chunk = coding.default_chunk(model.data_shape)
    step_bits = coding.DEFAULT_STEP_BITS if model.group_dims else 0
    with tqdm(total=len(pixels), desc="compressing", unit="img", disable=not progress, leave=False) as bar:
        words = coding.encode(
            model,
            pixels,
            bits=latent_bits,
            step_bits=step_bits or coding.DEFAULT_STEP_BITS,
            chunk=chunk,
            on_chunk=bar.update,
        )
    archive = _archive(run, len(pixels), latent_bits, chunk, names, words, "lossless")
    archive.step_bits = step_bits
    return archive


def compress_lossy(
    run: Run, pixels: np.ndarray, *, names: list[str] | None = None, progress: bool = False
) -> tuple[Archive, np.ndarray, int]:
    """Code 8-bit images with the run's codec: -> (archive, the images its decoder will give,
    codes clamped to their range)."""
    codec.check_codec(run.model)
    model = coding.float64_cpu(run.model)
    chunk = codec.default_chunk(model)
    x = torch.from_numpy(pixels).to(torch.float64) / 255.0
    with tqdm(total=len(pixels), desc="compressing", unit="img", disable=not progress, leave=False) as bar:
        words, codes, clamped = codec.encode(model, x, chunk=chunk, on_chunk=bar.update)
    return _archive(run, len(pixels), 0, chunk, names, words, "lossy"), codec.code_images(model, codes), clamped


def _archive(run: Run, count: int, latent_bits: int, chunk: int, names, words, method: str) -> Archive:
    model = run.model
    return Archive(
        run.weights_digest(),
        model.config.likelihood,
        count,
        list(model.data_shape),
        latent_bits,
        chunk,
        build_text(),
        names,
        words,
        method,
    )


def model_nelbo_bits_per_dim(model, pixels: np.ndarray, *, seed: int = 0) -> float:
    """The model's -ELBO (one posterior sample per image) on 8-bit images, bits/dim."""
    if len(pixels) == 0:
        return float("nan")
    gen = torch.Generator(device=model.device).manual_seed(seed)
    total = 0.0
    with evaluating(model):
        for i in range(0, len(pixels), ELBO_BATCH):
            x = torch.from_numpy(pixels[i : i + ELBO_BATCH]).to(model.device, torch.float32) / 255.0
            total += float(negative_elbo(model, x, generator=gen).double().sum())
    return bits_per_dim(total / len(pixels), math.prod(model.data_shape))


def compress_file(
    run: Run,
    source: str,
    out: str | Path,
    *,
    lossy: bool = False,
    latent_bits: int = coding.DEFAULT_LATENT_BITS,
    progress: bool = False,
) -> Summary:
    """Compress `source` (a folder of images, an image, SOURCE:SPLIT, an .npy/.npz) into one
    file: losslessly with a VAE (bits-back), or with --lossy and a codec."""
    out = Path(out)
    refuse_to_replace(out)
    if run.config.model.kind == "codec" and not lossy:
        raise VaekitError(f"{run.path} is a lossy codec (--model codec): pass --lossy")
    (codec.check_codec if lossy else coding.check_codable)(run.model)
    examples = read_examples(source, data_shape=run.model.data_shape, like=run.config.data)
    pixels, on_grid = to_pixels(examples.x)
    from_files = Path(source).expanduser().is_dir() or Path(source).expanduser().is_file()
    names = examples.names if from_files else None
    start = time.perf_counter()
    if lossy:
        archive, decoded, clamped = compress_lossy(run, pixels, names=names, progress=progress)
    else:
        archive = compress(run, pixels, latent_bits=latent_bits, names=names, progress=progress)
    seconds = time.perf_counter() - start
    data = archive.to_bytes()
    atomic_write(out, data)
    summary = Summary(len(pixels), archive.shape, len(data), seconds, on_grid)
    if not lossy:
        summary.nelbo_bits_per_dim = model_nelbo_bits_per_dim(run.model, pixels)
    elif len(pixels):
        original, restored = (torch.from_numpy(p).float() / 255.0 for p in (pixels, decoded))
        summary.psnr, summary.clamped = float(psnr(original, restored).mean()), clamped
        summary.ssim = float(ssim(original, restored).mean()) if len(archive.shape) == 3 else None
    return summary


def refuse_to_replace(out: Path) -> None:
    """--out may replace a file `vaekit compress` wrote (by its magic), never another file."""
    if out.is_dir():
        raise VaekitError(f"--out {out} is a folder; give the path of the file to write")
    if out.exists():
        with open(out, "rb") as f:
            if f.read(len(MAGIC)) != MAGIC:
                raise VaekitError(
                    f"--out {out} exists and was not written by `vaekit compress`; vaekit will not replace it"
                )


# -- decompressing ---------------------------------------------------------------------------------


def read_archive(path: str | Path) -> Archive:
    path = Path(path)
    if not path.is_file():
        raise VaekitError(f"no such file: {path}")
    return Archive.from_bytes(path.read_bytes(), str(path))


def check_archive(archive: Archive, run: Run, *, allow_other_build: bool = False) -> None:
    """Refuse, in one sentence, a file this run or this build cannot decode."""
    digest = run.weights_digest()
    if archive.weights_sha256 != digest:
        raise VaekitError(
            f"this file was compressed with another model (weights sha256 {archive.weights_sha256[:12]}...), not "
            f"{run.path}'s ({digest[:12]}...); decompress it with the run that compressed it"
        )
    model = run.model
    if archive.shape != list(model.data_shape) or archive.likelihood != model.config.likelihood:
        raise VaekitError(
            f"this file holds {archive.likelihood} codes of shape {archive.shape}, {run.path} "
            f"is a {model.config.likelihood} model of shape {model.data_shape}"
        )
    if archive.method == "lossless" and model.group_dims and not archive.step_bits:
        raise VaekitError(
            f"this file is in compression format {archive.version}, which coded only the top latent group of a "
            "hierarchical VAE; this vaekit codes every group: compress the images again"
        )
    here = build_text()
    if archive.build != here and not allow_other_build:
        raise VaekitError(
            f"this file was compressed by {archive.build} and this machine runs {here}: their probabilities may "
            "differ in the last bit, which decoding cannot tolerate; pass --allow-other-build to try anyway "
            "(a wrong result is detected)"
        )


def decompress(run: Run, archive: Archive, *, allow_other_build: bool = False, progress: bool = False) -> np.ndarray:
    """The images of an archive, (count, *shape) uint8: bit for bit as compressed (lossless), or
    as the codec decodes them (lossy)."""
    check_archive(archive, run, allow_other_build=allow_other_build)
    lossy = archive.method == "lossy"
    (codec.check_codec if lossy else coding.check_codable)(run.model)
    model = coding.float64_cpu(run.model)
    with tqdm(total=archive.count, desc="decompressing", unit="img", disable=not progress, leave=False) as bar:
        if lossy:
            codes = codec.decode(model, archive.words, archive.count, chunk=archive.chunk, on_chunk=bar.update)
            return codec.code_images(model, codes)
        return coding.decode(
            model,
            archive.words,
            archive.count,
            bits=archive.latent_bits,
            step_bits=archive.step_bits or coding.DEFAULT_STEP_BITS,
            chunk=archive.chunk,
            on_chunk=bar.update,
        )


def output_paths(out: Path, archive: Archive) -> list[Path]:
    """One PNG per image: the stored names (suffix .png) or numbered 00000.png, ..."""
    width = max(5, len(str(max(archive.count - 1, 0))))
    numbered = [out / f"{i:0{width}d}.png" for i in range(archive.count)]
    if archive.names is None:
        return numbered
    named = [out / PurePosixPath(n).with_suffix(".png") for n in archive.names]
    return named if len(set(named)) == len(named) else numbered  # two names made one .png: number them


def write_images(pixels: np.ndarray, archive: Archive, out: str | Path) -> list[Path] | Path:
    """Decompressed images -> out: a .npy array (N, *shape) uint8, or a folder of 8-bit PNGs."""
    out = Path(out)
    if out.suffix.lower() == ".npy":
        if out.exists():
            raise VaekitError(f"--out {out} exists; vaekit will not replace a file it may not have written")
        buf = io.BytesIO()
        np.save(buf, pixels)
        return atomic_write(out, buf.getvalue())
    if out.exists() and not out.is_dir():
        raise VaekitError(f"--out {out} is a file; give a folder (or a .npy file to write one array)")
    if len(archive.shape) != 3 or archive.shape[0] not in (1, 3):
        raise VaekitError(f"images of shape {archive.shape} cannot be PNGs; give --out a .npy file")
    paths = output_paths(out, archive)
    taken = next((p for p in paths if p.exists()), None)
    if taken is not None:
        raise VaekitError(
            f"{taken} already exists; vaekit does not write over files: choose a new or empty --out folder"
        )
    for path, img in zip(paths, pixels):
        save_image(path, torch.from_numpy(img).float() / 255.0)
    return paths
