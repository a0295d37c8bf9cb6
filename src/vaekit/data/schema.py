"""A table's columns as the model sees them: their types (inferred, or as the user declared), the
transforms fitted to them, and the two directions between a pyarrow table in the user's columns
and units and the encoded rows of vaekit.core.tabular.

    schema = infer_schema(table, overrides, where="sales.csv")    # kinds, categories, dropped
    schema.fit(table.take(train_rows))                            # per-column transforms
    x, report = schema.encode(table, "sales.csv")                 # (N, D) float32, notes
    schema.decode(x)                                              # -> a pyarrow table again
    schema.to_json() / TableSchema.from_json(...)                 # saved in the run folder

Kinds: numeric, integer (rounded when written back), datetime (seconds since 1970, written back
in the column's own type), boolean (two values) and categorical. Identifier-like, free-text,
empty and constant columns are dropped with a note. Numeric columns are standardised; a skewed
one (|skewness| > SKEWED) first goes through a Yeo-Johnson power map when that makes it less
skewed (a Box-Cox that also takes zero and negative values, fitted by maximum likelihood).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from scipy import stats

from ..errors import DataError

NUMERIC_KINDS = ("numeric", "integer", "datetime")
KINDS = (*NUMERIC_KINDS, "boolean", "categorical")
MAX_CATEGORIES = 100  # more distinct texts than this is not a category (unless --categorical says so)
MAX_DECLARED_CATEGORIES = 10_000
SKEWED = 1.0  # |skewness| above which a power map is tried
# Yeo-Johnson lambdas in [0, 2] map the real line onto the real line; outside it one side is
# squeezed into a bounded interval, where a value 100x beyond the training range would land next
# to the largest training value and no score could tell them apart.
LAMBDA_RANGE = (0.0, 2.0)
TRUE_WORDS = {"true", "t", "yes", "y", "1"}
SECONDS_PER_DAY = 86_400.0


# -- the values of one column ------------------------------------------------------------------------


def storage(t: pa.DataType) -> str | None:
    """How a column's values are stored: number, bool, text, timestamp or date; None: unsupported."""
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        return "text"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_null(t):
        return "null"
    return None


def as_text(values: pa.Array) -> list[str | None]:
    """Any column -> its values as canonical text (3.0 -> "3", True -> "true"), None where missing."""
    if pa.types.is_dictionary(values.type):
        values = values.cast(pa.string())
    out = []
    for v in values.to_pylist():
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        elif isinstance(v, bool):
            out.append("true" if v else "false")
        elif isinstance(v, float) and v.is_integer():
            out.append(str(int(v)))
        else:
            out.append(str(v))
    return out


def as_numbers(values: pa.Array, kind_of_storage: str) -> np.ndarray:
    """number, bool, timestamp or date column -> float64 (N,), NaN where missing (datetimes in seconds)."""
    if kind_of_storage == "timestamp":
        per_second = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[values.type.unit]
        values = values.cast(pa.int64()).cast(pa.float64())
        return pc.divide(values, per_second).to_numpy(zero_copy_only=False)
    if kind_of_storage == "date":
        days = values.cast(pa.date32()).cast(pa.int32()).cast(pa.float64())
        return days.to_numpy(zero_copy_only=False) * SECONDS_PER_DAY
    return values.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)


def parse_numbers(texts: list[str | None]) -> tuple[np.ndarray, list[str]]:
    """Text -> (float64 (N,), the texts that are not numbers)."""
    out, bad = np.full(len(texts), np.nan), []
    for i, s in enumerate(texts):
        if s is None:
            continue
        try:
            out[i] = float(s)
        except ValueError:
            bad.append(s)
    return out, bad


# -- power maps ---------------------------------------------------------------------------------------


def yeo_johnson(x: np.ndarray, lam: float) -> np.ndarray:
    """The Yeo-Johnson map (Yeo & Johnson 2000), elementwise; NaN stays NaN."""
    x = np.asarray(x, dtype=np.float64)
    out = np.full_like(x, np.nan)
    pos, neg = x >= 0, x < 0
    out[pos] = np.log1p(x[pos]) if abs(lam) < 1e-12 else (np.power(x[pos] + 1, lam) - 1) / lam
    out[neg] = -np.log1p(-x[neg]) if abs(lam - 2) < 1e-12 else -(np.power(1 - x[neg], 2 - lam) - 1) / (2 - lam)
    return out


def yeo_johnson_inverse(t: np.ndarray, lam: float) -> np.ndarray:
    """The inverse of yeo_johnson (t must lie in its image, which clipping to the fitted range ensures)."""
    t = np.asarray(t, dtype=np.float64)
    out = np.full_like(t, np.nan)
    pos, neg = t >= 0, t < 0
    out[pos] = np.expm1(t[pos]) if abs(lam) < 1e-12 else np.power(lam * t[pos] + 1, 1 / lam) - 1
    if abs(lam - 2) < 1e-12:
        out[neg] = -np.expm1(-t[neg])
    else:
        out[neg] = 1 - np.power(1 - (2 - lam) * t[neg], 1 / (2 - lam))
    return out


MAX_DECIMALS = 6


def decimal_places(v: np.ndarray) -> int | None:
    """The fewest decimal places (at most MAX_DECIMALS) that write every value of v exactly
    (a price column: 2), or None when more are needed (measurements)."""
    for d in range(MAX_DECIMALS + 1):
        scaled = v * 10.0**d
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-6 * np.maximum(1.0, np.abs(scaled))):
            return d
    return None


def prescales(v: np.ndarray) -> list[float]:
    """Units to measure v in before a power map: Yeo-Johnson is not scale-free (log1p(v / s) is
    near-linear where v << s), so the data choose among their spread, their typical size and
    their small values."""
    size = np.abs(v[v != 0])
    candidates = [float(v.std()), *(float(np.quantile(size, q)) for q in (0.5, 0.05, 0.0))] if len(size) else []
    return [s for s in candidates if s > 0 and math.isfinite(s)] or [1.0]


# -- one column -------------------------------------------------------------------------------------------


@dataclass
class Column:
    """One modelled column: its kind, how its values are stored in the file (to read and write them
    back alike), and what was fitted to it."""

    name: str
    kind: str  # one of KINDS
    stored: str  # number, bool, text, timestamp, date (see storage)
    integral: bool = False  # numbers that are all whole (written back without decimals)
    categories: list[str] = field(default_factory=list)  # boolean: [false, true]; categorical: all values
    transform: str = "standard"  # numeric kinds: standard or yeo-johnson
    lam: float = 1.0  # the Yeo-Johnson lambda
    prescale: float = 1.0  # values are divided by this before the power map (their spread)
    shift: float = 0.0  # then standardised: (t - shift) / scale
    scale: float = 1.0
    low: float = 0.0  # the fitted rows' range, in the column's units (datetimes: seconds)
    high: float = 0.0
    unit: str = ""  # timestamps: s, ms, us or ns
    missing_marks: list[str] = field(default_factory=list)  # numbers stored as text: texts meaning missing ("?")
    decimals: int | None = None  # the numbers' decimal places, when they have few (written back alike)

    @property
    def head(self) -> str:
        """The likelihood head of vaekit.core.tabular."""
        if self.kind in NUMERIC_KINDS:
            return "gaussian"
        return "bernoulli" if self.kind == "boolean" else f"categorical:{len(self.categories)}"

    @property
    def width(self) -> int:
        return len(self.categories) if self.kind == "categorical" else 1

    def describe(self) -> str:
        if self.kind == "categorical":
            return f"{self.name}: categorical ({len(self.categories)} values)"
        if self.kind == "boolean":
            return f"{self.name}: boolean ({self.categories[0]}/{self.categories[1]})"
        how = "power map + standardised" if self.transform == "yeo-johnson" else "standardised"
        return f"{self.name}: {self.kind} ({how})"

    # numeric kinds -----------------------------------------------------------------------------------
    def fit_numbers(self, v: np.ndarray) -> None:
        """Fit the transform to the observed values v (float64, no NaN)."""
        self.low, self.high = float(v.min()), float(v.max())
        self.integral = self.kind == "integer"
        self.decimals = decimal_places(v) if self.kind == "numeric" else None
        self.transform, self.lam, self.prescale = "standard", 1.0, 1.0
        skew = abs(float(stats.skew(v))) if len(v) > 2 else 0.0
        if skew > SKEWED:
            best = min((self._power_fit(v, s) for s in prescales(v)), key=lambda fit: fit[0])
            if best[0] < skew:
                _, self.lam, self.prescale = best
                self.transform = "yeo-johnson"
        t = self._power(v)
        self.shift, self.scale = float(t.mean()), float(t.std()) or 1.0

    @staticmethod
    def _power_fit(v: np.ndarray, prescale: float) -> tuple[float, float, float]:
        """-> (|skewness| after, lambda, prescale) of the maximum-likelihood Yeo-Johnson map of v / prescale."""
        with np.errstate(all="ignore"):
            lam = float(np.clip(stats.yeojohnson_normmax(v / prescale), *LAMBDA_RANGE))
            powered = yeo_johnson(v / prescale, lam)
        skew = abs(float(stats.skew(powered))) if np.all(np.isfinite(powered)) else math.inf
        return skew, lam, prescale

    def _power(self, v: np.ndarray) -> np.ndarray:
        return yeo_johnson(v / self.prescale, self.lam) if self.transform == "yeo-johnson" else v

    def to_model(self, v: np.ndarray) -> np.ndarray:
        """Values (NaN where missing) -> transformed values (NaN stays NaN)."""
        with np.errstate(all="ignore"):
            return (self._power(v) - self.shift) / self.scale

    def from_model(self, t: np.ndarray) -> np.ndarray:
        """Transformed values -> values within the fitted range (whole where the column is)."""
        lo, hi = self.to_model(np.array([self.low, self.high]))
        t = np.clip(t * 1.0, lo, hi) * self.scale + self.shift
        v = yeo_johnson_inverse(t, self.lam) * self.prescale if self.transform == "yeo-johnson" else t
        v = np.clip(v, self.low, self.high)
        if self.integral:
            return np.round(v)
        return v if self.decimals is None else np.round(v, self.decimals)


# -- the schema ------------------------------------------------------------------------------------------------


@dataclass
class EncodeReport:
    """What encoding a table found: notes for the user, and per row the cells whose category
    was never seen in training (treated as missing)."""

    notes: list[str]
    unseen: np.ndarray  # (N,) int


@dataclass
class TableSchema:
    columns: list[Column]
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (column, why)
    label: str | None = None
    notes: list[str] = field(default_factory=list)
    label_values: list[str] = field(default_factory=list)  # the label column's classes, in order

    # -- the model's view ------------------------------------------------------------------------------
    @property
    def heads(self) -> list[str]:
        return [c.head for c in self.columns]

    @property
    def data_dim(self) -> int:
        return sum(c.width + 1 for c in self.columns)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def starts(self) -> list[int]:
        """Index of each column's first value in an encoded row (its flag follows its values)."""
        out, at = [], 0
        for c in self.columns:
            out.append(at)
            at += c.width + 1
        return out

    def describe(self) -> list[str]:
        lines = [c.describe() for c in self.columns]
        lines += [f"{name}: dropped ({why})" for name, why in self.dropped]
        if self.label:
            lines.append(f"{self.label}: label")
        return lines + self.notes

    # -- fitting ------------------------------------------------------------------------------------------
    def fit(self, table: pa.Table) -> TableSchema:
        """Fit every numeric column's transform to these rows (the training split)."""
        for c in self.columns:
            if c.kind in NUMERIC_KINDS:
                v = column_numbers(table, c, "the training rows")
                v = v[~np.isnan(v)]
                if len(v) == 0:
                    raise DataError(f"column {c.name!r} has no values in the training rows")
                c.fit_numbers(v)
        return self

    # -- encoding ----------------------------------------------------------------------------------------------
    def encode(self, table: pa.Table, where: str) -> tuple[np.ndarray, EncodeReport]:
        """A table holding (at least) the schema's columns -> (float32 (N, data_dim), report)."""
        missing = [c.name for c in self.columns if c.name not in table.column_names]
        if missing:
            raise DataError(f"{where} lacks the column(s) {', '.join(missing)} that the model was trained on")
        n = table.num_rows
        x = np.zeros((n, self.data_dim), dtype=np.float32)
        unseen, notes = np.zeros(n, dtype=np.int64), []
        for c, start in zip(self.columns, self.starts()):
            values, present, new = encode_column(table, c, where)
            x[:, start : start + c.width] = values
            x[:, start + c.width] = present
            if new.any():
                unseen += new
                notes.append(
                    f"{int(new.sum())} cells of column {c.name!r} hold values never seen in training "
                    "(treated as missing)"
                )
        return x, EncodeReport(notes, unseen)

    def decode(self, x: np.ndarray, *, keep_missing: bool = False) -> pa.Table:
        """(N, data_dim) encoded rows (means, probabilities or draws) -> the table in the user's columns
        and units: categories by their largest value, booleans above 1/2, numbers back-transformed.
        keep_missing: cells whose presence flag is 0 come back empty (data, not model output)."""
        arrays = []
        for c, s in zip(self.columns, self.starts()):
            values = decode_column(c, x[:, s : s + c.width])
            if keep_missing:
                values = pc.if_else(pa.array(x[:, s + c.width] > 0.5), values, pa.nulls(len(values), values.type))
            arrays.append(values)
        return pa.table(arrays, names=[c.name for c in self.columns])

    def panels(self, table: pa.Table, *, aligned: bool = False) -> list[tuple[str, str, np.ndarray]]:
        """Each column's values for a picture: (name, "number", float64) for numeric kinds (datetimes
        in days), (name, "category", texts) for booleans and categories; empty cells left out, or
        with aligned=True kept (NaN, "") so that two tables' rows pair up."""
        out = []
        for c in self.columns:
            if c.kind in NUMERIC_KINDS:
                v = column_numbers(table, c, "the table") / (SECONDS_PER_DAY if c.kind == "datetime" else 1.0)
                out.append((c.name, "number", v if aligned else v[np.isfinite(v)]))
            else:
                texts = as_text(table.column(c.name).combine_chunks())
                kept = [s or "" for s in texts] if aligned else [s for s in texts if s is not None]
                out.append((c.name, "category", np.array(kept, dtype=str)))
        return out

    def correlations(self, table: pa.Table) -> tuple[list[str], np.ndarray]:
        """Spearman rank correlations between the numeric-kind and boolean columns -> (names, (k, k));
        an empty cell takes its column's median rank."""
        names, ranks = [], []
        for c in self.columns:
            if c.kind == "categorical":
                continue
            values, present, _ = encode_column(table, c, "the table")
            v = np.where(present > 0, values[:, 0], np.nan)
            r = stats.rankdata(np.where(np.isnan(v), np.nanmedian(v) if np.isfinite(v).any() else 0.0, v))
            names.append(c.name)
            ranks.append(r)
        if len(names) < 2:
            return names, np.ones((len(names), len(names)))
        with np.errstate(all="ignore"):
            corr = np.corrcoef(np.stack(ranks))
        return names, np.nan_to_num(corr)

    # -- saving --------------------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "columns": [asdict(c) for c in self.columns],
            "dropped": [list(d) for d in self.dropped],
            "label": self.label,
            "label_values": self.label_values,
            "notes": self.notes,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TableSchema:
        """Raises (KeyError, TypeError, ValueError) on a damaged description; vaekit.runs says so."""
        columns = [Column(**c) for c in d["columns"]]
        if not columns or any(c.kind not in KINDS for c in columns):
            raise ValueError("no columns, or a column of an unknown kind")
        dropped = [(str(a), str(b)) for a, b in d.get("dropped", [])]
        return cls(columns, dropped, d.get("label"), list(d.get("notes", [])), list(d.get("label_values", [])))

    def label_indices(self, values: pa.Array) -> torch.Tensor | None:
        """The label column's values -> their class indices (a torch tensor), or None when a value
        is not one of the training classes."""
        index = {v: i for i, v in enumerate(self.label_values)}
        codes = [index.get(s, -1) for s in as_text(values)]
        return None if -1 in codes else torch.tensor(codes, dtype=torch.long)


# -- reading and writing one column through the schema --------------------------------------------------------


def column_numbers(table: pa.Table, c: Column, where: str) -> np.ndarray:
    """A numeric-kind column's values as float64 (NaN where missing); DataError naming the column
    when its values are no longer numbers (or dates)."""
    values = table.column(c.name).combine_chunks()
    stored = storage(values.type)
    if stored == "null":
        return np.full(len(values), np.nan)
    if c.stored in ("timestamp", "date") and stored in ("timestamp", "date"):
        return as_numbers(values, stored)
    if stored in ("number", "bool") and c.stored not in ("timestamp", "date"):
        v = as_numbers(values, "number")
        if np.isinf(v).any():
            raise DataError(f"column {c.name!r} of {where} holds {int(np.isinf(v).sum())} infinite values")
        return v
    if stored == "text" and c.stored in ("number", "text"):
        v, bad = parse_numbers([None if s in c.missing_marks else s for s in as_text(values)])
        if not bad:
            return v
        raise DataError(f"column {c.name!r} held numbers in training but holds text in {where} (e.g. {bad[0]!r})")
    raise DataError(
        f"column {c.name!r} held {c.stored} values in training but holds {stored or values.type} values in {where}"
    )


def encode_column(table: pa.Table, c: Column, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (values (N, width), present (N,), unseen (N,) bool: a category never seen in training)."""
    n = table.num_rows
    if c.kind in NUMERIC_KINDS:
        t = c.to_model(column_numbers(table, c, where))
        ok = np.isfinite(t)
        return np.where(ok, t, 0.0)[:, None], ok.astype(np.float32), np.zeros(n, dtype=bool)
    texts = as_text(table.column(c.name).combine_chunks())
    index = {v: i for i, v in enumerate(c.categories)}
    codes = np.array([index.get(s, -1) if s is not None else -2 for s in texts], dtype=np.int64)
    present = codes >= 0
    if c.kind == "boolean":
        values = (codes == 1).astype(np.float32)[:, None]
    else:
        values = np.zeros((n, c.width), dtype=np.float32)
        values[np.flatnonzero(present), codes[present]] = 1.0
    return values, present.astype(np.float32), codes == -1


def decode_column(c: Column, v: np.ndarray) -> pa.Array:
    """(N, width) encoded values of one column -> its values in the file's own type."""
    if c.kind in NUMERIC_KINDS:
        return numbers_array(c, c.from_model(v[:, 0].astype(np.float64)))
    codes = (v[:, 0] > 0.5).astype(np.int64) if c.kind == "boolean" else v.argmax(1)
    texts = [c.categories[i] for i in codes]
    if c.stored == "bool":
        return pa.array([s in TRUE_WORDS for s in texts], pa.bool_())
    if c.stored == "number":
        nums = np.array([float(s) for s in texts])
        return pa.array(nums.astype(np.int64) if all(s.lstrip("-").isdigit() for s in c.categories) else nums)
    return pa.array(texts, pa.string())


def numbers_array(c: Column, v: np.ndarray) -> pa.Array:
    if c.stored == "date":
        return pa.array(np.round(v / SECONDS_PER_DAY).astype(np.int32), pa.int32()).cast(pa.date32())
    if c.stored == "timestamp":
        per_second = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[c.unit or "s"]
        return pa.array(np.round(v * per_second).astype(np.int64), pa.int64()).cast(pa.timestamp(c.unit or "s"))
    return pa.array(v.astype(np.int64)) if c.integral else pa.array(v)
