"""Priors p(z) that generation draws its codes from.

The KL term of the objective always uses N(0, I). After training, the codes a VAE actually
uses (the aggregate posterior q(z) = mean_x q(z|x)) rarely fill N(0, I): decoding prior
draws from the holes between them gives the blurry or odd samples VAEs are known for. A
prior fitted post hoc on the codes of the training split fixes where samples come from
without retraining (Ghosh et al. 2020; Dai & Wipf 2019):

  StandardNormal        N(0, I), what training assumed
  GaussianMixturePrior  a Gaussian mixture fitted on the codes (scikit-learn), stored as tensors
  SecondStagePrior      a small second VAE trained on the codes (Dai & Wipf 2019): u ~ N(0, I),
                        z = its decoder's mean at u

Every prior has .sample(n, temperature=, generator=, device=) -> (n, latent_dim); temperature
scales the spread around the prior's means (< 1: safer, less varied samples).

Fitted priors live in the run folder (see vaekit.fit_prior for the fitting):

  priors/default.json        {"kind": "gmm"}: the prior `sample` uses when none is named
  priors/gmm.json            how the mixture was fitted (and a hash of the weights it fits)
  priors/gmm.safetensors     weights (K,), means (K, D), scale_tril (K, D, D)
  priors/vae.json            how the second stage was fitted
  priors/vae.safetensors     shift (D,), scale (D,): codes are standardized for the second stage
  priors/vae/                the second-stage VAE: an ordinary vaekit run folder
  priors/vae-codes.npz       the codes it was trained on

Nothing is unpickled: tensors come from safetensors, everything else from JSON.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .errors import RunFolderError, VaekitError

PRIOR_DIR = "priors"
PRIOR_KINDS = ("standard", "gmm", "vae")
PRIOR_FORMAT = "vaekit-prior/1"
# how each kind is named in printed results ("decoded z ~ ...")
PRIOR_NAMES = {"standard": "N(0, I)", "gmm": "the fitted Gaussian mixture", "vae": "the fitted second-stage VAE"}


def _draw_device(generator: torch.Generator | None, device) -> torch.device | str:
    # draw on the generator's own device so a seeded CPU generator works for any model
    return generator.device if generator is not None else device


class StandardNormal:
    """p(z) = N(0, I) over latent_dim dimensions."""

    kind = "standard"

    def __init__(self, latent_dim: int):
        self.latent_dim = latent_dim

    def sample(
        self,
        n: int,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """(n, latent_dim); temperature scales the standard deviation."""
        z = torch.randn(n, self.latent_dim, generator=generator, device=_draw_device(generator, device), dtype=dtype)
        return z.to(device) * temperature

    def log_prob(self, z: Tensor) -> Tensor:
        """(..., D) -> (...)"""
        return -0.5 * (z**2 + math.log(2 * math.pi)).sum(-1)


class GaussianMixturePrior:
    """p(z) = sum_k w_k N(z; m_k, L_k L_k^T); weights (K,), means (K, D), scale_tril (K, D, D)."""

    kind = "gmm"

    def __init__(self, weights: Tensor, means: Tensor, scale_tril: Tensor):
        self.weights, self.means, self.scale_tril = weights, means, scale_tril

    @property
    def latent_dim(self) -> int:
        return self.means.shape[1]

    @property
    def num_components(self) -> int:
        return self.means.shape[0]

    def sample(
        self,
        n: int,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """(n, D): a component k ~ w, then z = m_k + temperature * L_k eps, eps ~ N(0, I)."""
        at = _draw_device(generator, device)
        w, m, L = (t.to(at, torch.float64) for t in (self.weights, self.means, self.scale_tril))
        k = torch.multinomial(w, n, replacement=True, generator=generator)  # (n,)
        eps = torch.randn(n, self.latent_dim, generator=generator, device=at, dtype=torch.float64)
        z = m[k] + temperature * (L[k] @ eps[:, :, None])[:, :, 0]  # (n, D)
        return z.to(device=device, dtype=dtype)

    def distribution(self) -> torch.distributions.Distribution:
        D = torch.distributions
        return D.MixtureSameFamily(
            D.Categorical(probs=self.weights.double()),
            D.MultivariateNormal(self.means.double(), scale_tril=self.scale_tril.double()),
        )

    def log_prob(self, z: Tensor) -> Tensor:
        """(..., D) -> (...) in nats."""
        return self.distribution().log_prob(z.double().cpu()).to(z.dtype)

    def tensors(self) -> dict[str, Tensor]:
        return {"weights": self.weights, "means": self.means, "scale_tril": self.scale_tril}


class SecondStagePrior:
    """Dai & Wipf (2019): a second VAE models the codes. u ~ N(0, I), z' ~ p(z'|u) (its
    Gaussian likelihood: decoder mean plus sigma * noise, both scaled by the temperature),
    z = shift + scale * z'. Drawing z' from the likelihood rather than taking its mean keeps
    the samples right where the second stage leans on its learned sigma (when its own
    posterior collapses it is a Gaussian fit of the codes, not one point); as sigma -> 0, as
    Dai & Wipf intend, the two agree. model: a vaekit VAE with a Gaussian likelihood on
    vectors of size D; shift, scale (D,): how the codes were standardized for it."""

    kind = "vae"

    def __init__(self, model: torch.nn.Module, shift: Tensor, scale: Tensor):
        self.model, self.shift, self.scale = model, shift, scale

    @property
    def latent_dim(self) -> int:
        return self.shift.shape[0]

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        u = self.model.prior.sample(n, temperature=temperature, generator=generator, device=self.model.device)
        mean = self.model.decode_mean(u).float().cpu()  # (n, D)
        sigma = self.model.likelihood.sigma().float().cpu()  # broadcasts over (n, D)
        at = _draw_device(generator, "cpu")
        eps = torch.randn(mean.shape, generator=generator, device=at).cpu()
        z = (mean + temperature * sigma * eps) * self.scale + self.shift
        return z.to(device=device, dtype=dtype)


# -- storage in the run folder --------------------------------------------------------------------


def prior_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / PRIOR_DIR


def weights_digest(run_dir: str | Path) -> str:
    """sha256 of the run's model.safetensors: a fitted prior belongs to exactly these weights."""
    from .checkpoint import MODEL_FILE

    path = Path(run_dir) / MODEL_FILE
    if not path.is_file():
        raise RunFolderError(f"{run_dir} has no {MODEL_FILE} (training has not finished an epoch there)")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_prior(run_dir: str | Path, kind: str, tensors: dict[str, Tensor], meta: dict[str, Any]) -> Path:
    """Store a fitted prior's tensors and JSON description, and make it the run's default."""
    from safetensors.torch import save as st_save

    from .checkpoint import atomic_write

    folder = prior_dir(run_dir)
    atomic_write(folder / f"{kind}.safetensors", st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}))
    info = {"format": PRIOR_FORMAT, "kind": kind, "weights_sha256": weights_digest(run_dir), **meta}
    atomic_write(folder / f"{kind}.json", json.dumps(info, indent=2) + "\n")
    atomic_write(folder / "default.json", json.dumps({"kind": kind}) + "\n")
    return folder


def read_prior_info(run_dir: str | Path, kind: str) -> dict[str, Any]:
    path = prior_dir(run_dir) / f"{kind}.json"
    if not path.is_file():
        raise RunFolderError(
            f"{run_dir} has no fitted {kind} prior; fit one with `vaekit fit-prior {run_dir} --kind {kind}`"
        )
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunFolderError(f"{path} is unreadable or not JSON: {e}") from None
    if info.get("format") != PRIOR_FORMAT or info.get("kind") != kind:
        raise RunFolderError(f"{path} does not describe a vaekit {kind} prior")
    if info.get("weights_sha256") != weights_digest(run_dir):
        raise RunFolderError(
            f"the {kind} prior in {run_dir} was fitted to earlier weights of this run; "
            f"fit it again with `vaekit fit-prior {run_dir} --kind {kind}`, or choose --prior standard"
        )
    return info


def fitted_priors(run_dir: str | Path) -> list[str]:
    """The kinds of fitted prior stored in a run folder (standard is always available)."""
    return [k for k in PRIOR_KINDS[1:] if (prior_dir(run_dir) / f"{k}.json").is_file()]


def default_prior_kind(run_dir: str | Path) -> str:
    """The prior `sample` uses when none is named: the one fitted last, else standard."""
    path = prior_dir(run_dir) / "default.json"
    if not path.is_file():
        return "standard"
    try:
        kind = json.loads(path.read_text()).get("kind", "standard")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        raise RunFolderError(f"{path} is unreadable or not JSON") from None
    return kind if kind in PRIOR_KINDS else "standard"


def load_sampling_prior(run_dir: str | Path, kind: str | None = None, *, device: str = "cpu"):
    """The prior to draw a run's samples from: kind "standard", "gmm" or "vae"; None: the
    run's default (the prior fitted last, or N(0, I) when none was). Raises RunFolderError
    when the asked-for prior was not fitted or was fitted to other weights."""
    from .checkpoint import read_config
    from safetensors.torch import load_file

    run_dir = Path(run_dir)
    config, _ = read_config(run_dir)
    kind = default_prior_kind(run_dir) if kind is None else kind
    if kind not in PRIOR_KINDS:
        raise VaekitError(f"unknown prior {kind!r}; choose one of {', '.join(PRIOR_KINDS)}")
    if kind == "standard":
        return StandardNormal(config.model.latent_dim)
    read_prior_info(run_dir, kind)
    path = prior_dir(run_dir) / f"{kind}.safetensors"
    try:
        t = load_file(str(path))
    except Exception as e:  # safetensors raises several types for a damaged file
        raise RunFolderError(f"{path} is not a readable safetensors file: {e}") from None
    if kind == "gmm":
        prior = GaussianMixturePrior(t["weights"], t["means"], t["scale_tril"])
    else:
        from .api import load

        prior = SecondStagePrior(load(prior_dir(run_dir) / "vae", device=device), t["shift"], t["scale"])
    if prior.latent_dim != config.model.latent_dim:
        raise RunFolderError(f"the {kind} prior in {run_dir} has {prior.latent_dim} dimensions, the model {config.model.latent_dim}")
    return prior
