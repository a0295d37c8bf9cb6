"""`vaekit impute`: fill the empty cells of a table with a model trained on such tables."""

from __future__ import annotations

from pathlib import Path

import typer

from ..data import read_table, write_table
from ..errors import VaekitError
from ..runs import load_run
from ..workflows import tables
from . import app
from .generate import table_path


@app.command()
def impute(
    run: Path = typer.Argument(..., help="A run folder trained on a table.", show_default=False),
    data: str = typer.Option(..., help="The table with empty cells (.csv, .tsv, .parquet).", show_default=False),
    out: Path = typer.Option(..., help="Table to write: the input with its empty cells filled.", show_default=False),
    method: str = typer.Option(
        "mean",
        help="mean: the decoded means at the posterior mean (the most likely category, the mean number; deterministic); "
        "sample: cells drawn from the model given the rest of the row.",
    ),
    iterations: int = typer.Option(tables.IMPUTE_ITERATIONS, help="Pseudo-Gibbs rounds (encode, decode, refill)."),
    seed: int = typer.Option(0, help="Seed of the draws (method sample)."),
) -> None:
    """Fill the empty cells of a table from the model (pseudo-Gibbs: Rezende et al. 2014)."""
    table_path(out)
    if Path(out).resolve() == Path(data).expanduser().resolve():
        raise VaekitError("--out would overwrite --data; give another file name")
    r = load_run(run)
    tables.table_of(r)
    examples = r.examples(data)
    for note in examples.notes:
        typer.echo(f"note: {note}")
    done = tables.impute(
        r, examples, read_table(Path(data).expanduser()), method=method, iterations=iterations, seed=seed
    )
    how = "decoded means" if method == "mean" else "draws from the model given the rest of the row"
    left = f"; {done.left} empty cells in columns the model does not have were left" if done.left else ""
    typer.echo(
        f"filled {done.filled} empty cells of {len(examples)} rows with {how} ({iterations} pseudo-Gibbs rounds){left}"
    )
    typer.echo(f"wrote {write_table(done.table, out)}")
