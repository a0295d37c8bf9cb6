"""A progress bar for reading many files."""

from __future__ import annotations

from tqdm import tqdm


def progress(items, desc: str):
    """items, with a bar when there are enough of them to wait for."""
    if len(items) < 2000:
        return items
    return tqdm(items, desc=desc, unit="img")
