"""Fitted sampling priors stored in a run folder (vaekit.workflows.fit_prior fits them):

  priors/default.json        {"kind": "gmm"}: the prior `sample` uses when none is named
  priors/gmm.json            how the mixture was fitted (and a hash of the weights it fits)
  priors/gmm.safetensors     weights (K,), means (K, D), scale_tril (K, D, D)
  priors/vae.json            how the second stage was fitted
  priors/vae.safetensors     shift (D,), scale (D,): codes are standardized for the second stage
  priors/vae/                the second-stage VAE: itself a run folder

A prior is bound to the weights it was fitted to (their sha256): after more training it is
refused rather than silently used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from ..core.priors import PRIOR_KINDS
from ..errors import RunFolderError, VaekitError
from .files import read_json, read_tensors, write_json, write_tensors
from .layout import PRIOR_DIR, STAGE_TWO_DIR

PRIOR_FORMAT = "vaekit-prior/1"
FITTED_KINDS = PRIOR_KINDS[1:]


class PriorStore:
    """The priors/ folder of one run; `digest` gives the sha256 of the run's current weights."""

    def __init__(self, run_path: Path, digest):
        self.folder = Path(run_path) / PRIOR_DIR
        self.digest = digest

    def stage_two_path(self) -> Path:
        """Where the second-stage VAE's own run folder lives."""
        return self.folder / STAGE_TWO_DIR

    def write(self, kind: str, tensors: dict[str, Tensor], meta: dict[str, Any]) -> Path:
        """Store a fitted prior's tensors and JSON description, and make it the run's default."""
        write_tensors(self.folder / f"{kind}.safetensors", tensors)
        write_json(
            self.folder / f"{kind}.json",
            {"format": PRIOR_FORMAT, "kind": kind, "weights_sha256": self.digest(), **meta},
        )
        write_json(self.folder / "default.json", {"kind": kind})
        return self.folder

    def fitted(self) -> list[str]:
        """The kinds of fitted prior stored here (standard is always available)."""
        return [k for k in FITTED_KINDS if (self.folder / f"{k}.json").is_file()]

    def default_kind(self) -> str:
        """The prior `sample` uses when none is named: the one fitted last, else standard."""
        path = self.folder / "default.json"
        if not path.is_file():
            return "standard"
        content = read_json(path, "the default prior")
        kind = content.get("kind", "standard") if isinstance(content, dict) else None
        if kind not in PRIOR_KINDS:
            raise RunFolderError(f"{path} names no known prior ({kind!r})")
        return kind

    def info(self, kind: str) -> dict[str, Any]:
        """The prior's JSON description, checked to belong to the run's current weights."""
        if kind not in FITTED_KINDS:
            raise VaekitError(f"unknown prior {kind!r}; choose one of {', '.join(PRIOR_KINDS)}")
        path = self.folder / f"{kind}.json"
        run = self.folder.parent
        if not path.is_file():
            raise RunFolderError(
                f"{run} has no fitted {kind} prior; fit one with `vaekit fit-prior {run} --kind {kind}`"
            )
        info = read_json(path, f"the {kind} prior")
        if not isinstance(info, dict) or info.get("format") != PRIOR_FORMAT or info.get("kind") != kind:
            raise RunFolderError(f"{path} does not describe a vaekit {kind} prior")
        if info.get("weights_sha256") != self.digest():
            raise RunFolderError(
                f"the {kind} prior in {run} was fitted to earlier weights of this run; "
                f"fit it again with `vaekit fit-prior {run} --kind {kind}`, or choose --prior standard"
            )
        return info

    def tensors(self, kind: str) -> dict[str, Tensor]:
        self.info(kind)
        return read_tensors(self.folder / f"{kind}.safetensors")[0]
