"""How unusual one example looks to the model: the explorer's anomaly score.

It lives in one function so that a better score (a calibrated one, importance-sampled
likelihoods, ...) can replace it without touching the server or the page.
"""

from __future__ import annotations

import torch
from torch import Tensor

SCORE_NAME = "negative ELBO"
SCORE_UNITS = "nats/example"
SCORE_HELP = (
    "recon + KL for this image (an upper bound on -log p(x)); higher means the model finds it less typical. "
    "The percentile compares it with test-set images."
)


@torch.no_grad()
def anomaly_score(model, x: Tensor, y: Tensor | None = None, *, samples: int = 4, seed: int = 0,
                  batch_size: int = 512) -> Tensor:  # fmt: skip
    """Per-example negative ELBO = recon + KL in nats: x (B, *data_shape) -> (B,).

    The recon term is averaged over `samples` draws z ~ q(z|x) from a generator seeded with
    `seed`, so the same image always gets the same score. For an AE the KL term is zero and
    this is the reconstruction's negative log-likelihood."""
    was_training = model.training
    model.eval()
    dev = model.device
    gen = torch.Generator(device=dev).manual_seed(seed)
    out = []
    try:
        for i in range(0, x.shape[0], batch_size):
            xb = x[i : i + batch_size].to(dev)
            yb = None if y is None else y[i : i + batch_size].to(dev)
            total = torch.zeros(xb.shape[0], dtype=torch.float64, device=dev)
            for _ in range(samples):
                o = model(xb, yb, generator=gen)
                total += (o.recon + o.kl).double()
            out.append((total / samples).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


def percentile_rank(value: float, reference: Tensor) -> float:
    """Percentage of reference values below `value` (ties count half): 0..100."""
    below = float((reference < value).double().mean())
    ties = float((reference == value).double().mean())
    return 100.0 * (below + 0.5 * ties)
