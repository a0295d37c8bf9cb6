"""Images: one file, a folder of them (one level of sub-folders = class labels), or uploaded bytes.
Every image vaekit reads is decoded here, by `decode_image`, and only by Pillow's decoders for
the formats in ALLOWED_FORMATS: a file that claims to be a PNG but is, say, EPS never reaches a
decoder we did not choose (Pillow would hand EPS to Ghostscript). Sizes are checked from the
header before any pixel is decoded (decompression bombs), 16-bit images are scaled to 8 bits,
not clipped."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from ..config import DataConfig
from ..errors import DataError
from .datasets import RawData
from .progress import progress

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "PPM")  # Pillow's names; PPM covers PGM
FORMAT_NAMES = "PNG, JPEG, GIF, BMP, WebP, TIFF or PPM/PGM"
MAX_PIXELS = 100_000_000  # per image, from its header: a 10,000 x 10,000 photo passes, a bomb does not
SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


class ImageTooLarge(DataError):
    """An image whose header claims more pixels than allowed."""


def _image_color(im) -> str:
    bands = im.getbands()
    return "rgb" if len(bands) >= 3 or "P" in bands else "gray"


def _eight_bit(im: Image.Image) -> Image.Image:
    """16-bit (and 32-bit integer) grey images scaled to 8 bits over their full range."""
    if im.mode not in SIXTEEN_BIT:
        return im
    arr = np.asarray(im).astype(np.float64)
    top = 65535.0 if im.mode != "I" or arr.max() > 255 else 255.0
    return Image.fromarray(np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8), mode="L")


def decode_image(
    source: Path | bytes,
    *,
    color: str | None = None,
    size: tuple[int, int] | None = None,
    max_pixels: int = MAX_PIXELS,
    name: str | None = None,
) -> tuple[np.ndarray, str]:
    """An image file (path) or its bytes -> (uint8 array (H, W) or (H, W, 3), the colour found:
    "gray" or "rgb"), converted to `color` and resized and centre-cropped to size (H, W) when given.
    DataError in one sentence for anything else; ImageTooLarge for too many pixels."""
    what = name or (f"image {source}" if isinstance(source, Path) else "the upload")
    fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        with Image.open(fp, formats=ALLOWED_FORMATS) as im:
            if im.width * im.height > max_pixels:  # from the header: nothing decoded yet
                raise ImageTooLarge(f"{what} is {im.width} x {im.height} pixels; the limit is {max_pixels:,} pixels")
            im.load()
            found = _image_color(im)
            im = _eight_bit(im).convert("RGB" if (color or found) == "rgb" else "L")
    except UnidentifiedImageError:
        raise DataError(f"{what} is not an image vaekit reads ({FORMAT_NAMES})") from None
    except Image.DecompressionBombError as e:  # Pillow's own check, in Image.open, came first
        claimed = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(claimed.group(1)):,} pixels" if claimed else "too many pixels"
        raise ImageTooLarge(f"{what} has {size}; the limit is {max_pixels:,} pixels") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise DataError(f"{what} is damaged or unsupported: {e}") from None
    if size is not None and im.size != (size[1], size[0]):
        im = ImageOps.fit(im, (size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(im), found


def read_image_folder(folder: Path, cfg: DataConfig) -> RawData:
    files = image_files(folder)
    if not files:
        raise DataError(f"{folder} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    rel = [p.relative_to(folder) for p in files]
    labelled = all(len(r.parts) >= 2 for r in rel)
    size = (cfg.image_size, cfg.image_size) if cfg.image_size else None
    arrays, colors = [], {}
    for p in progress(files, "reading images"):
        arr, found = decode_image(p, color=cfg.color, size=size)
        colors.setdefault(found, p)
        arrays.append(arr)
    if cfg.color is None and len(colors) > 1:
        raise DataError(
            f"{folder} mixes grayscale images (e.g. {colors['gray']}) and colour images "
            f"(e.g. {colors['rgb']}); pass --color gray or --color rgb to convert them all"
        )
    shapes = {a.shape[:2]: p for a, p in zip(arrays, files)}
    if len(shapes) > 1:
        (s1, p1), (s2, p2) = list(shapes.items())[:2]
        raise DataError(
            f"images differ in size ({s1[1]}x{s1[0]} in {p1}, {s2[1]}x{s2[0]} in {p2}); "
            "pass --image-size N to resize them all to N x N"
        )
    x = np.stack(arrays)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)  # (N, C, H, W) uint8
    y, names = None, None
    if labelled:
        names = sorted({r.parts[0] for r in rel})
        y = np.array([names.index(r.parts[0]) for r in rel], dtype=np.int64)
    return RawData(x, y, class_names=names, name=folder.name)


def image_files(folder: Path) -> list[Path]:
    """Every image below a folder, sorted (the order rows and outputs follow)."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def load_image(source: str | Path | bytes, data_shape: list[int], *, max_pixels: int = MAX_PIXELS) -> Tensor:
    """An image file (path) or an upload's bytes -> (C, H, W) float32 in [0, 1], converted and
    resized to data_shape (C, H, W), the shape a model was trained on."""
    if len(data_shape) != 3 or data_shape[0] not in (1, 3):
        raise DataError(f"this model was trained on data of shape {tuple(data_shape)}, not on images")
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise DataError("the upload is empty; send the bytes of an image file")
    else:
        source = Path(source)
        if not source.is_file():
            raise DataError(f"no such image file: {source}")
    c, h, w = data_shape
    arr, _ = decode_image(source, color="rgb" if c == 3 else "gray", size=(h, w), max_pixels=max_pixels)
    t = torch.from_numpy(arr.astype(np.float32) / 255.0)
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1)
