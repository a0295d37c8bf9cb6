"""The VAE: encoder -> posterior q(z|x) -> z -> decoder -> likelihood p(x|z).

The AE baseline is the same class with kind="ae": the encoder emits only mu, the posterior
is a point mass, so there is no sampling and the KL term is zero.

The lossy codec is the same class with kind="codec" (Balle et al. 2017, who show it is a VAE):
the encoder emits y, the posterior is a unit box around it (uniform noise in training, rounding
when coding), the prior a learned factorized density (vaekit.core.entropy) whose -log mass is the
KL term, i.e. the rate, and the likelihood a Gaussian whose sigma sets the trade-off (--lmbda).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution

from ..config import ModelConfig
from ..errors import VaekitError
from . import sampling
from .distributions import DiagonalGaussian, PointMass, QuantizedCode
from .entropy import FactorizedDensity
from .likelihoods import Likelihood, build_likelihood
from .nets import build_networks
from .priors import StandardNormal


@dataclass
class ModelOutput:
    posterior: DiagonalGaussian | PointMass
    z: Tensor  # (B, D_z)
    px: Distribution  # p(x|z): batch shape (B,), event shape data_shape
    recon: Tensor  # (B,)  -log p(x|z) in nats, summed over one example
    kl_per_dim: Tensor  # (B, D_z) KL(q(z|x) || N(0, I)) per latent dimension; a codec's rate -log p(z)
    # a hierarchical VAE's latent numbers per group, top first (kl_per_dim covers them all); None: one group
    groups: list[int] | None = None

    @property
    def kl(self) -> Tensor:  # (B,)
        return self.kl_per_dim.sum(-1)


@dataclass
class GroupPass:
    """One latent group's share of a top-down pass: q (or None when z came from the prior), the
    prior p, and z; all (B, D_g) flattened from (B, c, h, w)."""

    q: DiagonalGaussian | None
    p: DiagonalGaussian
    z: Tensor


# chooses a group's code from its posterior (None without x) and prior: (g, q, p) -> z (B, D_g)
Chooser = Callable[[int, "DiagonalGaussian | None", DiagonalGaussian], Tensor]


class VAE(nn.Module):
    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: Likelihood,
        prior: StandardNormal | FactorizedDensity,
        config: ModelConfig,
    ):
        super().__init__()
        self.encoder, self.decoder, self.likelihood = encoder, decoder, likelihood
        self.prior = prior
        self.config = config

    @classmethod
    def from_config(cls, config: ModelConfig) -> VAE:
        likelihood = build_likelihood(config)
        encoder, decoder = build_networks(config, likelihood.num_params, param_shape=likelihood.param_shape())
        prior = FactorizedDensity(config.latent_dim) if config.kind == "codec" else StandardNormal(config.latent_dim)
        return cls(encoder, decoder, likelihood, prior, config)

    # -- parts -------------------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def data_shape(self) -> list[int]:
        return self.config.data_shape

    @property
    def stochastic(self) -> bool:
        """A Gaussian posterior: an ELBO, importance sampling, KL per dimension."""
        return self.config.kind in ("vae", "hvae")

    @property
    def noisy(self) -> bool:
        """Training adds latent noise (which the loop draws for the global batch): VAE and codec."""
        return self.config.kind in ("vae", "hvae", "codec")

    @property
    def noise_dim(self) -> int:
        """Numbers of latent noise one example's forward pass takes (eps (B, noise_dim)); the
        KL per dimension has as many."""
        return self.latent_dim

    @property
    def group_dims(self) -> list[int] | None:
        """A hierarchical model's latent numbers per group; None for one flat code."""
        return None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _onehot(self, y: Tensor | None) -> Tensor | None:
        k = self.config.num_classes
        if k == 0:
            return None
        if y is None:
            raise VaekitError("this model is conditional: give a label for every example")
        y = torch.as_tensor(y, device=self.device).long().reshape(-1)
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= k):
            raise VaekitError(f"labels must lie in 0..{k - 1} for this model")
        return F.one_hot(y, k)

    def encode(self, x: Tensor, y: Tensor | None = None) -> DiagonalGaussian | PointMass:
        """x (B, *data_shape) -> q(z|x) with mu (and logvar) of shape (B, D_z)."""
        h = self.encoder(x, self._onehot(y))
        if self.config.kind == "codec":
            return QuantizedCode(h)
        if not self.stochastic:
            return PointMass(h)
        mu, logvar = h.chunk(2, dim=1)
        return DiagonalGaussian(mu, logvar)

    def code_pass(
        self, x: Tensor | None, n: int, choose: Chooser, *, params: bool = True
    ) -> tuple[Tensor | None, list[GroupPass]]:
        """The latent groups one at a time, top first, each z_g given by choose(g, q, p) (a coder
        pops it): -> (likelihood parameters (n, P, *data_shape), or None without `params`; one
        GroupPass per group). x (n, *data_shape) or None (then q is None). A flat VAE is one
        group with the prior N(0, I)."""
        q = None if x is None else self.encode(x)
        zeros = torch.zeros(n, self.latent_dim, dtype=next(self.parameters()).dtype, device=self.device)
        p = DiagonalGaussian(zeros, zeros)
        z = choose(0, q, p)
        return (self.decode_params(z) if params else None), [GroupPass(q, p, z)]

    def decode_params(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """z (B, D_z) -> likelihood parameters (B, P, *data_shape)."""
        return self.decoder(z, self._onehot(y))

    def decode(self, z: Tensor, y: Tensor | None = None) -> Distribution:
        """z (B, D_z) -> p(x|z), a Distribution with batch shape (B,)."""
        return self.likelihood(self.decode_params(z, y))

    def decode_mean(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """z (B, D_z) -> E[x|z] (B, *data_shape): the image we show."""
        return self.likelihood.mean(self.decode_params(z, y))

    def forward(
        self,
        x: Tensor,
        y: Tensor | None = None,
        *,
        target: Tensor | None = None,
        generator: torch.Generator | None = None,
        eps: Tensor | None = None,
    ) -> ModelOutput:
        """One pass of the objective's terms. target: what to reconstruct when it is not x
        (denoising); the latent noise: eps (B, D_z) when given (the training loop draws it for
        the global batch, so several processes step like one), else drawn from `generator`
        (validation uses a fixed one)."""
        posterior = self.encode(x, y)
        z = posterior.rsample(generator=generator, eps=eps)
        px = self.decode(z, y)
        recon = -px.log_prob(x if target is None else target)
        kl_per_dim = -self.prior.log_mass(z) if self.config.kind == "codec" else posterior.kl_per_dim()
        return ModelOutput(posterior, z, px, recon, kl_per_dim)

    def reconstruction(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """E[x | z = the posterior mean]: (B, *data_shape) -> (B, *data_shape)."""
        return self.decode_mean(self.encode(x, y).mode(), y)

    def log_importance_weights(
        self, x: Tensor, y: Tensor | None = None, *, k: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x), z_i ~ q(z|x), for k draws: (k, B).
        x (B, *data_shape); the k * B decodes go through the decoder at once."""
        b = x.shape[0]
        q = self.encode(x, y)  # mu, logvar (B, D_z)
        z = q.rsample(k, generator=generator)  # (k, B, D_z)
        flat_x = x.expand(k, *x.shape).reshape(k * b, *x.shape[1:])  # row i * B + j: draw i of example j
        flat_y = None if y is None else torch.as_tensor(y).repeat(k)
        log_px = self.decode(z.reshape(k * b, -1), flat_y).log_prob(flat_x).view(k, b)
        return log_px + self.prior.log_prob(z) - q.log_prob(z)

    # -- what users do with a trained model (see vaekit.sampling) -------------------------------
    def sample(self, n: int, **kwargs) -> Tensor:
        return sampling.sample(self, n, **kwargs)

    def reconstruct(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return sampling.reconstruct(self, x, y)

    def interpolate(self, xa: Tensor, xb: Tensor, **kwargs) -> Tensor:
        return sampling.interpolate(self, xa, xb, **kwargs)

    def traverse(self, **kwargs) -> Tensor:
        return sampling.traverse(self, **kwargs)
