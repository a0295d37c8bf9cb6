"""Tables: CSV, TSV and Parquet files (read and written with pyarrow) and 2-D .npy/.npz matrices,
and what each column is (infer_schema; see vaekit.data.schema for the fitted transforms).

    raw = read_table_source("sales.csv", cfg)      # RawTable, or None when the source is no table
    schema = infer_schema(raw.table, cfg, "sales.csv")
    write_table(schema.decode(x), "synthetic.parquet")
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from ..atomic import atomic_write
from ..config import DataConfig
from ..errors import DataError
from .arrays import check_numbers
from .datasets import RawData
from .schema import (
    MAX_CATEGORIES,
    MAX_DECLARED_CATEGORIES,
    TRUE_WORDS,
    Column,
    TableSchema,
    as_text,
    parse_numbers,
    storage,
)

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".parquet": None}
ID_NAME = re.compile(r"(^|[_\s.-])(id|uuid|guid|key|index|row)$|^(id|uuid|guid|index|row)([_\s.-]|$)|[a-z]Id$", re.I)
MIN_ROWS_FOR_ID = 20  # fewer distinct rows than this says nothing about identifiers
FREE_TEXT_LENGTH = 40  # mean characters of a free-text column


@dataclass
class RawTable:
    """A table as read, before its schema: the rows, an official test table (an .npz's x_test),
    labels given beside a matrix (y, y_test)."""

    table: pa.Table
    name: str
    test: pa.Table | None = None
    y: np.ndarray | None = None
    y_test: np.ndarray | None = None


# -- reading and writing files --------------------------------------------------------------------------


def is_table_file(path: Path) -> bool:
    return path.suffix.lower() in TABLE_SUFFIXES


def read_table(path: Path) -> pa.Table:
    """A .csv, .tsv or .parquet file -> its table; DataError in one sentence for an empty file,
    ragged rows, a header without rows or a file pyarrow cannot read."""
    delimiter = TABLE_SUFFIXES[path.suffix.lower()]
    try:
        if delimiter is None:
            table = pq.read_table(path)
        else:
            parse = pa_csv.ParseOptions(delimiter=delimiter)
            table = pa_csv.read_csv(
                path, parse_options=parse, convert_options=pa_csv.ConvertOptions(strings_can_be_null=True)
            )
    except pa.ArrowInvalid as e:
        raise DataError(_why_unreadable(path, str(e))) from None
    except (OSError, pa.ArrowException) as e:
        raise DataError(f"cannot read the table {path}: {str(e).splitlines()[0]}") from None
    if table.num_columns == 0:
        raise DataError(f"{path} holds no columns")
    repeated = sorted({c for c in table.column_names if table.column_names.count(c) > 1})
    if repeated:
        raise DataError(f"{path} names the column {repeated[0]!r} more than once")
    if table.num_rows == 0:
        raise DataError(f"{path} has a header but no rows")
    return table


def _why_unreadable(path: Path, message: str) -> str:
    first = message.splitlines()[0]
    if "Empty CSV file" in first or path.stat().st_size == 0:
        return f"{path} is empty"
    if "Expected" in first and "columns" in first:
        return f"{path} has ragged rows: {first.removeprefix('CSV parse error: ')}"
    return f"cannot read the table {path}: {first}"


def write_table(table: pa.Table, path: str | Path) -> Path:
    """A table as .csv, .tsv or .parquet (by the file name), written atomically."""
    path = Path(path)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise DataError(f"--out {path} must name a .csv, .tsv or .parquet file")
    if path.is_dir():
        raise DataError(f"--out {path} is a folder; give the path of the table to write")
    buf = io.BytesIO()
    delimiter = TABLE_SUFFIXES[path.suffix.lower()]
    if delimiter is None:
        pq.write_table(table, buf)
    else:
        pa_csv.write_csv(table, buf, write_options=pa_csv.WriteOptions(delimiter=delimiter))
    return atomic_write(path, buf.getvalue())


def matrix_table(arr: np.ndarray, where: str) -> pa.Table:
    """A 2-D matrix (N, D) -> a table of columns x0..x{D-1}; NaN is a missing cell."""
    arr = check_numbers(np.asarray(arr), where)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise DataError(f"{where} has shape {arr.shape}: an example with no values")
    if arr.dtype.kind == "f" and np.isinf(arr).any():
        raise DataError(f"{where} contains {int(np.isinf(arr).sum())} non-finite values (inf); clean them first")
    cols = [pa.array(arr[:, j], from_pandas=True) for j in range(arr.shape[1])]
    return pa.table(cols, names=[f"x{j}" for j in range(arr.shape[1])])


def raw_table(raw: RawData, where: str) -> RawTable:
    """An .npy/.npz matrix's RawData -> its RawTable."""
    test = None if raw.x_test is None else matrix_table(raw.x_test, f"{where} (test)")
    return RawTable(matrix_table(raw.x, where), raw.name, test, raw.y, raw.y_test)


# -- what each column is ----------------------------------------------------------------------------------------


def infer_schema(table: pa.Table, cfg: DataConfig, where: str) -> TableSchema:
    """Every column's kind, from its values and the overrides of cfg (--categorical, --numeric,
    --ignore; the --label column is taken out before). Transforms are fitted later (TableSchema.fit)."""
    declared = cfg.column_options
    unknown = [n for names in declared.values() for n in names if n not in table.column_names]
    if unknown:
        raise DataError(f"{where} has no column {unknown[0]!r} (its columns: {', '.join(table.column_names)})")
    columns, dropped, notes = [], [], []
    for name in table.column_names:
        if name == cfg.label:
            continue
        if name in declared["ignore"]:
            dropped.append((name, "--ignore"))
            continue
        values = table.column(name).combine_chunks()
        forced = (
            "categorical" if name in declared["categorical"] else "numeric" if name in declared["numeric"] else None
        )
        got = infer_column(name, values, forced, where, notes)
        (columns.append(got) if isinstance(got, Column) else dropped.append((name, got)))
    if not columns:
        why = "; ".join(f"{n} ({w})" for n, w in dropped) or "none"
        raise DataError(f"{where} has no column vaekit can model (dropped: {why})")
    return TableSchema(columns, dropped, cfg.label, notes)


def infer_column(name: str, values: pa.Array, forced: str | None, where: str, notes: list[str]) -> Column | str:
    """One column's Column, or why it is dropped."""
    stored = storage(values.type)
    if stored is None:
        return f"unsupported type {values.type}"
    if stored == "null" or values.null_count == len(values):
        return "empty"
    texts = as_text(values)
    distinct = sorted({s for s in texts if s is not None})
    if forced == "categorical":
        if len(distinct) > MAX_DECLARED_CATEGORIES:
            raise DataError(f"--categorical {name}: {len(distinct)} distinct values are too many categories")
        return _categorical(name, stored, distinct) if len(distinct) > 1 else "constant"
    if forced == "numeric" or stored in ("number", "timestamp", "date"):
        return _numeric(name, values, stored, texts, distinct, forced, where, notes)
    if len(distinct) == 1:
        return "constant"
    if len(distinct) == 2:
        return _boolean(name, stored, distinct)
    return _text(name, values, stored, texts, distinct, notes)


def _numeric(name, values, stored, texts, distinct, forced, where, notes) -> Column | str:
    if stored == "text":
        numbers, bad = parse_numbers(texts)
        if bad and forced:
            raise DataError(
                f"--numeric {name}: column {name!r} of {where} holds text that is not a number (e.g. {bad[0]!r})"
            )
        numbers = numbers[~np.isnan(numbers)]
        stored = "number"
    elif stored in ("number", "bool"):
        numbers = values.drop_null().cast(pa.float64()).to_numpy(zero_copy_only=False)
    if len(distinct) == 1:
        return "constant"
    if stored in ("timestamp", "date"):
        return Column(name, "datetime", stored, unit=getattr(values.type, "unit", ""))
    if len(distinct) == 2 and not forced:
        return _boolean(name, stored, distinct)
    numbers = numbers[~np.isnan(numbers)]
    whole = bool(np.all(numbers == np.round(numbers)))
    if whole and not forced and len(numbers) >= MIN_ROWS_FOR_ID and len(np.unique(numbers)) == len(numbers):
        steps = np.diff(np.sort(numbers))
        if ID_NAME.search(name) or np.all(steps == 1):
            return "identifier-like: a distinct whole number per row"
    return Column(name, "integer" if whole else "numeric", stored, integral=whole)


def _boolean(name: str, stored: str, distinct: list[str]) -> Column:
    """Two values: [false, true] when they read as such, else in their natural order."""
    if stored == "number":
        order = sorted(distinct, key=float)
    elif all(s.lower() in TRUE_WORDS | {"false", "f", "no", "n", "0"} for s in distinct):
        order = sorted(distinct, key=lambda s: s.lower() in TRUE_WORDS)
    else:
        order = sorted(distinct)
    return Column(name, "boolean", stored, categories=order)


def _categorical(name: str, stored: str, distinct: list[str]) -> Column:
    order = sorted(distinct, key=float) if stored == "number" else sorted(distinct)
    return Column(name, "categorical", stored, categories=order)


def _text(name, values, stored, texts, distinct, notes) -> Column | str:
    """A text column: numbers with one missing-value marker ("?"), a category, or dropped."""
    numbers, bad = parse_numbers(texts)
    observed = [s for s in texts if s is not None]
    if len(set(bad)) == 1 and len(bad) < len(observed) / 2:
        notes.append(f"{name}: {len(bad)} cells reading {bad[0]!r} taken as missing")
        whole = bool(np.all(np.isnan(numbers) | (numbers == np.round(numbers))))
        return Column(name, "integer" if whole else "numeric", "text", integral=whole, missing_marks=[bad[0]])
    mean_length = sum(map(len, observed)) / len(observed)
    if mean_length > FREE_TEXT_LENGTH and len(distinct) > len(observed) / 2:
        return "free text"
    if len(observed) >= MIN_ROWS_FOR_ID and (len(distinct) == len(observed) or ID_NAME.search(name)):
        return "identifier-like: a distinct value per row" if len(distinct) == len(observed) else "identifier-like name"
    if len(distinct) > MAX_CATEGORIES:
        return f"{len(distinct)} distinct values, too many for a category (--categorical {name} keeps it)"
    return _categorical(name, stored, distinct)


def label_codes(table: pa.Table, label: str, where: str) -> tuple[np.ndarray, list[str]]:
    """The --label column -> (int64 codes (N,), class names in order)."""
    texts = as_text(table.column(label).combine_chunks())
    missing = sum(s is None for s in texts)
    if missing:
        raise DataError(f"the label column {label!r} of {where} has {missing} empty cells; every row needs a label")
    names = sorted(set(texts), key=lambda s: (0, float(s), s) if _is_number(s) else (1, 0.0, s))
    index = {s: i for i, s in enumerate(names)}
    return np.array([index[s] for s in texts], dtype=np.int64), names


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False
