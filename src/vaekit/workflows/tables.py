"""What a model of a table is for, in the table's own columns and units: synthetic rows,
reconstructions, codes, and imputation of missing cells.

    run = vaekit.load_run("runs/sales")
    tables.sample_rows(run, 1000, seed=0)                 # a pyarrow table like the input
    tables.impute(run, run.examples("gaps.csv"), read_table("gaps.csv"), method="mean")
    write_table(..., "synthetic.csv")                     # vaekit.data.write_table
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import torch

from ..core.modes import evaluating
from ..core.sampling import draw, encode_dataset
from ..data import Dataset, Examples, TableSchema
from ..errors import VaekitError
from ..runs import Run

IMPUTE_METHODS = ("mean", "sample")
IMPUTE_ITERATIONS = 20  # pseudo-Gibbs rounds: the filled cells settle within a few on our tables


def table_of(run: Run) -> TableSchema:
    schema = run.table()
    if schema is None:
        raise VaekitError(f"{run.path} was not trained on a table")
    return schema


def sample_rows(run: Run, n: int, *, seed: int = 0, temperature: float = 1.0, prior=None, label=None) -> pa.Table:
    """n synthetic rows: z from the prior (N(0, I) or a fitted one), then every cell drawn from
    p(x | z) (a category from its softmax, a number from its Gaussian), in the input's columns,
    types, categories and ranges."""
    x = draw(run.model, n, temperature=temperature, y=label, seed=seed, prior=prior)
    return table_of(run).decode(x.numpy())


@torch.no_grad()
def reconstruct_rows(run: Run, data: Dataset) -> pa.Table:
    """Each row decoded from its posterior mean: the most likely category, the mean number."""
    model, schema = run.model, table_of(run)
    with evaluating(model):
        mu = encode_dataset(model, data)["mu"]
        x = model.decode_mean(mu.to(model.device), _labels(model, data.y))
    return schema.decode(x.float().cpu().numpy())


def _labels(model, y):
    return None if (y is None or model.config.num_classes == 0) else y.to(model.device)


def codes_table(parts: list[tuple[str, dict[str, torch.Tensor]]]) -> pa.Table:
    """[(split, encode_dataset's dict)] -> a table: split, row (within the split), [y], mu_0.., logvar_0.."""
    cols: dict[str, list] = {"split": [], "row": []}
    for name, enc in parts:
        cols["split"] += [name] * len(enc["mu"])
        cols["row"] += list(range(len(enc["mu"])))
    if all("y" in enc for _, enc in parts):
        cols["y"] = torch.cat([enc["y"] for _, enc in parts]).tolist()
    for key in ("mu", "logvar"):
        values = torch.cat([enc[key] for _, enc in parts]).numpy()
        for d in range(values.shape[1]):
            cols[f"{key}_{d}"] = values[:, d]
    return pa.table(cols)


# -- imputation -----------------------------------------------------------------------------------------


@dataclass
class Imputed:
    table: pa.Table  # the input table with its empty cells (in modelled columns) filled
    filled: int  # cells filled
    left: int  # empty cells left as they were (in columns the model does not have)
    method: str


@torch.no_grad()
def impute(
    run: Run,
    examples: Examples,
    rows: pa.Table,
    *,
    method: str = "mean",
    iterations: int = IMPUTE_ITERATIONS,
    seed: int = 0,
) -> Imputed:
    """Fill the empty cells of `rows` (encoded as `examples` with the run's columns) from the
    model, by pseudo-Gibbs iteration (Rezende et al. 2014, section 5.2): encode the row with its
    gaps marked missing, then `iterations` times decode and put the decoded values into the gaps
    (marked present), encode again. method "mean": z = the posterior mean and the decoded means
    (the most likely category, the mean number), deterministic; "sample": z ~ q(z|x) and cells
    drawn from p(x|z), a draw from (approximately) the conditional distribution of the gaps."""
    if method not in IMPUTE_METHODS:
        raise VaekitError(f"unknown imputation method {method!r}; choose {' or '.join(IMPUTE_METHODS)}")
    if iterations < 1:
        raise VaekitError("--iterations must be at least 1")
    model, schema = run.model, table_of(run)
    if model.config.num_classes:
        raise VaekitError("imputation needs an unconditional model; this one is conditioned on labels")
    x = examples.x.to(model.device)
    gaps = _gap_mask(model, x)  # (N, D): the values and flags of missing cells
    gen = torch.Generator(device=model.device).manual_seed(seed)
    current = x.clone()
    with evaluating(model):
        for _ in range(iterations):
            q = model.encode(current)
            z = q.mode() if method == "mean" else q.rsample(generator=gen)
            px = model.decode(z)
            fill = px.mean if method == "mean" else px.sample(generator=gen)
            current = torch.where(gaps, fill, x)  # the fill's flags are 1: the gaps now count as present
    decoded = schema.decode(current.float().cpu().numpy())
    return _fill_gaps(rows, decoded, schema, method)


def _gap_mask(model, x: torch.Tensor) -> torch.Tensor:
    """(N, D) True on every value and flag of a cell whose flag is 0."""
    layout = model.likelihood.layout
    gaps = torch.zeros_like(x, dtype=torch.bool)
    for h in layout.heads:
        gaps[:, h.start : h.flag + 1] = (x[:, h.flag] == 0)[:, None]
    return gaps


def _fill_gaps(rows: pa.Table, decoded: pa.Table, schema: TableSchema, method: str) -> Imputed:
    """rows with each modelled column's empty cells taken from `decoded`; other cells untouched."""
    out, filled = rows, 0
    for c in schema.columns:
        original = rows.column(c.name).combine_chunks()
        empty = original.is_null()
        n = int(pc.sum(empty).as_py() or 0)
        if n == 0:
            continue
        guess = decoded.column(c.name).combine_chunks()
        if guess.type != original.type and not pa.types.is_null(original.type):
            guess = _cast_like(guess, original.type)
        merged = pc.if_else(empty, guess, original if not pa.types.is_null(original.type) else guess)
        out = out.set_column(out.column_names.index(c.name), c.name, merged)
        filled += n
    modelled = {c.name for c in schema.columns}
    left = sum(rows.column(name).null_count for name in rows.column_names if name not in modelled)
    return Imputed(out, filled, left, method)


def _cast_like(values: pa.Array, kind: pa.DataType) -> pa.Array:
    """The model's values in the type the file holds (e.g. whole numbers in a float column)."""
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pa.array([None if v is None else str(v) for v in values.to_pylist()], kind)
    if pa.types.is_integer(kind) and pa.types.is_floating(values.type):
        return pc.round(values).cast(kind)
    return values.cast(kind)
