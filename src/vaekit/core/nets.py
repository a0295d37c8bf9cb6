"""Encoders and decoders, sized from the shape of one example (no hard-coded 28x28).

Encoders map x (B, *data_shape) [+ one-hot label (B, K)] to (B, out_dim).
Decoders map z (B, latent_dim) [+ one-hot label] to likelihood parameters (B, P, *data_shape).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import VaekitError

MAX_AUTO_CHANNELS = 256
MLP_MAX_VALUES = 1024  # small images (up to 32x32 grey) with a Bernoulli likelihood get the MLP by default


def default_arch(data_shape: list[int], likelihood: str) -> str:
    """What --arch auto means: mlp for vectors; conv for images, except small ones (at most
    MLP_MAX_VALUES values: MNIST, Fashion-MNIST, digits) under the Bernoulli likelihood, where the
    MLP (512-256) reached a better -ELBO per epoch than the conv net (32/64) and costs a third to
    a fifth of its time per epoch on a CPU (BENCHMARKS.md). Under the discretized likelihoods the
    conv net reached the better NLL on the same images (docs/evaluation.md), and larger images
    need its locality (an MLP's first layer grows with the pixels), so those keep it."""
    if len(data_shape) != 3:
        return "mlp"
    small = math.prod(data_shape) <= MLP_MAX_VALUES
    return "mlp" if small and likelihood == "bernoulli" else "conv"


def auto_channels(height: int, width: int) -> list[int]:
    """Stride-2 stages until the feature map is at most 7 pixels across: 28 -> [32, 64] (7x7),
    8 -> [32] (4x4), 64 -> [32, 64, 128, 256] (4x4)."""
    channels, size = [], max(height, width)
    while size > 7 or not channels:
        channels.append(min(32 * 2 ** len(channels), MAX_AUTO_CHANNELS))
        size = math.ceil(size / 2)
    return channels


def conv_shapes(data_shape: list[int], channels: list[int]) -> list[tuple[int, int, int]]:
    """(C, H, W) after each stride-2 stage, input first: a 3x3/stride-2/pad-1 conv maps H to ceil(H/2)."""
    c, h, w = data_shape
    shapes = [(c, h, w)]
    for ch in channels:
        h, w = math.ceil(h / 2), math.ceil(w / 2)
        shapes.append((ch, h, w))
    return shapes


def _with_label(h: Tensor, y_onehot: Tensor | None) -> Tensor:
    return h if y_onehot is None else torch.cat([h, y_onehot.to(h.dtype)], dim=1)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    def __init__(self, data_shape: list[int], hidden: list[int], out_dim: int, cond_dim: int = 0):
        super().__init__()
        self.body = _mlp([math.prod(data_shape) + cond_dim, *hidden])
        self.head = nn.Linear(hidden[-1] if hidden else math.prod(data_shape) + cond_dim, out_dim)

    def forward(self, x: Tensor, y_onehot: Tensor | None = None) -> Tensor:
        h = _with_label(x.flatten(1), y_onehot)  # (B, D [+K])
        return self.head(self.body(h))


class MLPDecoder(nn.Module):
    def __init__(
        self,
        data_shape: list[int],
        hidden: list[int],
        latent_dim: int,
        num_params: int,
        cond_dim: int = 0,
        out_shape: list[int] | None = None,
    ):
        super().__init__()
        # what the likelihood takes per example: (P, *data_shape), or its own layout (a table's)
        self.out_shape = tuple(out_shape) if out_shape is not None else (num_params, *data_shape)
        widths = list(reversed(hidden))
        self.body = _mlp([latent_dim + cond_dim, *widths])
        self.head = nn.Linear(widths[-1] if widths else latent_dim + cond_dim, math.prod(self.out_shape))

    def forward(self, z: Tensor, y_onehot: Tensor | None = None) -> Tensor:
        h = self.body(_with_label(z, y_onehot))
        return self.head(h).view(z.shape[0], *self.out_shape)  # (B, P, *data_shape) or (B, *out_shape)


class ConvEncoder(nn.Module):
    def __init__(self, data_shape: list[int], channels: list[int], out_dim: int, cond_dim: int = 0):
        super().__init__()
        shapes = conv_shapes(data_shape, channels)
        layers: list[nn.Module] = []
        for (c_in, _, _), (c_out, _, _) in zip(shapes[:-1], shapes[1:]):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(math.prod(shapes[-1]) + cond_dim, out_dim)

    def forward(self, x: Tensor, y_onehot: Tensor | None = None) -> Tensor:
        h = self.body(x).flatten(1)  # (B, C_last * h * w)
        return self.head(_with_label(h, y_onehot))


class ConvDecoder(nn.Module):
    """Mirror of ConvEncoder; output_padding picks the exact size at every stage, so odd
    sizes (7 -> 14 -> 28, or 5 -> 9) come back exactly."""

    def __init__(self, data_shape: list[int], channels: list[int], latent_dim: int, num_params: int, cond_dim: int = 0):
        super().__init__()
        shapes = conv_shapes(data_shape, channels)
        self.num_params, self.data_shape = num_params, list(data_shape)
        self.start_shape = shapes[-1]
        self.head = nn.Sequential(nn.Linear(latent_dim + cond_dim, math.prod(self.start_shape)), nn.ReLU())
        layers: list[nn.Module] = []
        stages = list(reversed(shapes))  # small -> large
        for i, ((c_in, h_in, w_in), (c_out, h_out, w_out)) in enumerate(zip(stages[:-1], stages[1:])):
            last = i == len(stages) - 2
            if last:
                c_out = num_params * c_out
            pad = (h_out - 2 * h_in + 1, w_out - 2 * w_in + 1)  # each 0 or 1
            layers.append(nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=pad))
            if not last:
                layers.append(nn.ReLU())
        self.body = nn.Sequential(*layers)

    def forward(self, z: Tensor, y_onehot: Tensor | None = None) -> Tensor:
        h = self.head(_with_label(z, y_onehot)).view(z.shape[0], *self.start_shape)
        out = self.body(h)  # (B, P * C, H, W)
        return out.view(z.shape[0], self.num_params, *self.data_shape)  # (B, P, C, H, W)


def build_networks(config, num_params: int, *, param_shape: list[int] | None = None) -> tuple[nn.Module, nn.Module]:
    """(encoder, decoder) for a ModelConfig; the encoder emits mu and logvar for a VAE, mu for an AE.
    param_shape: what the decoder emits per example when it is not (num_params, *data_shape)."""
    shape, latent = config.data_shape, config.latent_dim
    enc_out = 2 * latent if config.kind == "vae" else latent
    cond = config.num_classes
    arch = default_arch(shape, config.likelihood) if config.arch == "auto" else config.arch
    if arch == "mlp":
        if not config.hidden:
            raise VaekitError("the MLP needs at least one hidden layer (--hidden 512,256)")
        return (
            MLPEncoder(shape, config.hidden, enc_out, cond),
            MLPDecoder(shape, config.hidden, latent, num_params, cond, out_shape=param_shape),
        )
    if arch == "conv":
        if param_shape is not None and list(param_shape) != [num_params, *shape]:
            raise VaekitError("the conv architecture decodes images; this likelihood needs --arch mlp")
        if len(shape) != 3:
            raise VaekitError(
                f"the conv architecture needs images (C, H, W) but one example has shape {tuple(shape)}; use --arch mlp"
            )
        channels = config.channels or auto_channels(shape[1], shape[2])
        return (
            ConvEncoder(shape, channels, enc_out, cond),
            ConvDecoder(shape, channels, latent, num_params, cond),
        )
    raise VaekitError(f"unknown architecture {config.arch!r}; choose mlp or conv")


class PatchDiscriminator(nn.Module):
    """A patch discriminator for VAE-GAN training (Isola et al. 2017; Esser et al. 2021): stride-2
    3x3 convolutions with LeakyReLU (the encoder's stages, so any height, width and channel
    count works), then a 3x3 convolution to one logit per patch. x (B, C, H, W) ->
    (logits (B, 1, h, w), [features of each stage (B, c_i, h_i, w_i)]); the features are the
    learned similarity of Larsen et al. (2016)."""

    def __init__(self, data_shape: list[int], channels: list[int] | None = None):
        super().__init__()
        if len(data_shape) != 3:
            raise VaekitError(
                f"a patch discriminator needs images (C, H, W), not examples of shape {tuple(data_shape)}"
            )
        # half the encoder's widths (as the FD's classifier): D must stay cheap beside the VAE's step
        channels = channels or [max(8, c // 2) for c in auto_channels(data_shape[1], data_shape[2])]
        shapes = conv_shapes(data_shape, channels)
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.LeakyReLU(0.2))
            for (c_in, _, _), (c_out, _, _) in zip(shapes[:-1], shapes[1:])
        )
        self.head = nn.Conv2d(channels[-1], 1, 3, padding=1)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        features = []
        h = x
        for stage in self.stages:
            h = stage(h)
            features.append(h)
        return self.head(h), features
