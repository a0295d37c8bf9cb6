"""A table row as one vector, and p(row | z) over it: the mathematics of the tabular likelihood.

The encoded row (vaekit.data.tables builds it from a table and reads it back) holds, for each
column in order, its values and then one presence flag (1 observed, 0 missing):

  gaussian        [t, flag]           t: the column's transformed value (0 where missing)
  bernoulli       [b, flag]           b in {0, 1} (0 where missing)
  categorical:K   [one-hot K, flag]   all zeros where missing

The decoder emits per row: gaussian 1 value (the mean of t), bernoulli 1 (a logit),
categorical:K K logits. -log p(row | z) sums the heads' terms over the observed cells only, so a
missing cell is neither reconstructed nor penalised; the flags themselves are inputs to the
encoder, not data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.distributions import Distribution
from torch.nn import functional as F

from ..errors import VaekitError

HEAD_KINDS = ("gaussian", "bernoulli", "categorical")
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@dataclass(frozen=True)
class Head:
    kind: str
    width: int  # values in the encoded row: K for categorical:K, else 1
    start: int  # index of the first value in the encoded row; the flag follows the values
    param: int  # index of the first decoder parameter

    @property
    def flag(self) -> int:
        return self.start + self.width


def parse_head(spec: str) -> tuple[str, int]:
    """ "gaussian" -> ("gaussian", 1); "categorical:4" -> ("categorical", 4)."""
    kind, _, k = str(spec).partition(":")
    if kind in ("gaussian", "bernoulli") and not k:
        return kind, 1
    if kind == "categorical" and k.isdigit() and int(k) >= 2:
        return kind, int(k)
    raise VaekitError(f"unknown table column head {spec!r}; use gaussian, bernoulli or categorical:K with K >= 2")


class TableLayout:
    """Where each column's values, flag and decoder parameters sit; index tensors for the
    vectorised likelihood (built once per device)."""

    def __init__(self, heads: list[Head]):
        if not heads:
            raise VaekitError("a table needs at least one column")
        self.heads = heads
        self.data_dim = heads[-1].flag + 1
        self.num_params = sum(h.width for h in heads)
        self._index: dict[torch.device, dict[str, Tensor]] = {}

    @classmethod
    def parse(cls, specs: list[str]) -> TableLayout:
        heads, start, param = [], 0, 0
        for spec in specs:
            kind, width = parse_head(spec)
            heads.append(Head(kind, width, start, param))
            start, param = start + width + 1, param + width
        return cls(heads)

    def of(self, kind: str) -> list[int]:
        return [i for i, h in enumerate(self.heads) if h.kind == kind]

    @property
    def gaussian(self) -> list[int]:
        return self.of("gaussian")

    def index(self, device: torch.device) -> dict[str, Tensor]:
        """Long tensors on `device`: per kind the heads (h), values (v), flags (f) and parameters (p);
        categorical ones are (n_cat, K_max), padded with the index one past the end (data_dim /
        num_params), where callers append a neutral column."""
        if device not in self._index:
            ix: dict[str, list] = {}
            for kind in ("gaussian", "bernoulli"):
                hs = [self.heads[i] for i in self.of(kind)]
                ix[f"{kind}.h"] = self.of(kind)
                ix[f"{kind}.v"] = [h.start for h in hs]
                ix[f"{kind}.f"] = [h.flag for h in hs]
                ix[f"{kind}.p"] = [h.param for h in hs]
            cats = [self.heads[i] for i in self.of("categorical")]
            k_max = max((h.width for h in cats), default=1)
            pad = lambda first, end, h: [first + j if j < h.width else end for j in range(k_max)]  # noqa: E731
            ix["categorical.h"] = self.of("categorical")
            ix["categorical.f"] = [h.flag for h in cats]
            ix["categorical.v"] = [pad(h.start, self.data_dim, h) for h in cats] or torch.zeros(0, k_max)
            ix["categorical.p"] = [pad(h.param, self.num_params, h) for h in cats] or torch.zeros(0, k_max)
            self._index[device] = {k: torch.as_tensor(v, dtype=torch.long, device=device) for k, v in ix.items()}
        return self._index[device]

    def flags(self, x: Tensor) -> Tensor:
        """(B, D) encoded rows -> (B, H) presence of each column's cell."""
        return x[:, [h.flag for h in self.heads]]

    def value_mask(self, x: Tensor) -> Tensor:
        """(B, D) -> (B, D): 1 on the values of observed cells, 0 on missing cells and on flags."""
        mask = torch.zeros_like(x)
        for h in self.heads:
            mask[:, h.start : h.flag] = x[:, h.flag : h.flag + 1]
        return mask


class TabularDistribution(Distribution):
    """p(row | z) for a batch: params (B, num_params) from the decoder, sigma (n_gaussian,) the
    learned per-column scale. Batch shape (B,), event shape (data_dim,)."""

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, params: Tensor, layout: TableLayout, sigma: Tensor):
        self.params, self.layout, self.sigma = params, layout, sigma
        super().__init__(batch_shape=params.shape[:1], event_shape=(layout.data_dim,), validate_args=False)

    def _ix(self) -> dict[str, Tensor]:
        return self.layout.index(self.params.device)

    def _cat_logits(self) -> Tensor:
        """(B, n_cat, K_max) log-probabilities, -inf on the padding of shorter categoricals."""
        ix = self._ix()
        pad = torch.full_like(self.params[:, :1], -math.inf)
        logits = torch.cat([self.params, pad], dim=1)[:, ix["categorical.p"]]
        return F.log_softmax(logits, dim=-1)

    def column_log_prob(self, x: Tensor) -> Tensor:
        """log p(cell | z) of each column, 0 for a missing cell: (B, D) -> (B, H)."""
        ix, p = self._ix(), self.params
        out = torch.zeros(x.shape[0], len(self.layout.heads), dtype=p.dtype, device=p.device)
        if len(ix["gaussian.h"]):
            t, loc = x[:, ix["gaussian.v"]], p[:, ix["gaussian.p"]]
            lp = -0.5 * ((t - loc) / self.sigma) ** 2 - self.sigma.log() - HALF_LOG_2PI
            out[:, ix["gaussian.h"]] = lp * x[:, ix["gaussian.f"]]
        if len(ix["bernoulli.h"]):
            b, logit = x[:, ix["bernoulli.v"]], p[:, ix["bernoulli.p"]]
            lp = -F.binary_cross_entropy_with_logits(logit, b, reduction="none")
            out[:, ix["bernoulli.h"]] = lp * x[:, ix["bernoulli.f"]]
        if len(ix["categorical.h"]):
            onehot = torch.cat([x, torch.zeros_like(x[:, :1])], dim=1)[:, ix["categorical.v"]]  # (B, n_cat, K_max)
            lp = self._cat_logits().gather(-1, onehot.argmax(-1, keepdim=True)).squeeze(-1)
            out[:, ix["categorical.h"]] = lp * x[:, ix["categorical.f"]]
        return out

    def log_prob(self, x: Tensor) -> Tensor:  # (B, D) -> (B,)
        return self.column_log_prob(x).sum(-1)

    def _layout_values(self, gauss: Tensor, bern: Tensor, cat: Tensor) -> Tensor:
        """Per-kind values -> (B, D) encoded rows with every flag 1. gauss, bern: (B, n_kind);
        cat: (B, n_cat, K_max) per-category values (probabilities or one-hot)."""
        ix = self._ix()
        out = torch.zeros(
            self.params.shape[0], self.layout.data_dim + 1, dtype=self.params.dtype, device=self.params.device
        )  # one spare column takes the categorical padding
        out[:, [h.flag for h in self.layout.heads]] = 1.0
        out[:, ix["gaussian.v"]] = gauss
        out[:, ix["bernoulli.v"]] = bern
        if len(ix["categorical.h"]):
            out[:, ix["categorical.v"].flatten()] = cat.flatten(1)
        return out[:, :-1]

    @property
    def mean(self) -> Tensor:
        """E[row | z]: Gaussian means, Bernoulli probabilities, categorical probabilities; (B, D)."""
        ix, p = self._ix(), self.params
        return self._layout_values(
            p[:, ix["gaussian.p"]], torch.sigmoid(p[:, ix["bernoulli.p"]]), self._cat_logits().exp()
        )

    def sample(self, sample_shape: torch.Size = torch.Size(), generator: torch.Generator | None = None) -> Tensor:
        """One draw of every cell: (B, D) encoded rows (sample_shape must be empty)."""
        if tuple(sample_shape):
            raise VaekitError("a table's likelihood draws one row per z; repeat z for more")
        ix, p = self._ix(), self.params
        with torch.no_grad():
            loc = p[:, ix["gaussian.p"]]
            gauss = loc + self.sigma * torch.randn(loc.shape, generator=generator, device=p.device, dtype=p.dtype)
            prob = torch.sigmoid(p[:, ix["bernoulli.p"]])
            bern = (torch.rand(prob.shape, generator=generator, device=p.device, dtype=p.dtype) < prob).to(p.dtype)
            logp = self._cat_logits()  # Gumbel-max: argmax(log p + Gumbel noise) ~ Categorical(p)
            u = torch.rand(logp.shape, generator=generator, device=p.device, dtype=p.dtype).clamp(1e-12, 1 - 1e-7)
            pick = (logp - torch.log(-torch.log(u))).argmax(-1)
            cat = F.one_hot(pick, logp.shape[-1]).to(p.dtype) if logp.shape[1] else logp
            return self._layout_values(gauss, bern, cat)
