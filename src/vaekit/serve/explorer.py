"""Everything the explorer page shows, as plain functions of a trained model and its test
split. No web code here: vaekit.serve.app is the thin HTTP layer over this.

    ex = Explorer.from_run("runs/fmnist")
    image = ex.decode([0.0] * ex.latent_dim)          # (C, H, W)
    z, image = ex.decode_map_point(1.5, -0.3)         # a point of the latent map
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sklearn.decomposition import PCA
from torch import Tensor

from ..core import sampling
from ..core.model import VAE
from ..data import Dataset
from ..data.images import load_image
from ..errors import DataError, VaekitError
from ..evaluation.latent import ACTIVE_UNIT_THRESHOLD, unit_activity
from ..runs import Run, load_run
from . import scoring

# Codes farther out than this are no latent value a user means (the prior's sd is 1, and AE
# codes stay within tens); it also keeps the decoder's arithmetic finite.
Z_LIMIT = 1e4
MAX_SAMPLES = 64
MAX_STEPS = 32
MAX_PIXELS = 40_000_000  # an uploaded image larger than this is refused before it is decoded


@dataclass
class LatentPlane:
    """The 2-D view of the latent space the map is drawn in: the map point (u, v) is the code
    z = origin + u * axes[0] + v * axes[1]. With latent_dim > 2 the axes are the first two
    principal components of the test-set posterior means; otherwise the latent axes themselves."""

    origin: Tensor  # (D,)
    axes: Tensor  # (k, D) orthonormal rows, k = min(2, D)
    axis_names: list[str]
    method: str  # "pca" or "identity"

    @classmethod
    def fit(cls, mu: Tensor) -> LatentPlane:
        """mu: (N, D) posterior means."""
        d = mu.shape[1]
        if d <= 2:
            names = ["z[0]", "z[1]"] if d == 2 else ["z[0]", "(unused)"]
            return cls(torch.zeros(d), torch.eye(d), names, "identity")
        pca = PCA(n_components=2, svd_solver="full").fit(mu.double().numpy())
        ev = pca.explained_variance_ratio_
        names = [f"PC 1 ({ev[0]:.0%} of variance)", f"PC 2 ({ev[1]:.0%})"]
        return cls(torch.from_numpy(pca.mean_).float(), torch.from_numpy(pca.components_).float(), names, "pca")

    def project(self, z: Tensor) -> Tensor:
        """(N, D) -> (N, 2); the second coordinate is 0 when D = 1."""
        uv = (z.float() - self.origin) @ self.axes.T  # (N, k)
        return torch.cat([uv, torch.zeros(uv.shape[0], 2 - uv.shape[1])], 1)

    def lift(self, uv: Tensor) -> Tensor:
        """(N, 2) -> (N, D): the code at each map point."""
        k = self.axes.shape[0]
        return self.origin + uv[:, :k].float() @ self.axes


@dataclass
class LatentDim:
    """One latent dimension as the slider panel shows it (statistics over the test split)."""

    index: int
    kl: float  # mean KL(q(z_d|x) || N(0, 1)) in nats (0 for an AE)
    activity: float  # Cov_x(E_q[z_d|x]), the active-unit statistic (vaekit.evaluation.latent)
    active: bool
    low: float  # slider range: mean -/+ 3 sd of the aggregate posterior along z_d
    high: float


def latent_dims(mu: Tensor, logvar: Tensor, *, stochastic: bool) -> list[LatentDim]:
    """Per-dimension statistics from posterior parameters (N, D), most informative first:
    sorted by KL for a VAE, by activity for an AE (whose KL is zero)."""
    mu, var = mu.double(), logvar.double().exp()
    activity = unit_activity(mu) if mu.shape[0] > 1 else torch.zeros(mu.shape[1], dtype=torch.float64)
    kl = 0.5 * (mu**2 + var - 1.0 - logvar.double()).mean(0) if stochastic else torch.zeros_like(activity)
    # sd of the aggregate posterior q(z_d) = mean_x q(z_d|x): Var[mu] + E[sigma^2]
    centre, spread = mu.mean(0), (activity + var.mean(0)).sqrt().clamp_min(1e-3)
    dims = [
        LatentDim(
            d,
            float(kl[d]),
            float(activity[d]),
            bool(activity[d] > ACTIVE_UNIT_THRESHOLD),
            float(centre[d] - 3 * spread[d]),
            float(centre[d] + 3 * spread[d]),
        )
        for d in range(mu.shape[1])
    ]
    return sorted(dims, key=lambda s: (-(s.kl if stochastic else s.activity), s.index))


@dataclass
class Analysis:
    """What the model makes of one image."""

    image: Tensor  # (*data_shape), the input as the model sees it
    reconstruction: Tensor  # (*data_shape), decoded posterior mean
    mu: Tensor  # (D,) posterior mean
    std: Tensor  # (D,) posterior sd (0 for an AE)
    score: float  # the explorer's Scorer (scoring.py): llr, complexity, nll_iw, recon_error or -ELBO
    percentile: float  # of the score among the test-set reference scores
    flagged: bool | None = None  # above the Scorer's threshold (None: no threshold was chosen)


def image_from_bytes(data: bytes, data_shape: Sequence[int], *, max_pixels: int = MAX_PIXELS) -> Tensor:
    """An uploaded image file's bytes -> (C, H, W) float32 in [0, 1], converted to the model's
    channels and resized (centre-cropped) to its size; only allowed formats are decoded
    (vaekit.data.images). Raises DataError (ImageTooLarge when it has too many pixels), and a
    plain VaekitError when the model does not take images (the upload is not at fault: the app
    answers 422, not 415)."""
    if len(data_shape) != 3 or data_shape[0] not in (1, 3):
        raise VaekitError(f"this model was trained on data of shape {tuple(data_shape)}, not on images")
    return load_image(bytes(data), list(data_shape), max_pixels=max_pixels)


@dataclass
class Explorer:
    """A trained model, its test split and the statistics the page needs, computed once.
    Build it with Explorer.build(model, test) or Explorer.from_run(path)."""

    model: Any  # vaekit.VAE in eval mode
    test: Dataset
    class_names: list[str] | None
    prior: Any  # what samples are drawn from (model.prior unless a fitted prior is given)
    dims: list[LatentDim]  # most informative first
    plane: LatentPlane
    map_index: Tensor  # (M,) test-set indices of the points on the map
    map_xy: Tensor  # (M, 2) their posterior means on the plane
    score_reference: Tensor  # (R,) anomaly scores of test-set images, for percentiles
    run: Run | None = None  # the run folder it shows, when built from one
    score_samples: int = 4
    scorer: scoring.Scorer | None = None  # the anomaly score and its threshold

    def __post_init__(self) -> None:
        if self.scorer is None:  # built by hand: the trusted score, without a threshold
            self.scorer = scoring.Scorer.for_model(self.model, samples=self.score_samples)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        model,
        test: Dataset,
        *,
        class_names: list[str] | None = None,
        prior=None,
        map_points: int = 10_000,
        score_reference: int = 1_000,
        score_samples: int = 4,
        seed: int = 0,
        run: Run | None = None,
        val: Dataset | None = None,
        fpr: float = 0.05,
        background=None,
    ) -> Explorer:
        """Encode (a seeded random subset of) the test split for the map and the slider
        statistics, and score `score_reference` test images for the anomaly percentiles.
        With `val` (the run's validation split) the anomaly threshold is chosen to flag `fpr` of it."""
        if len(test) < 1:
            raise DataError("the run's test split is empty; there is nothing to explore")
        model.eval()  # the explorer only ever runs the model for inference
        gen = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(test), generator=gen)
        map_index = perm[: max(1, map_points)].sort().values
        sub = test.subset(map_index)
        enc = sampling.encode_dataset(model, sub)
        dims = latent_dims(enc["mu"], enc["logvar"], stochastic=model.stochastic)
        plane = LatentPlane.fit(enc["mu"])
        ref = perm[: max(1, score_reference)].sort().values
        y_ref = cls._cond_labels(model, test.y, ref)
        scorer = scoring.Scorer.for_model(
            model, background=background, val=val, fpr=fpr, samples=score_samples, seed=seed
        )
        reference = scorer(test.x[ref], y_ref, seed=seed)
        return cls(
            model=model,
            test=test,
            class_names=class_names,
            prior=prior if prior is not None else model.prior,
            dims=dims,
            plane=plane,
            map_index=map_index,
            map_xy=plane.project(enc["mu"]),
            score_reference=reference.sort().values,
            run=run,
            score_samples=score_samples,
            scorer=scorer,
        )

    @classmethod
    def from_run(cls, path: str | Path, *, device: str = "cpu", prior=None, **options) -> Explorer:
        """Load a run folder's best model and its test split (options: see build). prior: a
        prior object, or its kind (standard, gmm, vae or diffusion); None: the prior fitted last with
        `vaekit fit-prior`, else N(0, I), as `vaekit sample` chooses."""
        run = load_run(path, device=device)
        if prior is None or isinstance(prior, str):
            prior = run.prior(prior)
        data, background = run.data(), run.background()
        return cls.build(
            run.model,
            data.test,
            class_names=data.class_names,
            prior=prior,
            run=run,
            val=data.val,
            background=None if background is None else background.model,
            **options,
        )

    @staticmethod
    def _cond_labels(model: VAE, y: Tensor | None, index) -> Tensor | None:
        if not model.config.num_classes or y is None:
            return None
        return y[index]

    # -- facts ------------------------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.model.latent_dim

    @property
    def conditional(self) -> bool:
        return self.model.config.num_classes > 0

    def rows(self, x: Tensor, *, observed: bool = False) -> list[dict[str, Any]] | None:
        """For a run trained on a table: encoded rows (N, D) in the table's columns and units (JSON-ready;
        observed=True: empty cells stay empty); None for other runs."""
        schema = None if self.run is None else self.run.table()
        if schema is None:
            return None
        rows = schema.decode(x.detach().float().cpu().numpy(), keep_missing=observed).to_pylist()
        return [
            {k: v if v is None or isinstance(v, (int, float, str, bool)) else str(v) for k, v in r.items()}
            for r in rows
        ]

    def label_name(self, label: int | None) -> str | None:
        if label is None:
            return None
        if self.class_names and 0 <= label < len(self.class_names):
            return self.class_names[label]
        return str(label)

    def run_summary(self) -> dict[str, Any]:
        """The run's config, data facts and per-epoch metrics (nats per example)."""
        if self.run is None:
            return {"config": {}, "info": {}, "metrics": [], "best": None}
        rows = self.run.metrics()
        finite = [r for r in rows if isinstance(r.get("val_loss"), (int, float)) and math.isfinite(r["val_loss"])]
        best = min(finite, key=lambda r: r["val_loss"]) if finite else None
        return {"config": self.run.config.to_dict(), "info": self.run.info, "metrics": rows, "best": best}

    # -- checks -----------------------------------------------------------------------------------
    def check_code(self, z: Sequence[float] | Tensor) -> Tensor:
        """A latent vector from a user -> (1, D) float32, or VaekitError saying what is wrong."""
        z = torch.as_tensor(z, dtype=torch.float32).reshape(-1)
        if z.numel() != self.latent_dim:
            raise VaekitError(
                f"the latent vector has {z.numel()} numbers; this model's latent space has {self.latent_dim} dimensions"
            )
        if not bool(torch.isfinite(z).all()):
            raise VaekitError("the latent vector contains non-finite numbers (NaN or infinity)")
        if float(z.abs().max()) > Z_LIMIT:
            raise VaekitError(f"latent values must lie within +/-{Z_LIMIT:g}")
        return z[None]

    def check_label(self, label: int | None) -> int | None:
        k = self.model.config.num_classes
        if k == 0:
            if label is not None:
                raise VaekitError("this model is not conditional; it takes no label")
            return None
        if label is None:
            raise VaekitError(f"this model is conditional: give a label in 0..{k - 1}")
        if not 0 <= label < k:
            raise VaekitError(f"label {label} is out of range; this model has classes 0..{k - 1}")
        return label

    def check_index(self, index: int) -> int:
        n = len(self.test)
        if not 0 <= index < n:
            raise VaekitError(f"test index {index} is out of range; the test split has {n} examples (0..{n - 1})")
        return index

    # -- what the page does -------------------------------------------------------------------------
    def decode(self, z: Sequence[float] | Tensor, label: int | None = None) -> Tensor:
        """One latent vector (D,) -> its image E[x|z] (*data_shape)."""
        return sampling.decode(self.model, self.check_code(z), self.check_label(label))[0]

    def decode_map_point(self, u: float, v: float, label: int | None = None) -> tuple[Tensor, Tensor]:
        """A point of the latent map -> (its code z (D,), the decoded image)."""
        if not (math.isfinite(u) and math.isfinite(v)):
            raise VaekitError("map coordinates must be finite numbers")
        z = self.plane.lift(torch.tensor([[u, v]], dtype=torch.float32))[0]
        return z, self.decode(z, label)

    def samples(
        self,
        n: int,
        *,
        temperature: float = 1.0,
        seed: int | None = None,
        label: int | None = None,
        return_z: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """n images decoded from the prior at this temperature -> (n, *data_shape)
        (and their codes (n, D) with return_z)."""
        if not 1 <= n <= MAX_SAMPLES:
            raise VaekitError(f"the number of samples must lie in 1..{MAX_SAMPLES}")
        if not (math.isfinite(temperature) and temperature > 0):
            raise VaekitError("temperature must be a positive finite number")
        return sampling.sample(
            self.model,
            n,
            temperature=temperature,
            seed=seed,
            y=self.check_label(label),
            prior=self.prior,
            return_z=return_z,
        )

    def example(self, index: int) -> tuple[Tensor, int | None]:
        """Test example -> (x (*data_shape), label or None)."""
        i = self.check_index(index)
        return self.test.x[i], None if self.test.y is None else int(self.test.y[i])

    def interpolate(self, a: int, b: int, *, steps: int = 8, method: str = "lerp") -> tuple[Tensor, Tensor]:
        """Walk between the posterior means of test examples a and b ->
        (images (steps, *data_shape), codes (steps, D))."""
        if not 2 <= steps <= MAX_STEPS:
            raise VaekitError(f"steps must lie in 2..{MAX_STEPS}")
        (xa, ya), (xb, yb) = self.example(a), self.example(b)
        if not self.conditional:
            ya = yb = None
        return sampling.interpolate(self.model, xa, xb, steps=steps, method=method, ya=ya, yb=yb, return_z=True)

    def analyze(self, x: Tensor, label: int | None = None) -> Analysis:
        """Reconstruction, posterior and anomaly score of one example x (*data_shape)."""
        label = self.check_label(label)
        y = None if label is None else torch.tensor([label])
        q = self._encode(x[None], y)
        mu = q.mode()
        rec = sampling.decode(self.model, mu, y)[0]
        score = float(self.scorer(x[None], y)[0])
        return Analysis(
            image=x,
            reconstruction=rec,
            mu=mu[0].cpu(),
            std=q.std[0].cpu(),
            score=score,
            percentile=scoring.percentile_rank(score, self.score_reference),
            flagged=self.scorer.flagged(score),
        )

    def _encode(self, x: Tensor, y: Tensor | None):
        """q(z|x) for a batch x (B, *data_shape), without gradients."""
        dev = self.model.device
        with torch.no_grad():
            return self.model.encode(x.to(dev), None if y is None else y.to(dev))
