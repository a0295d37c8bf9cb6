"""Decoder output -> p(x|z) as a torch Distribution whose log_prob sums over one example.

A likelihood is a small nn.Module (a learned sigma is a parameter). The decoder emits
`num_params` values per data dimension, laid out (B, P, *data_shape); the likelihood
turns them into a distribution with batch shape (B,) and event shape data_shape.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Distribution, Independent, Normal
from torch.nn import functional as F

from ..errors import VaekitError
from .tabular import TableLayout, TabularDistribution

# A learned sigma lives in log space and is clamped so exp() can neither overflow nor
# let the Gaussian collapse onto a training pixel (sigma >= 1e-3).
LOG_SIGMA_MIN, LOG_SIGMA_MAX = math.log(1e-3), math.log(1e3)


class Likelihood(nn.Module):
    name: str = ""
    num_params: int = 1
    # the closed interval x must lie in, or None for the whole real line
    support: tuple[float, float] | None = None
    # True: p(x|z) is a probability mass over a finite set (so -log p in bits/dim means what the
    # literature means); Bernoulli is discrete only on binary data, see is_discrete_on
    discrete: bool = False

    def __init__(self, data_shape: list[int]):
        super().__init__()
        self.data_shape = list(data_shape)

    def forward(self, params: Tensor) -> Distribution:  # params (B, *param_shape())
        raise NotImplementedError

    def param_shape(self) -> list[int]:
        """What the decoder emits per example: num_params values per data dimension."""
        return [self.num_params, *self.data_shape]

    def value_mask(self, x: Tensor) -> Tensor | None:
        """(B, *data_shape) weights of the values a reconstruction error should compare, or None
        for all of them (a table's missing cells and its presence flags are not values)."""
        return None

    def mean(self, params: Tensor) -> Tensor:
        """E[x|z], (B, *data_shape): what we show as "the" decoded image."""
        return self(params).mean

    def is_discrete_on(self, x: Tensor) -> bool:
        """Is -log p(x|z) a probability mass (not a density) for these data x?"""
        return self.discrete


class BernoulliLikelihood(Likelihood):
    """Pixels in [0, 1] as Bernoulli probabilities (the classic BCE loss)."""

    name = "bernoulli"
    support = (0.0, 1.0)

    def forward(self, params: Tensor) -> Distribution:
        base = Bernoulli(logits=params[:, 0], validate_args=False)
        return Independent(base, len(self.data_shape), validate_args=False)

    def mean(self, params: Tensor) -> Tensor:
        return torch.sigmoid(params[:, 0])

    def is_discrete_on(self, x: Tensor) -> bool:
        # on grey levels in (0, 1) the "Bernoulli" is not a distribution over the data at all
        return bool(((x == 0) | (x == 1)).all())


class GaussianLikelihood(Likelihood):
    """x ~ N(decoder output, sigma^2): sigma fixed, or learned globally or per channel."""

    name = "gaussian"

    def __init__(self, data_shape: list[int], *, sigma: float = 0.1, learn: str = "none"):
        super().__init__(data_shape)
        if learn not in ("none", "global", "channel"):
            raise VaekitError(f"learn_sigma must be none, global or channel, not {learn!r}")
        self.learn = learn
        # (C, 1, ..., 1) broadcasts over one example; channel = first data axis
        shape = [1] * len(data_shape)
        if learn == "channel":
            shape[0] = data_shape[0]
        log_sigma = torch.full(shape, math.log(sigma))
        if learn == "none":
            self.register_buffer("log_sigma", log_sigma)
        else:
            self.log_sigma = nn.Parameter(log_sigma)

    def sigma(self) -> Tensor:
        return self.log_sigma.clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX).exp()

    def forward(self, params: Tensor) -> Distribution:
        loc = params[:, 0]
        base = Normal(loc, self.sigma().expand_as(loc), validate_args=False)
        return Independent(base, len(self.data_shape), validate_args=False)

    def mean(self, params: Tensor) -> Tensor:
        return params[:, 0]


# -- discretized likelihoods for 8-bit data ------------------------------------------------------


# The mean is a closed-form integral where the scale spans at least this many bins (see mean).
SMOOTH_BINS = 2.0


class Discretized(Distribution):
    """A continuous location-scale law binned onto the grid k / (bins - 1), k = 0..bins-1, of
    [0, 1] (8-bit images: bins=256, pixel = k / 255).

    Bin k covers [k - 1/2, k + 1/2] / (bins - 1); the first and last bins also take the tails
    (-inf and +inf), so the masses of the bins sum to exactly 1 (Salimans et al. 2017,
    PixelCNN++). x is mapped to its nearest bin. loc, log_scale: (...), one law per value.
    Subclasses give the standardized law through _log_cdf, _log_sf and _log_bin_mass.
    """

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, loc: Tensor, log_scale: Tensor, *, bins: int = 256):
        self.loc, self.log_scale, self.bins = loc, log_scale, bins
        super().__init__(batch_shape=loc.shape, validate_args=False)

    @property
    def scale(self) -> Tensor:
        return self.log_scale.exp()

    @property
    def width(self) -> float:
        return 1.0 / (self.bins - 1)

    def bin_index(self, x: Tensor) -> Tensor:
        return (x * (self.bins - 1)).round().clamp(0, self.bins - 1)

    def log_prob(self, x: Tensor) -> Tensor:
        """log P(bin of x), elementwise (...)."""
        k = self.bin_index(x)
        inv_scale = torch.exp(-self.log_scale)
        lo = (k * self.width - 0.5 * self.width - self.loc) * inv_scale  # standardized lower edge
        w = self.width * inv_scale  # standardized bin width, computed apart to avoid hi - lo cancelling
        hi = lo + w
        mid = self._log_bin_mass(lo, hi, w)
        return torch.where(k == 0, self._log_cdf(hi), torch.where(k == self.bins - 1, self._log_sf(lo), mid))

    @property
    def mean(self) -> Tensor:
        """E[x] = width * sum_{k=1}^{bins-1} S(e_k), S the survival function of the continuous law
        and e_k = (k - 1/2) width the bins' lower edges: a midpoint rule for the integral of S over
        [0, 1]. Where the scale spans at least SMOOTH_BINS bins that rule equals the integral (in
        closed form) plus its Euler-Maclaurin correction to within ~1e-6; where it is sharper,
        S is 0 or 1 except at a few edges near loc, which are summed one by one."""
        s, w = self.scale, self.width
        u0, u1 = self.loc / s, (self.loc - 1.0) / s  # (loc - t) / s at t = 0 and t = 1
        integral = s * (self._int_cdf(u0) - self._int_cdf(u1))
        out = integral + w**2 / 24 * (self._pdf(u1) - self._pdf(u0)) / s
        sharp = s < SMOOTH_BINS * w
        if bool(sharp.any()):
            out = out.clone()
            out[sharp] = self._sharp_mean(self.loc[sharp], s[sharp])
        return out

    def _sharp_mean(self, loc: Tensor, s: Tensor) -> Tensor:
        """The sum itself for scales under SMOOTH_BINS bins: edges more than `tail` scales below
        loc count 1 each, the window above them is summed, edges beyond it count 0."""
        w, cut = self.width, self.tail
        below = torch.floor((loc - cut * s) / w + 0.5).clamp(0, self.bins - 1)  # edges 1..below: S = 1
        total = below.clone()
        for j in range(1, math.ceil(2 * cut * SMOOTH_BINS) + 2):
            k = below + j
            term = self._log_cdf((loc - (k - 0.5) * w) / s).exp()
            total += torch.where(k <= self.bins - 1, term, torch.zeros_like(term))
        return total * w

    def bin_masses(self) -> Tensor:
        """P(bin k) for every k = 0..bins-1: (..., bins), each row summing to 1. The CDF of the
        continuous law at the bins' bins - 1 inner edges, with 0 and 1 at the open ends, and
        differenced: the same masses as exp(log_prob), as one table per value for an entropy
        coder (vaekit.core.coding). Absolute accuracy is the dtype's (1e-16 in float64), far finer
        than a coder's fixed-point resolution; relative accuracy in the far tails is not needed."""
        k = torch.arange(1, self.bins, dtype=self.loc.dtype, device=self.loc.device)
        edges = (k - 0.5) * self.width  # (bins - 1,)
        t = (edges - self.loc[..., None]) * torch.exp(-self.log_scale)[..., None]  # (..., bins - 1)
        cdf = t.new_empty(*t.shape[:-1], self.bins + 1)  # (..., bins + 1): 0 and 1 at the open ends
        cdf[..., 0], cdf[..., -1], cdf[..., 1:-1] = 0.0, 1.0, self._cdf(t)
        return (cdf[..., 1:] - cdf[..., :-1]).clamp_min_(0.0)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        with torch.no_grad():
            shape = self._extended_shape(sample_shape)
            t = self._standard_sample(shape, self.loc.device, self.loc.dtype)
            x = (self.loc + self.scale * t).clamp(0.0, 1.0)
            return self.bin_index(x) * self.width

    # the standardized law (symmetric about 0) ---------------------------------------------------
    tail: float = 0.0  # F(-tail) is below float32 resolution: 0 in a sum of masses

    def _log_cdf(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def _cdf(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def _pdf(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def _int_cdf(self, t: Tensor) -> Tensor:
        """An antiderivative of the CDF."""
        raise NotImplementedError

    def _log_sf(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def _log_bin_mass(self, lo: Tensor, hi: Tensor, w: Tensor) -> Tensor:
        """log(F(hi) - F(lo)) for standardized edges lo < hi = lo + w."""
        raise NotImplementedError

    def _standard_sample(self, shape, device, dtype) -> Tensor:
        raise NotImplementedError


_EDGE = 1e30  # a standardized value beyond any edge: sigmoid(-_EDGE) == 0 and softplus(-_EDGE) == 0


class DiscretizedLogistic(Discretized):
    def log_prob(self, x: Tensor) -> Tensor:
        # One formula for every bin: an end bin's open edge becomes -/+ EDGE, where the logistic
        # CDF is exactly 0 / 1 in floating point and every gradient is exactly 0. That is a third
        # of the work of evaluating the three cases apart.
        k = self.bin_index(x)
        inv_scale = torch.exp(-self.log_scale)
        half = 0.5 * self.width * inv_scale  # half the standardized bin width
        centre = (k * self.width - self.loc) * inv_scale
        first, last = k == 0, k == self.bins - 1
        lo = torch.where(first, -_EDGE, centre - half)
        hi = torch.where(last, _EDGE, centre + half)
        neg_width = torch.where(first | last, lo - hi, -2.0 * half)  # lo - hi without cancellation
        return -F.softplus(-hi) - F.softplus(lo) + torch.log(-torch.expm1(neg_width))

    tail = 17.0  # sigmoid(-17) = 4e-8

    def _log_cdf(self, t: Tensor) -> Tensor:
        return -F.softplus(-t)

    def _log_sf(self, t: Tensor) -> Tensor:
        return -F.softplus(t)

    def _cdf(self, t: Tensor) -> Tensor:
        return torch.sigmoid(t)

    def _pdf(self, t: Tensor) -> Tensor:
        p = torch.sigmoid(t)
        return p * (1 - p)

    def _int_cdf(self, t: Tensor) -> Tensor:
        return F.softplus(t)

    def _log_bin_mass(self, lo: Tensor, hi: Tensor, w: Tensor) -> Tensor:
        # sigmoid(b) - sigmoid(a) = sigmoid(b) * sigmoid(-a) * (1 - e^(a - b)): every factor is
        # computed in log space, so neither tail nor a tiny bin loses precision.
        return -F.softplus(-hi) - F.softplus(lo) + torch.log(-torch.expm1(-w))

    def _standard_sample(self, shape, device, dtype) -> Tensor:
        u = torch.rand(shape, device=device, dtype=dtype).clamp(1e-6, 1 - 1e-6)
        return torch.log(u) - torch.log1p(-u)


HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
# Below this standardized width the Gaussian bin mass is the midpoint rule pdf * w (relative
# error ~ w^2 t^2 / 24); above it the exact difference of CDFs is accurate in float32.
GAUSSIAN_MIDPOINT_WIDTH = 1e-3


class DiscretizedGaussian(Discretized):
    tail = 6.0  # Phi(-6) = 1e-9

    def _log_cdf(self, t: Tensor) -> Tensor:
        return torch.special.log_ndtr(t)

    def _pdf(self, t: Tensor) -> Tensor:
        return torch.exp(-0.5 * t**2 - HALF_LOG_2PI)

    def _int_cdf(self, t: Tensor) -> Tensor:
        return t * torch.special.ndtr(t) + self._pdf(t)

    def _log_sf(self, t: Tensor) -> Tensor:
        return torch.special.log_ndtr(-t)

    def _cdf(self, t: Tensor) -> Tensor:
        return torch.special.ndtr(t)

    def _log_bin_mass(self, lo: Tensor, hi: Tensor, w: Tensor) -> Tensor:
        # by symmetry move the bin into the lower half, where log_ndtr keeps full precision
        upper = lo + hi > 0
        a, b = torch.where(upper, -hi, lo), torch.where(upper, -lo, hi)
        log_b = torch.special.log_ndtr(b)
        exact = log_b + torch.log(-torch.expm1((torch.special.log_ndtr(a) - log_b).clamp_max(-1e-30)))
        t = 0.5 * (lo + hi)
        midpoint = -0.5 * t**2 - HALF_LOG_2PI + torch.log(w)
        return torch.where(w < GAUSSIAN_MIDPOINT_WIDTH, midpoint, exact)

    def _standard_sample(self, shape, device, dtype) -> Tensor:
        return torch.randn(shape, device=device, dtype=dtype)


class DiscretizedLogisticMixture(Distribution):
    """A mixture of K discretized logistics per value (Salimans et al. 2017, PixelCNN++; Child
    2021, VDVAE): P(bin k) = sum_j pi_j P_j(bin k), P_j a DiscretizedLogistic. logits, loc,
    log_scale: (..., K), one mixture per value; batch shape (...).

    The components of one value are independent of the other channels: PixelCNN++ couples the
    R, G and B of a pixel (the G and B locations shift linearly with the R and G values); this
    law does not, so each channel is a mixture of its own."""

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, logits: Tensor, loc: Tensor, log_scale: Tensor, *, bins: int = 256):
        self.logits, self.bins = logits, bins
        self.components = DiscretizedLogistic(loc, log_scale, bins=bins)  # batch shape (..., K)
        super().__init__(batch_shape=logits.shape[:-1], validate_args=False)

    @property
    def log_weights(self) -> Tensor:  # (..., K): log pi_j
        return F.log_softmax(self.logits, dim=-1)

    def log_prob(self, x: Tensor) -> Tensor:
        """log sum_j pi_j P_j(bin of x), elementwise (...): each component's log mass is already
        accurate in the tails, and logsumexp keeps the sum so."""
        return torch.logsumexp(self.log_weights + self.components.log_prob(x[..., None]), dim=-1)

    @property
    def mean(self) -> Tensor:
        return (self.log_weights.exp() * self.components.mean).sum(-1)

    def bin_masses(self) -> Tensor:
        """P(bin k) for k = 0..bins-1: (..., bins), rows summing to 1 (the components' tables
        weighted by pi; (..., K, bins) in between)."""
        weights = self.log_weights.exp()[..., None, :]  # (..., 1, K)
        return (weights @ self.components.bin_masses()).squeeze(-2)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        """Pick a component by inverting pi's CDF at a uniform draw, then sample that component;
        both draws from torch's global generator, as the single laws do."""
        with torch.no_grad():
            shape = self._extended_shape(sample_shape)
            u = torch.rand(shape, device=self.logits.device, dtype=self.logits.dtype)[..., None]  # (*shape, 1)
            cdf = self.log_weights.exp().cumsum(-1)  # (..., K)
            pick = (cdf < u).sum(-1, keepdim=True).clamp_max(cdf.shape[-1] - 1)  # (*shape, 1)
            loc, log_scale = self.components.loc, self.components.log_scale
            full = (*shape, loc.shape[-1])
            chosen = [t.expand(full).gather(-1, pick).squeeze(-1) for t in (loc, log_scale)]
            return DiscretizedLogistic(*chosen, bins=self.bins).sample()


# A learned scale far below one bin width buys nothing (the bin's mass is already ~1) and far
# above the data range means nothing; the bounds keep exp() and the gradients tame.
LOG_SCALE_MIN, LOG_SCALE_MAX = math.log(1e-4), math.log(1e2)


class DiscretizedLikelihood(Likelihood):
    """8-bit data in [0, 1] (pixel = k / 255): p(x|z) is a mass over 256 bins per value, so
    -log p(x|z) is a code length and NLL in bits/dim compares with the literature. The decoder
    emits a location and a log-scale per value."""

    num_params = 2
    support = (0.0, 1.0)
    discrete = True
    law: type[Discretized] = Discretized
    bins = 256

    def forward(self, params: Tensor) -> Distribution:
        loc, log_scale = params[:, 0], params[:, 1].clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)
        return Independent(self.law(loc, log_scale, bins=self.bins), len(self.data_shape), validate_args=False)


class DiscretizedLogisticLikelihood(DiscretizedLikelihood):
    name = "discretized-logistic"
    law = DiscretizedLogistic


class DiscretizedGaussianLikelihood(DiscretizedLikelihood):
    name = "discretized-gaussian"
    law = DiscretizedGaussian


class DiscretizedLogisticMixtureLikelihood(DiscretizedLikelihood):
    """A mixture of `mixtures` = K discretized logistics per value (DiscretizedLogisticMixture,
    components independent per channel). The decoder emits 3K values per value, laid out
    (B, 3K, *data_shape): K mixture logits, then K locations, then K log-scales."""

    name = "discretized-logistic-mixture"

    def __init__(self, data_shape: list[int], *, mixtures: int = 10):
        super().__init__(data_shape)
        self.mixtures = mixtures
        self.num_params = 3 * mixtures  # per instance: K varies

    def forward(self, params: Tensor) -> Distribution:  # params (B, 3K, *data_shape)
        # (B, 3K, *data_shape) -> three (B, *data_shape, K): the mixture axis last
        logits, loc, log_scale = (t.movedim(1, -1) for t in params.chunk(3, dim=1))
        law = DiscretizedLogisticMixture(logits, loc, log_scale.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX), bins=self.bins)
        return Independent(law, len(self.data_shape), validate_args=False)


# A learned per-column sigma of a table's transformed (unit-variance) numeric column: at least 1%
# of its spread, so a column of few distinct values cannot make the likelihood unbounded.
TABLE_SIGMA_MIN, TABLE_SIGMA_MAX, TABLE_SIGMA_INIT = 1e-2, 1e1, 0.5


class TabularLikelihood(Likelihood):
    """A table row: one head per column (vaekit.core.tabular): a Gaussian with a learned sigma
    per column on a numeric column's transformed value, a Bernoulli on a boolean, a softmax over
    a categorical's K values. Their log-probabilities are summed over the observed cells; a
    missing cell (its presence flag 0) adds nothing. heads: ["gaussian", "categorical:3", ...]."""

    name = "tabular"

    def __init__(self, data_shape: list[int], heads: list[str]):
        super().__init__(data_shape)
        self.layout = TableLayout.parse(heads)
        if [self.layout.data_dim] != list(data_shape):
            raise VaekitError(f"a table with these columns has {self.layout.data_dim} values per row, not {data_shape}")
        n = len(self.layout.gaussian)
        self.log_sigma = nn.Parameter(torch.full((n,), math.log(TABLE_SIGMA_INIT)))

    def param_shape(self) -> list[int]:
        return [self.layout.num_params]

    def sigma(self) -> Tensor:  # (n_gaussian,)
        return self.log_sigma.clamp(math.log(TABLE_SIGMA_MIN), math.log(TABLE_SIGMA_MAX)).exp()

    def forward(self, params: Tensor) -> Distribution:  # params (B, num_params)
        return TabularDistribution(params, self.layout, self.sigma())

    def value_mask(self, x: Tensor) -> Tensor:
        return self.layout.value_mask(x)


LIKELIHOODS: dict[str, type[Likelihood]] = {
    BernoulliLikelihood.name: BernoulliLikelihood,
    GaussianLikelihood.name: GaussianLikelihood,
    DiscretizedLogisticLikelihood.name: DiscretizedLogisticLikelihood,
    DiscretizedGaussianLikelihood.name: DiscretizedGaussianLikelihood,
    DiscretizedLogisticMixtureLikelihood.name: DiscretizedLogisticMixtureLikelihood,
    TabularLikelihood.name: TabularLikelihood,
}


def build_likelihood(config) -> Likelihood:
    """config: a ModelConfig."""
    if config.likelihood not in LIKELIHOODS:
        raise VaekitError(f"unknown likelihood {config.likelihood!r}; choose one of {', '.join(LIKELIHOODS)}")
    kind = LIKELIHOODS[config.likelihood]
    if kind is GaussianLikelihood:
        return kind(config.data_shape, sigma=config.sigma, learn=config.learn_sigma)
    if kind is TabularLikelihood:
        if not config.heads:
            raise VaekitError("the tabular likelihood needs a table's columns (heads), and this model has none")
        return kind(config.data_shape, config.heads)
    if kind is DiscretizedLogisticMixtureLikelihood:
        return kind(config.data_shape, mixtures=config.mixtures)
    return kind(config.data_shape)
