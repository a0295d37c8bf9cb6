"""The objective's value on a whole dataset, with fixed noise: what validation measures every
epoch, and the test figure a finished run reports."""

from __future__ import annotations

import torch

from ..config import Corruption
from ..core.modes import evaluating
from ..core.objectives import Objective
from ..data.corruption import corrupt
from ..data.datasets import Dataset
from . import distributed

EVAL_BATCH = 256  # keeps a conv model's evaluation activations well below the training data's size


def evaluate_loss(
    model,
    data: Dataset,
    objective: Objective,
    *,
    seed: int,
    corruption: Corruption | None = None,
    clip: tuple[float, float] | None = (0.0, 1.0),
    batch_size: int = EVAL_BATCH,
) -> dict[str, float]:
    """Mean loss, recon and KL (nats per example) over a dataset, with seeded noise. The loss is
    the objective once its schedules have run their course (recon + beta * KL; free bits per
    dimension over the whole set; beta * |KL - C| at the final capacity C), so the best epoch is
    judged by what training aims at, not simply by the least KL.

    The noise (latent and corruption) is drawn for each global batch in order, and under torchrun
    each rank evaluates its slice of every batch and the sums are all-reduced: any number of
    processes gives the numbers one process gives."""
    ctx = distributed.context()
    device = model.device
    gen = torch.Generator(device=device).manual_seed(seed)
    # (n, recon, KL per latent dimension...) summed over examples, in float64
    sums = torch.zeros(2 + model.noise_dim, dtype=torch.float64, device=device)
    with evaluating(model):
        for x, y in data.batches(batch_size):
            x_in = x if corruption is None else corrupt(x, corruption, generator=gen, clip=clip)
            eps = torch.randn(len(x), model.noise_dim, generator=gen, device=device) if model.noisy else None
            mine = distributed.shard_slice(len(x), ctx)
            x, x_in = x[mine], x_in[mine]
            y = None if y is None else y[mine]
            eps = None if eps is None else eps[mine]
            if len(x) == 0:
                continue
            out = model(x_in, y, target=x, eps=eps)
            sums[0] += len(x)
            sums[1] += out.recon.sum().double()
            sums[2:] += out.kl_per_dim.sum(0).double()
    distributed.all_reduce_sum_(sums, ctx)
    n = max(float(sums[0]), 1.0)
    recon, kl_per_dim = sums[1] / n, sums[2:] / n  # (), (D,)
    loss = objective.final_loss(recon[None], kl_per_dim[None], model.group_dims)
    recon_f, kl = float(recon), float(kl_per_dim.sum())
    return {"loss": float(loss), "recon": recon_f, "kl": kl, "nelbo": recon_f + kl}
