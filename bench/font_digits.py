"""Digits drawn with the machine's fonts under random affine transforms, 28x28 grey: an out set
simpler than Fashion-MNIST, as real digit datasets (MNIST) are, for the OOD benchmark.

    python bench/font_digits.py --n 2000 --out bench/out/font-digits.npz    # x (N, 28, 28) uint8, y digits

Each image: one digit 0-9 in a font picked at random among the TrueType/OpenType fonts found under
/usr/share/fonts (Pillow's built-in font when there are none), drawn white on black at a random
size, then rotated (+-15 degrees), sheared (+-0.3), scaled (0.8-1.2) and shifted (+-2 pixels)
around the centre, drawn at 4x and averaged down to 28x28 (anti-aliased), on the 8-bit grid.
"""

from __future__ import annotations

import argparse
import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

FONT_FOLDERS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts")
SIZE, SCALE = 28, 4  # drawn at SCALE x SIZE, then averaged down


def system_fonts() -> list[Path]:
    """Font files on this machine (sorted, so a seed gives the same images on the same machine)."""
    found = {
        p
        for folder in FONT_FOLDERS
        if folder.is_dir()
        for p in folder.rglob("*")
        if p.suffix.lower() in (".ttf", ".otf")
    }
    return sorted(found)


def _font(path: Path | None, px: int) -> ImageFont.ImageFont:
    if path is None:
        return ImageFont.load_default(size=px)
    return ImageFont.truetype(str(path), px)


def _affine(rng: np.random.Generator) -> tuple[float, ...]:
    """The inverse affine map (output -> input pixel) of a random rotation, shear, scale and shift
    about the canvas centre, as Pillow's Image.transform takes it."""
    angle = math.radians(rng.uniform(-15, 15))
    shear, scale = rng.uniform(-0.3, 0.3), rng.uniform(0.8, 1.2)
    dx, dy = rng.uniform(-2, 2, 2) * SCALE
    c, s = math.cos(angle), math.sin(angle)
    a = np.array([[c, -s], [s, c]]) @ np.array([[1, shear], [0, 1]]) * scale  # forward linear part
    inv = np.linalg.inv(a)
    centre = SIZE * SCALE / 2
    offset = np.array([centre, centre]) - inv @ np.array([centre + dx, centre + dy])
    return (inv[0, 0], inv[0, 1], offset[0], inv[1, 0], inv[1, 1], offset[1])


def render(digit: int, font: Path | None, rng: np.random.Generator) -> np.ndarray:
    """One image (28, 28) uint8: the digit centred, then transformed."""
    big = SIZE * SCALE
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    f = _font(font, int(rng.uniform(0.55, 0.75) * big))
    left, top, right, bottom = draw.textbbox((0, 0), str(digit), font=f)
    draw.text(((big - (right - left)) / 2 - left, (big - (bottom - top)) / 2 - top), str(digit), fill=255, font=f)
    moved = canvas.transform((big, big), Image.Transform.AFFINE, _affine(rng), resample=Image.Resampling.BILINEAR)
    return np.asarray(moved.resize((SIZE, SIZE), Image.Resampling.BOX), dtype=np.uint8)


def font_digits(n: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n images (n, 1, 28, 28) in [0, 1] on the 8-bit grid, and their digits (n,)."""
    rng = np.random.default_rng(seed)
    fonts: list[Path | None] = list(system_fonts()) or [None]
    digits = rng.integers(0, 10, n)
    images = np.stack([render(int(d), fonts[rng.integers(len(fonts))], rng) for d in digits])
    return torch.from_numpy(images).float()[:, None] / 255.0, torch.from_numpy(digits)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench/out/font-digits.npz"))
    args = ap.parse_args()
    x, y = font_digits(args.n, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, x=(x[:, 0] * 255).round().to(torch.uint8).numpy(), y=y.numpy())
    args.out.write_bytes(buf.getvalue())
    print(f"wrote {args.out}: {args.n} digits in {len(system_fonts()) or 'the built-in'} fonts")


if __name__ == "__main__":
    main()
