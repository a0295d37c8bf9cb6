"""A benchmark's Markdown section in BENCHMARKS.md: replaced in place between its markers, or
appended when the file has none yet. `md` carries the markers itself."""

from __future__ import annotations

from pathlib import Path


def replace_section(path: Path, md: str, begin: str, end: str) -> None:
    text = path.read_text()
    if begin in text and end in text:
        text = text[: text.index(begin)] + md + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + md + "\n"
    path.write_text(text)
