"""A sweep folder: one ordinary run folder per point (beta-0.1/, beta-1/, ..., ae/) and

sweep.json              what was asked (data, seed, options): a re-run must ask the same
results.json            one row per point (test split, nats per example)
table.md                the same rows as a Markdown table
rate_distortion.png, metrics_vs_beta.png, grid.png   the figures (vaekit.workflows.sweep)
rd_curve.png            a codec sweep's figure (vaekit.workflows.rd_sweep)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import VaekitError
from .files import atomic_write, read_json, write_json

SWEEP_FORMAT = "vaekit-sweep/1"
SWEEP_FILE, RESULTS_FILE, TABLE_FILE = "sweep.json", "results.json", "table.md"
FIGURES = ("rate_distortion", "metrics_vs_beta", "grid", "rd_curve")


class SweepFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def claim(self, spec: dict[str, Any]) -> None:
        """Write sweep.json (spec plus the format marker), or check that the sweep already here
        asked the same; VaekitError naming what differs, or when the folder is something else."""
        spec = {"format": SWEEP_FORMAT, **spec}
        path = self.path / SWEEP_FILE
        if path.is_file():
            old = read_json(path, "a sweep's settings")
            if not isinstance(old, dict) or old.get("format") != SWEEP_FORMAT:
                raise VaekitError(f"{path} is not a vaekit sweep file; choose another --out")
            if json.dumps(old, sort_keys=True) != json.dumps(spec, sort_keys=True):
                raise VaekitError(
                    f"{self.path} holds a sweep with other settings ({_differences(old, spec)}); "
                    "give the same settings to resume it, or another --out"
                )
            return
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise VaekitError(f"--out {self.path} exists and is not a sweep folder; choose another")
        write_json(path, spec)

    def point(self, name: str) -> Path:
        return self.path / name

    def save_results(self, rows: list[dict[str, Any]], table: str) -> None:
        write_json(self.path / RESULTS_FILE, rows)
        atomic_write(self.path / TABLE_FILE, table)

    @property
    def table_path(self) -> Path:
        return self.path / TABLE_FILE

    def figure_path(self, name: str) -> Path:
        if name not in FIGURES:
            raise ValueError(f"unknown sweep figure {name!r}")
        return self.path / f"{name}.png"


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    diff = [k for k in ("data", "seed") if old.get(k) != new.get(k)]
    o, n = old.get("options", {}), new.get("options", {})
    diff += [f"{k} ({o.get(k)} -> {n.get(k)})" for k in sorted(set(o) | set(n)) if o.get(k) != n.get(k)]
    return ", ".join(diff) or "format"
