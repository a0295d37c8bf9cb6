"""The hierarchical VAE: a top-down hierarchy of latent groups with residual cells (Ladder VAE,
Sonderby et al. 2016; NVAE, Vahdat and Kautz 2020; VDVAE, Child 2021).

A bottom-up path (residual cells, average pooling) leaves one activation per resolution. A
top-down path starts from a learned constant at 1x1 and walks back up to full resolution; at
each latent group it computes

    prior      p(z_g | z_<g)      from the top-down state h (the top group's is N(0, I))
    posterior  q(z_g | x, z_<g)   from h and the bottom-up activation at that resolution

samples z_g (from q in training, from p when generating), adds its projection to h and runs a
residual cell. The KL of every group is summed into one ELBO (per dimension: kl_per_dim covers
every group, top first). The top group is a 1x1 code of latent_dim numbers: it is what encode,
interpolate, traverse, the latent map and the fitted priors work on, as a flat VAE's z; decoding
a top code alone sets the lower groups to their prior means (or draws them at a temperature).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution

from ..config import ModelConfig
from ..errors import VaekitError
from .distributions import DiagonalGaussian
from .likelihoods import Likelihood, build_likelihood
from .model import VAE, Chooser, GroupPass, ModelOutput
from .priors import StandardNormal

TOP_SIZE = 1  # the top group is a 1x1 code
SMALL_SIZE = 7  # halve the resolution while it is larger than this (as the conv net: 28 -> 14 -> 7)
NARROW, WIDE = 32, 64  # default channels above / at most 8 pixels across
GROUP_CHANNELS = 8  # latent channels per spatial group by default
PASS_ROWS = 512  # examples per top-down pass when importance sampling


def resolutions(height: int, width: int) -> list[tuple[int, int]]:
    """(h, w) of each stage, top-down: 1x1, then the halvings from the coarsest up to full size.
    28x28 -> [(1, 1), (7, 7), (14, 14), (28, 28)]; 8x8 -> [(1, 1), (4, 4), (8, 8)]."""
    sizes = [(height, width)]
    while max(sizes[-1]) > SMALL_SIZE:
        h, w = sizes[-1]
        sizes.append((math.ceil(h / 2), math.ceil(w / 2)))
    return [(TOP_SIZE, TOP_SIZE), *reversed(sizes)]


def default_groups(sizes: list[tuple[int, int]]) -> list[int]:
    """One group at 1x1, two at every other resolution."""
    return [1] + [2] * (len(sizes) - 1)


def default_widths(sizes: list[tuple[int, int]]) -> list[int]:
    return [WIDE if max(s) <= 8 else NARROW for s in sizes]


def _conv(c_in: int, c_out: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, padding=k // 2)


class Cell(nn.Module):
    """The residual cell of VDVAE: GELU, 1x1 down to a bottleneck, two 3x3, 1x1 out.
    (B, c_in, h, w) -> (B, c_out, h, w); with residual, x + cell(x). The last conv starts scaled
    by `scale` so that a deep stack of residual cells starts near the identity."""

    def __init__(self, c_in: int, c_out: int, *, residual: bool, scale: float = 1.0):
        super().__init__()
        mid = max(8, c_in // 4)
        self.convs = nn.ModuleList([_conv(c_in, mid, 1), _conv(mid, mid, 3), _conv(mid, mid, 3), _conv(mid, c_out, 1)])
        self.residual = residual
        with torch.no_grad():
            self.convs[-1].weight.mul_(scale)

    def forward(self, x: Tensor) -> Tensor:
        h = x
        for conv in self.convs:
            h = conv(F.gelu(h))
        return x + h if self.residual else h


class LatentGroup(nn.Module):
    """One top-down step: prior and posterior of z_g, then h + proj(z_g) through a residual cell.
    h (B, width, h, w), the bottom-up activation a (B, width, h, w)."""

    def __init__(self, width: int, z_channels: int, size: tuple[int, int], *, standard: bool, scale: float):
        super().__init__()
        self.z_channels, self.size, self.standard = z_channels, size, standard
        self.posterior = Cell(2 * width, 2 * z_channels, residual=False)
        # the prior's cell also emits a residual for h; the top group's prior is N(0, I)
        self.prior = None if standard else Cell(width, 2 * z_channels + width, residual=False, scale=0.0)
        self.project = _conv(z_channels, width, 1)
        with torch.no_grad():
            self.project.weight.mul_(scale)
        self.cell = Cell(width, width, residual=True, scale=scale)

    @property
    def dim(self) -> int:
        return self.z_channels * self.size[0] * self.size[1]

    def _prior(self, h: Tensor) -> tuple[DiagonalGaussian, Tensor]:
        if self.prior is None:
            zeros = h.new_zeros(h.shape[0], self.dim)
            return DiagonalGaussian(zeros, zeros), h
        out = self.prior(h)
        mu, logvar, dh = out.split([self.z_channels, self.z_channels, out.shape[1] - 2 * self.z_channels], dim=1)
        return DiagonalGaussian(mu.flatten(1), logvar.flatten(1)), h + dh

    def posterior_of(self, h: Tensor, a: Tensor) -> DiagonalGaussian:
        mu, logvar = self.posterior(torch.cat([h, a], dim=1)).chunk(2, dim=1)
        return DiagonalGaussian(mu.flatten(1), logvar.flatten(1))

    def laws(self, h: Tensor, a: Tensor | None) -> tuple[DiagonalGaussian | None, DiagonalGaussian, Tensor]:
        """-> (q(z_g | x, z_<g), or None without a; p(z_g | z_<g); h with the prior's residual)."""
        p, h = self._prior(h)
        return (None if a is None else self.posterior_of(h, a)), p, h

    def advance(self, h: Tensor, z: Tensor) -> Tensor:
        """h + proj(z_g) through the residual cell: z (B, D_g)."""
        return self.cell(h + self.project(z.view(-1, self.z_channels, *self.size)))


class Encoder(nn.Module):
    """Bottom-up: x (B, C, H, W) -> one activation per resolution, top-down order (1x1 first)."""

    def __init__(self, channels: int, sizes: list[tuple[int, int]], widths: list[int], cells: int, cond_dim: int):
        super().__init__()
        self.sizes = sizes
        up = list(zip(reversed(sizes), reversed(widths)))  # full size first
        self.stem = _conv(channels, up[0][1], 3)
        self.stages = nn.ModuleList(
            nn.Sequential(*[Cell(w, w, residual=True, scale=1 / math.sqrt(cells * len(sizes))) for _ in range(cells)])
            for _, w in up
        )
        # change of width between a stage and the next (coarser) one
        self.bridges = nn.ModuleList(_conv(a, b, 1) for (_, a), (_, b) in zip(up[:-1], up[1:]))
        self.label = nn.Linear(cond_dim, widths[0]) if cond_dim else None

    def forward(self, x: Tensor, y_onehot: Tensor | None) -> list[Tensor]:
        h, acts = self.stem(x), []
        for i, stage in enumerate(self.stages):
            h = stage(h)
            acts.append(h)
            if i < len(self.bridges):
                h = self.bridges[i](F.adaptive_avg_pool2d(h, self.sizes[len(self.sizes) - 2 - i]))
        if self.label is not None:
            acts[-1] = acts[-1] + self.label(y_onehot.to(h.dtype))[:, :, None, None]
        return acts[::-1]


class Decoder(nn.Module):
    """Top-down: groups per resolution, then a 1x1 conv to the likelihood's parameters."""

    def __init__(self, config: ModelConfig, sizes, widths, groups, num_params: int):
        super().__init__()
        n = sum(groups)
        scale = 1 / math.sqrt(n)
        self.sizes, self.widths = sizes, widths
        self.start = nn.Parameter(torch.zeros(1, widths[0], *sizes[0]))
        self.label = nn.Linear(config.num_classes, widths[0]) if config.num_classes else None
        self.stage_of: list[int] = []  # the resolution of each group, top first
        layers = []
        for r, (size, width, count) in enumerate(zip(sizes, widths, groups)):
            for _ in range(count):
                top = not layers
                z_ch = config.latent_dim if top else config.group_channels
                layers.append(LatentGroup(width, z_ch, size, standard=top, scale=scale))
                self.stage_of.append(r)
        self.groups = nn.ModuleList(layers)
        self.bridges = nn.ModuleList(_conv(a, b, 1) for a, b in zip(widths[:-1], widths[1:]))
        self.num_params, self.data_shape = num_params, list(config.data_shape)
        self.out = _conv(widths[-1], num_params * config.data_shape[0], 1)

    def initial(self, batch: int, y_onehot: Tensor | None) -> Tensor:
        h = self.start.expand(batch, -1, -1, -1)
        return h if self.label is None else h + self.label(y_onehot.to(h.dtype))[:, :, None, None]

    def to_stage(self, h: Tensor, r: int, target: int) -> Tensor:
        """Walk h from resolution r to `target`: upsample (nearest) and change width."""
        while r < target:
            h = self.bridges[r](F.interpolate(h, size=self.sizes[r + 1], mode="nearest"))
            r += 1
        return h

    def params(self, h: Tensor, r: int) -> Tensor:
        h = self.to_stage(h, r, len(self.sizes) - 1)
        return self.out(F.gelu(h)).view(h.shape[0], self.num_params, *self.data_shape)


def check_layout(groups: list[int], widths: list[int], sizes: list[tuple[int, int]]) -> None:
    names = ", ".join(f"{h}x{w}" for h, w in sizes)
    for what, values in (("--groups", groups), ("--widths", widths)):
        if len(values) != len(sizes):
            raise VaekitError(
                f"{what} needs one number per resolution, top-down ({names}): {len(sizes)} numbers, not {len(values)}"
            )
    if groups[0] != 1:
        raise VaekitError(f"the hierarchy has exactly one top (1x1) group: --groups must start with 1, not {groups[0]}")


class HierarchicalNets(nn.Module):
    """The bottom-up and top-down networks, sized from the images."""

    def __init__(self, config: ModelConfig, likelihood: Likelihood):
        super().__init__()
        shape = config.data_shape
        if len(shape) != 3:
            raise VaekitError(f"the hierarchical VAE models images (C, H, W), not examples of shape {tuple(shape)}")
        if config.heads:
            raise VaekitError("the hierarchical VAE models images; a table needs --model vae")
        self.sizes = resolutions(shape[1], shape[2])
        groups = config.groups or default_groups(self.sizes)
        widths = config.widths or default_widths(self.sizes)
        check_layout(groups, widths, self.sizes)
        self.encoder = Encoder(shape[0], self.sizes, widths, config.cells, config.num_classes)
        self.decoder = Decoder(config, self.sizes, widths, groups, likelihood.num_params)


class HierarchicalVAE(VAE):
    """A VAE whose latent code is a top-down hierarchy of groups (see the module docstring).
    The interface is the flat VAE's: encode gives the top group's posterior, decode a top code's
    images; forward, the KL per dimension and the importance weights cover every group."""

    def __init__(self, nets: HierarchicalNets, likelihood: Likelihood, config: ModelConfig):
        super().__init__(nets.encoder, nets.decoder, likelihood, StandardNormal(config.latent_dim), config)

    @classmethod
    def from_config(cls, config: ModelConfig) -> HierarchicalVAE:
        likelihood = build_likelihood(config)
        return cls(HierarchicalNets(config, likelihood), likelihood, config)

    @property
    def group_dims(self) -> list[int]:
        """Latent numbers per group, top first."""
        return [g.dim for g in self.decoder.groups]

    @property
    def noise_dim(self) -> int:
        return sum(self.group_dims)

    def _walk(
        self,
        n: int,
        y_onehot: Tensor | None,
        acts: list[Tensor] | None,
        noise: Tensor,
        *,
        inferred: int,
        temperatures: list[float] | None = None,
        top: Tensor | None = None,
    ) -> tuple[Tensor, list[GroupPass]]:
        """The top-down pass -> (likelihood parameters (n, P, *data_shape), one GroupPass per group).
        The first `inferred` groups take z from the posterior (acts: the bottom-up activations),
        the others from the prior at their temperature; noise (n, noise_dim); top: a given top code."""
        temperatures = temperatures or [1.0] * len(self.group_dims)
        eps = noise.split(self.group_dims, dim=1)

        def draw(g: int, q: DiagonalGaussian | None, p: DiagonalGaussian) -> Tensor:
            if g == 0 and top is not None:
                return top
            return q.rsample(eps=eps[g]) if q is not None else p.mu + temperatures[g] * p.std * eps[g]

        h, r, passes = self._descend(n, y_onehot, acts, draw, inferred=inferred)
        return self.decoder.params(h, r), passes

    def code_pass(
        self, x: Tensor | None, n: int, choose: Chooser, *, params: bool = True
    ) -> tuple[Tensor | None, list[GroupPass]]:
        """The top-down pass with each group's z_g given by choose(g, q, p), q = q(z_g | x, z_<g)
        (None without x) and p = p(z_g | z_<g) computed from the z_<g chosen before (see
        VAE.code_pass): what bits-back coding over every group walks (vaekit.core.coding)."""
        acts = None if x is None else self.encoder(x, None)
        h, r, passes = self._descend(n, None, acts, choose, inferred=len(self.group_dims))
        return (self.decoder.params(h, r) if params else None), passes

    def _descend(
        self, n: int, y_onehot: Tensor | None, acts: list[Tensor] | None, choose: Chooser, *, inferred: int
    ) -> tuple[Tensor, int, list[GroupPass]]:
        """The top-down walk: group g's q (from acts, for the first `inferred` groups) and p, its
        z = choose(g, q, p), h advanced by z -> (h, its resolution, one GroupPass per group)."""
        dec = self.decoder
        h, r, passes = dec.initial(n, y_onehot), 0, []
        for g, group in enumerate(dec.groups):
            h, r = dec.to_stage(h, r, dec.stage_of[g]), dec.stage_of[g]
            q, p, h = group.laws(h, acts[r] if acts is not None and g < inferred else None)
            z = choose(g, q, p)
            h = group.advance(h, z)
            passes.append(GroupPass(q, p, z))
        return h, r, passes

    def _noise(self, n: int, generator: torch.Generator | None, like: Tensor) -> Tensor:
        return torch.randn(n, self.noise_dim, generator=generator, device=like.device, dtype=like.dtype)

    def encode(self, x: Tensor, y: Tensor | None = None) -> DiagonalGaussian:
        """x (B, C, H, W) -> q(z_top | x), mu and logvar (B, latent_dim)."""
        y1 = self._onehot(y)
        acts = self.encoder(x, y1)
        return self.decoder.groups[0].posterior_of(self.decoder.initial(x.shape[0], y1), acts[0])

    def decode_params(
        self,
        z: Tensor,
        y: Tensor | None = None,
        *,
        temperatures: list[float] | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """A top code z (B, latent_dim) -> likelihood parameters (B, P, C, H, W). The lower groups
        are drawn from their priors at `temperatures` (one per lower group; default 0: the
        prior means, so a code always decodes to the same image)."""
        lower = [0.0] * (len(self.group_dims) - 1) if temperatures is None else list(temperatures)
        if len(lower) != len(self.group_dims) - 1:
            raise VaekitError(f"give one temperature per lower group ({len(self.group_dims) - 1}), not {len(lower)}")
        noise = self._noise(z.shape[0], generator, z) if any(lower) else z.new_zeros(z.shape[0], self.noise_dim)
        params, _ = self._walk(z.shape[0], self._onehot(y), None, noise, inferred=0, temperatures=[1.0, *lower], top=z)
        return params

    def decode(self, z: Tensor, y: Tensor | None = None, **kwargs) -> Distribution:
        return self.likelihood(self.decode_params(z, y, **kwargs))

    def decode_mean(self, z: Tensor, y: Tensor | None = None, **kwargs) -> Tensor:
        return self.likelihood.mean(self.decode_params(z, y, **kwargs))

    def reconstruction(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """E[x | every group at its posterior mean]: (B, C, H, W) -> (B, C, H, W)."""
        y1 = self._onehot(y)
        zeros = x.new_zeros(x.shape[0], self.noise_dim)  # eps = 0: z_g = the mean of q(z_g | x, z_<g)
        params, _ = self._walk(x.shape[0], y1, self.encoder(x, y1), zeros, inferred=len(self.group_dims))
        return self.likelihood.mean(params)

    def forward(
        self,
        x: Tensor,
        y: Tensor | None = None,
        *,
        target: Tensor | None = None,
        generator: torch.Generator | None = None,
        eps: Tensor | None = None,
    ) -> ModelOutput:
        """Every group from its posterior. eps (B, noise_dim): the noise of every group, top first."""
        y1 = self._onehot(y)
        noise = self._noise(x.shape[0], generator, x) if eps is None else eps.to(x.dtype)
        params, passes = self._walk(x.shape[0], y1, self.encoder(x, y1), noise, inferred=len(self.group_dims))
        px = self.likelihood(params)
        recon = -px.log_prob(x if target is None else target)
        kl_per_dim = torch.cat([s.q.kl_per_dim(s.p) for s in passes], dim=1)  # (B, noise_dim)
        return ModelOutput(passes[0].q, passes[0].z, px, recon, kl_per_dim, groups=self.group_dims)

    def log_importance_weights(
        self,
        x: Tensor,
        y: Tensor | None = None,
        *,
        k: int,
        generator: torch.Generator | None = None,
        inferred: int | None = None,
    ) -> Tensor:
        """log w = log p(x|z) + sum_g [log p(z_g|z_<g) - log q(z_g|x, z_<g)] for k draws: (k, B).
        inferred: only the top `inferred` groups from q, the rest drawn from their priors (whose
        terms cancel): the bound L^{>k} of Havtorn et al. 2021."""
        inferred = len(self.group_dims) if inferred is None else inferred
        y1 = self._onehot(y)
        acts = self.encoder(x, y1)
        per_pass = max(1, PASS_ROWS // x.shape[0])  # draws per top-down pass: bounds the activations' memory
        return torch.cat(
            [
                self._log_weights(x, y1, acts, min(per_pass, k - start), generator, inferred)
                for start in range(0, k, per_pass)
            ]
        )

    def _log_weights(self, x, y1, acts, k: int, generator, inferred: int) -> Tensor:
        b = x.shape[0]
        acts = [a.repeat(k, 1, 1, 1) for a in acts]  # row i * B + j: draw i of example j
        y_rep = None if y1 is None else y1.repeat(k, 1)
        params, passes = self._walk(k * b, y_rep, acts, self._noise(k * b, generator, x), inferred=inferred)
        log_w = self.likelihood(params).log_prob(x.repeat(k, *[1] * (x.ndim - 1)))
        for s in passes[:inferred]:
            log_w = log_w + s.p.log_prob(s.z) - s.q.log_prob(s.z)
        return log_w.view(k, b)
