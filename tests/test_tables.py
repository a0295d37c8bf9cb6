"""Tables in the data layer: reading (CSV, TSV, Parquet, matrices), column kinds and overrides,
fitted transforms (against scipy), encoding and decoding in the user's units, missing cells,
bad tables in one sentence, and the run folder that keeps the columns."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from helpers import run_cli, write_people_csv
from scipy import stats

import vaekit
from vaekit.config import DataConfig
from vaekit.data import load_data, read_examples, read_table, write_table
from vaekit.data.schema import Column, yeo_johnson, yeo_johnson_inverse
from vaekit.errors import DataError

TINY = {"epochs": 1, "hidden": [16], "latent_dim": 2, "batch_size": 32}


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    return write_people_csv(tmp_path_factory.mktemp("people") / "people.csv")


def test_column_kinds_are_inferred_and_described(people):
    d = load_data(DataConfig(source=str(people), label="y"))
    s = d.table
    kinds = {c.name: c.kind for c in s.columns}
    assert kinds == {
        "age": "integer",
        "income": "numeric",
        "city": "categorical",
        "member": "boolean",
        "joined": "datetime",
    }
    assert dict(s.dropped) == {"id": "identifier-like: a distinct whole number per row", "notes": "free text"}
    assert s.column("income").transform == "yeo-johnson" and s.column("age").transform == "standard"
    assert s.column("city").categories == ["Bergen", "Oslo", "Tromso"] and s.column("member").categories == [
        "no",
        "yes",
    ]
    assert s.heads == ["gaussian", "gaussian", "categorical:3", "bernoulli", "gaussian"]
    assert d.shape == [s.data_dim] == [2 + 2 + 4 + 2 + 2] and d.class_names == ["a", "b"] and not d.is_image
    assert "city: categorical (3 values)" in s.describe() and "notes: dropped (free text)" in s.describe()


def test_overrides_change_the_kinds(people):
    s = load_data(DataConfig(source=str(people), categorical=["age"], ignore=["joined"], numeric=["id"])).table
    kinds = {c.name: c.kind for c in s.columns}
    assert kinds["age"] == "categorical" and kinds["id"] == "integer" and "joined" not in kinds
    assert ("joined", "--ignore") in s.dropped and "y" in kinds  # without --label, y is a feature (boolean)
    with pytest.raises(DataError, match="has no column 'nope'"):
        load_data(DataConfig(source=str(people), ignore=["nope"]))
    with pytest.raises(DataError, match="--numeric city: .* not a number"):
        load_data(DataConfig(source=str(people), numeric=["city"]))


def test_yeo_johnson_matches_scipy_and_inverts():
    x = np.concatenate([np.random.default_rng(0).lognormal(0, 1, 200), -np.random.default_rng(1).lognormal(0, 1, 50)])
    for lam in (-1.3, 0.0, 0.5, 2.0, 2.7):
        assert np.allclose(yeo_johnson(x, lam), stats.yeojohnson(x, lam), rtol=1e-10, atol=1e-12)
        assert np.allclose(yeo_johnson_inverse(yeo_johnson(x, lam), lam), x, rtol=1e-8)


def test_numeric_transform_standardises_and_clips_to_the_range():
    v = np.random.default_rng(0).lognormal(3, 1, 1000)
    c = Column("v", "numeric", "number")
    c.fit_numbers(v)
    t = c.to_model(v)
    assert (
        c.transform == "yeo-johnson"
        and abs(stats.skew(t)) < 0.25 < stats.skew(v) / 10
        and abs(t.mean()) < 1e-9
        and abs(t.std() - 1) < 1e-9
    )
    assert np.allclose(c.from_model(t), v) and c.from_model(np.array([50.0]))[0] == pytest.approx(v.max())
    assert 0 <= c.lam <= 2 and c.to_model(np.array([100 * v.max()]))[0] > t.max() + 3  # far stays far


def test_encode_decode_round_trip_in_the_users_units(people):
    d = load_data(DataConfig(source=str(people), label="y"))
    rows = read_table(people)
    x, report = d.table.encode(rows, "people.csv")
    back = d.table.decode(x)
    assert back.column_names == ["age", "income", "city", "member", "joined"]
    age_in, age_out = rows.column("age").to_numpy(zero_copy_only=False), back.column("age").to_numpy()
    seen = ~np.isnan(age_in)
    assert back.column("age").type == pa.int64() and np.array_equal(age_out[seen], age_in[seen])
    assert np.allclose(back.column("income").to_numpy(), rows.column("income").to_numpy(), rtol=1e-6)
    assert back.column("city").to_pylist() == rows.column("city").to_pylist()
    assert back.column("member").to_pylist() == rows.column("member").to_pylist()
    assert back.column("joined").type == pa.date32() and back.column("joined").combine_chunks().equals(
        rows.column("joined").combine_chunks()
    )
    # a missing age is a presence flag of 0 and a value of 0
    gap = int(np.flatnonzero(~seen)[0])
    assert x[gap, 0] == 0 and x[gap, 1] == 0 and report.notes == [] and report.unseen.sum() == 0


def test_tsv_parquet_and_matrices_are_tables(tmp_path, people):
    rows = read_table(people)
    write_table(rows, tmp_path / "p.parquet")
    write_table(rows, tmp_path / "p.tsv")
    a = load_data(DataConfig(source=str(people), label="y"))
    for other in ("p.parquet", "p.tsv"):
        b = load_data(DataConfig(source=str(tmp_path / other), label="y"))
        assert b.table.heads == a.table.heads and torch.allclose(b.train.x, a.train.x, atol=1e-5)
    m = np.random.default_rng(0).normal(size=(50, 3))
    m[3, 1] = np.nan  # NaN in a matrix is a missing cell
    np.savez(tmp_path / "m.npz", X=m, y=np.arange(50) % 2)
    d = load_data(DataConfig(source=str(tmp_path / "m.npz")))
    assert [c.name for c in d.table.columns] == ["x0", "x1", "x2"] and d.class_names == ["0", "1"]
    np.save(tmp_path / "clean.npy", np.nan_to_num(m))
    assert load_data(DataConfig(source=str(tmp_path / "clean.npy"), matrix="raw")).shape == [3]


def _bad_tables(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "ids.csv").write_text("id\n" + "\n".join(str(i) for i in range(30)) + "\n")
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3\n4,5\n")
    (tmp_path / "header.csv").write_text("a,b\n")
    np.save(tmp_path / "inf.npy", np.array([[1.0, np.inf]] * 20))
    return {
        "empty.csv": "is empty",
        "ids.csv": "has no column vaekit can model (dropped: id (identifier-like",
        "ragged.csv": "has ragged rows: Expected 2 columns, got 1",
        "header.csv": "has a header but no rows",
        "inf.npy": "non-finite values (inf)",
    }


def test_bad_tables_are_one_sentence(tmp_path, capsys):
    for name, message in _bad_tables(tmp_path).items():
        code, _, err = run_cli(["train", "--data", tmp_path / name, "--out", tmp_path / "r", "-q"], capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (name, err)
        assert not (tmp_path / "r").exists()


def test_run_keeps_its_columns_and_reads_new_rows_through_them(tmp_path, people):
    run = vaekit.train(str(people), out=tmp_path / "run", label="y", progress=False, figures=False, **TINY)
    assert run.table_path.is_file() and run.config.model.likelihood == "tabular"
    again = vaekit.load_run(tmp_path / "run")
    assert torch.equal(again.data().test.x, run.data().test.x) and again.table().to_json() == run.table().to_json()
    # score-time rows: a changed type is named, unseen categories are counted, extra columns ignored
    text = people.read_text().splitlines()
    changed = [text[0]] + [line.replace(",Oslo,", ",Paris,") for line in text[1:20]]
    (tmp_path / "new.csv").write_text("\n".join(changed) + "\n")
    ex = again.examples(str(tmp_path / "new.csv"))
    paris = sum(",Paris," in line for line in changed)
    assert int(ex.unseen.sum()) == paris > 0 and f"{paris} cells of column 'city'" in ex.notes[0]
    assert ex.y is not None and len(ex) == 19
    broken = [text[0]] + [line.replace(",Oslo,", ",Oslo,", 1) for line in text[1:20]]
    broken[3] = broken[3].replace(broken[3].split(",")[2], "lots", 1)  # income becomes text
    (tmp_path / "broken.csv").write_text("\n".join(broken) + "\n")
    with pytest.raises(DataError, match="column 'income' held numbers in training but holds text"):
        again.examples(str(tmp_path / "broken.csv"))
    cut = pa.table({"age": [30, 40]})
    pq.write_table(cut, tmp_path / "cut.parquet")
    with pytest.raises(DataError, match="lacks the column"):
        read_examples(str(tmp_path / "cut.parquet"), data_shape=run.config.model.data_shape, table=again.table())


def test_numbers_come_back_with_the_inputs_decimal_places():
    from vaekit.data.schema import decimal_places

    assert decimal_places(np.array([1.25, 3.5, 10.0])) == 2 and decimal_places(np.array([3.0, 4.0])) == 0
    assert decimal_places(np.random.default_rng(0).normal(size=50)) is None
    c = Column("price", "numeric", "number")
    c.fit_numbers(np.array([9.99, 12.50, 100.00, 7.25, 15.10]))
    assert c.decimals == 2 and np.array_equal(
        c.from_model(np.array([0.123456])), np.round(c.from_model(np.array([0.123456])), 2)
    )
