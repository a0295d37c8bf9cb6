"""Commands for compression with a trained run: compress (lossless, or --lossy with a codec), decompress."""

from __future__ import annotations

from pathlib import Path

import typer

from ..core.coding import DEFAULT_LATENT_BITS, LATENT_BITS_RANGE
from ..runs import load_run
from ..workflows import compress as codec
from . import app

SPEC = "a folder of images, an image, SOURCE:SPLIT (e.g. fashion-mnist:test), or an .npy/.npz file"


@app.command()
def compress(
    run: Path = typer.Argument(
        ...,
        help="A run folder: a VAE (flat or --model hvae: every latent group is coded) with a discretized likelihood, or a codec (with --lossy).",
        show_default=False,
    ),
    input: str = typer.Option(..., "--input", help=f"Images to compress: {SPEC}.", show_default=False),
    out: Path = typer.Option(
        ..., "--out", help="The file to write (one archive, e.g. images.vkc).", show_default=False
    ),
    lossy: bool = typer.Option(
        False, "--lossy", help="Lossy, with a codec trained with --model codec: its rounded latents, entropy-coded."
    ),
    latent_bits: int = typer.Option(
        DEFAULT_LATENT_BITS,
        help=f"Lossless: each (top-group) latent number's prior cut into 2**bits equal-mass buckets ({LATENT_BITS_RANGE[0]} to {LATENT_BITS_RANGE[1]}).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Compress 8-bit images into one file: losslessly by bits-back ANS with the run's VAE, or lossily
    with a codec (docs/compression.md)."""
    r = load_run(run)
    s = codec.compress_file(r, input, out, lossy=lossy, latent_bits=latent_bits, progress=not quiet)
    if not s.on_grid:
        typer.echo("note: the inputs were not 8-bit levels (k / 255); the file holds them rounded to 8 bits")
    rate = f"{s.bits_per_pixel:.4f} bits/pixel" if lossy else f"{s.bits_per_dim:.4f} bits/dim"
    typer.echo(f"compressed {s.images} images into {out}: {s.bytes:,} bytes, {rate}")
    typer.echo(
        f"raw 8-bit size {s.raw_bytes:,} bytes: the file is {s.bytes / max(1, s.raw_bytes):.1%} of it "
        f"({s.raw_bytes / max(1, s.bytes):.2f}:1)"
    )
    if s.nelbo_bits_per_dim is not None:
        typer.echo(
            f"the model's -ELBO on the same images: {s.nelbo_bits_per_dim:.4f} bits/dim "
            f"(the file is {s.bits_per_dim / s.nelbo_bits_per_dim - 1:+.2%} off it)"
        )
    if s.psnr is not None:
        quality = f"PSNR {s.psnr:.2f} dB" + ("" if s.ssim is None else f", SSIM {s.ssim:.4f}")
        typer.echo(f"decoded images against the inputs: {quality} (means over images)")
    if s.clamped:
        typer.echo(f"note: {s.clamped} latent values lay outside the coding range and were clamped to it")
    typer.echo(f"{s.seconds:.1f} s, {s.images_per_s:.0f} images/s")


@app.command()
def decompress(
    file: Path = typer.Argument(..., help="A file written by `vaekit compress`.", show_default=False),
    run: Path = typer.Option(..., "--run", help="The run folder that compressed it.", show_default=False),
    out: Path = typer.Option(
        ..., "--out", help="A folder for one PNG per image, or a .npy file for one uint8 array.", show_default=False
    ),
    allow_other_build: bool = typer.Option(
        False,
        "--allow-other-build",
        help="Decode even when the file was written by another torch/CPU/constriction (a wrong result is detected).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Restore the images of a compressed file with the run that compressed them (exactly, if lossless)."""
    archive = codec.read_archive(file)
    r = load_run(run)
    pixels = codec.decompress(r, archive, allow_other_build=allow_other_build, progress=not quiet)
    written = codec.write_images(pixels, archive, out)
    what = f"{out}" if isinstance(written, Path) else f"{out}/ (one PNG each)"
    check = "; the stream ended at its initial bits, as it must" if archive.method == "lossless" else " (lossy)"
    typer.echo(f"decompressed {archive.count} images to {what}{check}")
