"""Self-contained HTML pages (report, compare): tables, figures embedded as base64 PNGs, so a page
reads offline in any browser and can be mailed."""

from __future__ import annotations

import base64
import datetime
import html
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .. import plots

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.92em; }
td, th { border-bottom: 1px solid #eee; padding: 0.25em 0.8em 0.25em 0; text-align: left; vertical-align: top; }
th { color: #555; font-weight: 600; } td.v { font-family: ui-monospace, monospace; white-space: nowrap; }
tr.warn td { color: #a40000; font-weight: 600; }
figure { display: inline-block; margin: 0.5em 1.5em 0.5em 0; vertical-align: top; }
figcaption { color: #555; font-size: 0.9em; max-width: 560px; }
img { image-rendering: pixelated; max-width: 100%; }
.side { display: flex; gap: 2em; flex-wrap: wrap; }
"""


def esc(text: Any) -> str:
    return html.escape(str(text))


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def grid_png(images: torch.Tensor, *, nrow: int | None = None) -> bytes:
    return plots.png_bytes(plots.image_grid(images, nrow=nrow))


def figure_png(draw: Callable[[Path], Path]) -> bytes:
    """PNG bytes of a plots.* function that writes to a path."""
    with tempfile.TemporaryDirectory() as tmp:
        return Path(draw(Path(tmp) / "figure.png")).read_bytes()


def figure(png: bytes, caption: str) -> str:
    return (
        f'<figure><img src="{png_data_uri(png)}" alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption></figure>'
    )


def table(rows: list[list[Any]], *, header: list[str] | None = None, warn_rows: set[int] = frozenset()) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
    for i, row in enumerate(rows):
        cls = ' class="warn"' if i in warn_rows else ""
        cells = "".join(
            f"<td{' class=v' if j == len(row) - 2 and len(row) > 2 else ''}>{esc(c)}</td>" for j, c in enumerate(row)
        )
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def page(title: str, subtitle: str, sections: list[tuple[str, str]]) -> str:
    body = "\n".join(f"<h2>{esc(h)}</h2>\n{content}" for h, content in sections)
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>\n'
        f'<body><h1>{esc(title)}</h1><p class="sub">{esc(subtitle)}</p>\n{body}\n'
        f'<p class="sub">written by vaekit on {stamp}; every image is embedded in this file.</p></body></html>\n'
    )
