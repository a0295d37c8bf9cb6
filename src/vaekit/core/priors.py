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
  FlowPrior             a latent diffusion model: flow matching on the codes (vaekit.core.flow),
                        sampled by a deterministic ODE from N(0, I) noise in a few Heun steps

Every prior has .sample(n, temperature=, generator=, device=) -> (n, latent_dim); temperature
scales the spread around the prior's means (< 1: safer, less varied samples).

They are fitted by vaekit.workflows.fit_prior and stored with their run (vaekit.runs).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from . import flow

PRIOR_KINDS = ("standard", "gmm", "vae", "diffusion")
# how each kind is named in printed results ("decoded z ~ ...")
PRIOR_NAMES = {
    "standard": "N(0, I)",
    "gmm": "the fitted Gaussian mixture",
    "vae": "the fitted second-stage VAE",
    "diffusion": "the fitted latent diffusion (flow matching) prior",
    "entropy": "the codec's learned prior",
}


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


class FlowPrior:
    """A latent diffusion prior: a flow-matching velocity field (vaekit.core.flow) trained on the
    standardized codes z' = (z - shift) / scale. x0 ~ N(0, I) scaled by the temperature, z' = the
    ODE's solution at t = 1 after `steps` Heun steps, z = shift + scale * z'. shift, scale (D,)."""

    kind = "diffusion"

    def __init__(self, net: flow.VelocityField, shift: Tensor, scale: Tensor, *, steps: int):
        self.net, self.shift, self.scale, self.steps = net.eval(), shift, scale, steps

    @property
    def latent_dim(self) -> int:
        return self.shift.shape[0]

    def _device(self) -> torch.device:
        return next(self.net.parameters()).device

    def sample(
        self,
        n: int,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """(n, D): the same noise (generator) gives the same codes; temperature scales the noise."""
        at = _draw_device(generator, "cpu")
        x0 = torch.randn(n, self.latent_dim, generator=generator, device=at).to(self._device())
        z = flow.integrate(self.net, temperature * x0, self.steps).cpu()
        return (z * self.scale + self.shift).to(device=device, dtype=dtype)

    def log_prob(self, z: Tensor, *, steps: int | None = None) -> Tensor:
        """(N, D) -> (N,) in nats, by the probability-flow ODE (steps Heun steps; default the
        sampler's): log p(z) = log p(z') - sum_d log scale_d."""
        x = ((z.float().cpu() - self.shift) / self.scale).to(self._device())
        return flow.log_prob(self.net, x, steps or self.steps).cpu() - self.scale.log().sum()

    def tensors(self) -> dict[str, Tensor]:
        return {"shift": self.shift, "scale": self.scale, **{f"net.{k}": v for k, v in self.net.state_dict().items()}}
