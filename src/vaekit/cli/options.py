"""Small parsers shared by the commands."""

from __future__ import annotations

from ..errors import VaekitError


def int_list(text: str | None, what: str) -> list[int] | None:
    """"512,256" -> [512, 256]."""
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise VaekitError(f"{what} must be comma-separated integers such as 32,64, not {text!r}") from None
    if any(v < 0 for v in values):
        raise VaekitError(f"{what} must not be negative")
    return values
