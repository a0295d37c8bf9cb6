"""What a trained model is for: sample, reconstruct, interpolate, traverse, encode.

All functions take the model first, run without gradients in eval mode, and return
tensors on the CPU. Images are likelihood means E[x|z], clipped to [0, 1] for image data.
Embedding and interpolation use the posterior mean (docs/design.md).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..errors import VaekitError
from .modes import in_eval_mode

if TYPE_CHECKING:  # for annotations: model.py imports this module for its methods
    from .model import VAE


def _labels(model: VAE, y, n: int) -> Tensor | None:
    if model.config.num_classes == 0:
        if y is not None:
            raise VaekitError("this model is not conditional; it takes no --label")
        return None
    if y is None:
        raise VaekitError(f"this model is conditional: pass a label in 0..{model.config.num_classes - 1}")
    y = torch.as_tensor(y, dtype=torch.long).reshape(-1)
    return y.expand(n) if y.numel() == 1 else y


def _images(model: VAE, z: Tensor, y: Tensor | None, **lower) -> Tensor:
    """lower: a hierarchical model's temperatures and generator for its lower groups."""
    return _shown(model, model.decode_mean(z.to(model.device), None if y is None else y.to(model.device), **lower))


def _shown(model: VAE, out: Tensor) -> Tensor:
    """Decoded means as we show them: images clipped to [0, 1], on the CPU."""
    if len(model.data_shape) == 3:
        out = out.clamp(0.0, 1.0)
    return out.float().cpu()


def lower_groups(model: VAE, temperature: float, temperatures, seed: int | None) -> dict:
    """What decoding a top code takes for a hierarchical model's lower groups: their temperatures
    (default: all at `temperature`, so the images are the model's samples) and a generator."""
    if model.group_dims is None:
        if temperatures:
            raise VaekitError(
                "per-group temperatures are for a hierarchical VAE (--model hvae); this model has one group"
            )
        return {}
    lower = [temperature] * (len(model.group_dims) - 1) if not temperatures else [float(t) for t in temperatures]
    if not all(math.isfinite(t) and t >= 0 for t in lower):
        raise VaekitError(f"group temperatures must be finite and at least 0, not {lower}")
    gen = torch.Generator(device=model.device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed + 1)
    return {"temperatures": lower, "generator": gen}


@in_eval_mode
def sample(
    model,
    n: int,
    *,
    temperature: float = 1.0,
    y=None,
    seed: int | None = None,
    prior=None,
    return_z: bool = False,
    temperatures=None,
):
    """n new examples decoded from z ~ prior (N(0, I) unless a fitted prior is given);
    temperature scales the prior's standard deviation. A hierarchical model draws its lower
    groups too, at `temperatures` (one per lower group; default: all at `temperature`).
    -> (n, *data_shape)"""
    if n < 1:
        raise VaekitError("the number of samples must be at least 1")
    if not (math.isfinite(temperature) and temperature > 0):
        raise VaekitError(f"temperature must be a positive finite number, not {temperature}")
    gen = None if seed is None else torch.Generator().manual_seed(seed)
    prior = prior or model.prior
    lower = lower_groups(model, temperature, temperatures, seed)
    z = prior.sample(n, temperature=temperature, generator=gen, device=model.device)
    y = _labels(model, y, n)
    x = _images(model, z, y, **lower)
    return (x, z.cpu()) if return_z else x


@in_eval_mode
def draw(model, n: int, *, temperature: float = 1.0, y=None, seed: int = 0, prior=None) -> Tensor:
    """n examples drawn from the model itself: z from the prior, then x ~ p(x|z), not its mean
    (a table's categories drawn from their softmax, its numbers from their Gaussians) -> (n, *data_shape)."""
    if n < 1:
        raise VaekitError("the number of samples must be at least 1")
    gen = torch.Generator().manual_seed(seed)
    z = (prior or model.prior).sample(n, temperature=temperature, generator=gen, device=model.device)
    y = _labels(model, y, n)
    px = model.decode(z, None if y is None else y.to(model.device))
    if "generator" in inspect.signature(px.sample).parameters:
        return px.sample(generator=torch.Generator(device=model.device).manual_seed(seed + 1)).float().cpu()
    with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []):
        torch.manual_seed(seed + 1)
        return px.sample().float().cpu()


@in_eval_mode
def decode(model: VAE, z: Tensor, y=None) -> Tensor:
    """The images of given latent codes: z (B, D_z) -> E[x|z] (B, *data_shape)."""
    z = torch.as_tensor(z, dtype=torch.float32)
    if z.ndim != 2 or z.shape[1] != model.latent_dim:
        raise VaekitError(f"latent codes must have shape (B, {model.latent_dim}), not {tuple(z.shape)}")
    return _images(model, z, _labels(model, y, z.shape[0]))


@in_eval_mode
def reconstruct(model: VAE, x: Tensor, y=None) -> Tensor:
    """Decode the posterior mean of each x (of every group, in a hierarchical model):
    (B, *data_shape) -> (B, *data_shape)."""
    y = _labels(model, y, x.shape[0])
    dev = model.device
    return _shown(model, model.reconstruction(x.to(dev), None if y is None else y.to(dev)))


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation between vectors a, b (D,) at fractions t (T,) -> (T, D).
    Falls back to lerp where the angle is (numerically) zero."""
    a_n, b_n = a / a.norm().clamp_min(1e-12), b / b.norm().clamp_min(1e-12)
    omega = torch.arccos((a_n * b_n).sum().clamp(-1.0, 1.0))
    t = t[:, None]
    if float(omega.abs()) < 1e-6:
        return (1 - t) * a + t * b
    so = torch.sin(omega)
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


def lerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    t = t[:, None]
    return (1 - t) * a + t * b


INTERPOLATIONS = {"lerp": lerp, "slerp": slerp}


@in_eval_mode
def interpolate(
    model, xa: Tensor, xb: Tensor, *, steps: int = 10, method: str = "lerp", ya=None, yb=None, return_z: bool = False
):
    """Walk between the posterior means of two examples xa, xb (*data_shape) -> (steps, *data_shape).
    The first and last images are the reconstructions of xa and xb (for a hierarchical model: the
    images of their top codes, the lower groups at their prior means)."""
    if method not in INTERPOLATIONS:
        raise VaekitError(f"unknown interpolation {method!r}; choose lerp or slerp")
    if steps < 2:
        raise VaekitError("interpolation needs at least 2 steps")
    dev = model.device
    ya, yb = _labels(model, ya, 1), _labels(model, yb, 1)
    za = model.encode(xa[None].to(dev), None if ya is None else ya.to(dev)).mode()[0]
    zb = model.encode(xb[None].to(dev), None if yb is None else yb.to(dev)).mode()[0]
    t = torch.linspace(0, 1, steps, device=dev)
    z = INTERPOLATIONS[method](za, zb, t)  # (steps, D)
    y = None if ya is None else torch.where(t.cpu() < 0.5, ya, yb)
    x = _images(model, z, y)
    return (x, z.cpu()) if return_z else x


@in_eval_mode
def traverse(
    model,
    *,
    dims: Iterable[int] | None = None,
    span: float = 3.0,
    steps: int = 9,
    x: Tensor | None = None,
    y=None,
) -> Tensor:
    """Vary one latent dimension at a time from -span to +span around a base code (the
    posterior mean of x, or the prior mean 0), others fixed -> (len(dims), steps, *data_shape)."""
    d_z = model.latent_dim
    dims = list(range(min(d_z, 10)) if dims is None else dims)
    bad = [d for d in dims if not 0 <= d < d_z]
    if bad:
        raise VaekitError(f"latent dimensions {bad} do not exist; this model has {d_z} (0..{d_z - 1})")
    if steps < 2:
        raise VaekitError("a traversal needs at least 2 steps")
    dev = model.device
    y1 = _labels(model, y, 1)
    if x is None:
        base = torch.zeros(d_z, device=dev)
    else:
        base = model.encode(x[None].to(dev), None if y1 is None else y1.to(dev)).mode()[0]
    values = torch.linspace(-span, span, steps, device=dev)
    z = base.repeat(len(dims), steps, 1)  # (len(dims), steps, D)
    for row, d in enumerate(dims):
        z[row, :, d] = base[d] + values
    yy = None if y1 is None else y1.expand(len(dims) * steps)
    out = _images(model, z.reshape(-1, d_z), yy)
    return out.reshape(len(dims), steps, *model.data_shape)


@in_eval_mode
def encode_dataset(model: VAE, dataset, *, batch_size: int = 1024) -> dict[str, Tensor]:
    """Posterior parameters for every example: {"mu": (N, D), "logvar": (N, D)[, "y": (N,)]}."""
    mus, logvars = [], []
    dev = model.device
    for x, y in dataset.batches(batch_size):
        q = model.encode(x.to(dev), None if (y is None or model.config.num_classes == 0) else y.to(dev))
        mus.append(q.mode().float().cpu())
        logvars.append(q.logvar.float().cpu())
    out = {"mu": torch.cat(mus), "logvar": torch.cat(logvars)}
    if dataset.y is not None:
        out["y"] = dataset.y.cpu()
    return out
