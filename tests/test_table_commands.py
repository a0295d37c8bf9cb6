"""Commands on a run trained on a table: sample, score, encode, impute, reconstruct, report and the
explorer, all in the table's own columns and units."""

import csv

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import run_cli, write_people_csv

import vaekit
from vaekit.data import read_table
from vaekit.workflows import anomaly, tables

TINY = {"epochs": 8, "hidden": [32], "latent_dim": 3, "batch_size": 32}


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    return write_people_csv(tmp_path_factory.mktemp("people") / "people.csv", n=300)


@pytest.fixture(scope="module")
def run(people, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "people"
    vaekit.train(str(people), out=out, label="y", progress=False, **TINY)
    return vaekit.load_run(out)


def test_train_prints_the_columns(people, tmp_path, capsys):
    code, out, err = run_cli(
        ["train", "--data", people, "--label", "y", "--epochs", 1, "--out", tmp_path / "r"], capsys
    )
    assert code == 0, err
    assert "columns (change with --categorical" in out and "  city: categorical (3 values)" in out
    assert "  id: dropped (identifier-like" in out and "  y: label" in out


def test_sample_writes_rows_like_the_input(run, people, tmp_path, capsys):
    code, out, err = run_cli(["sample", run.path, "-n", 500, "--out", tmp_path / "syn.csv"], capsys)
    assert code == 0, err
    syn, real = read_table(tmp_path / "syn.csv"), read_table(people)
    assert syn.num_rows == 500 and syn.column_names == ["age", "income", "city", "member", "joined"]
    for name in ("age", "income", "joined"):  # same type, within the input's range
        assert syn.column(name).type == real.column(name).type
        observed = real.column(name).combine_chunks().drop_null().to_numpy(zero_copy_only=False)
        values = syn.column(name).to_numpy()
        assert observed.min() <= values.min() and values.max() <= observed.max()
    assert set(syn.column("city").to_pylist()) == {"Oslo", "Bergen", "Tromso"}
    assert set(syn.column("member").to_pylist()) <= {"yes", "no"}
    # the same seed, the same rows; the share of Oslo near the data's (0.5)
    again = tables.sample_rows(run, 500, seed=0)
    assert again.equals(syn) and abs(np.mean(np.array(again.column("city").to_pylist()) == "Oslo") - 0.5) < 0.15
    code, _, err = run_cli(["sample", run.path, "--out", tmp_path / "syn.png"], capsys)
    assert code == 2 and "must name a .csv, .tsv or .parquet file" in err


def test_score_names_the_flag_and_the_columns_behind_each_score(run, people, tmp_path, capsys):
    text = people.read_text().splitlines()
    odd = text[:21] + [
        text[21].replace(",Oslo,", ",Paris,").replace(",Bergen,", ",Paris,").replace(",Tromso,", ",Paris,")
    ]
    odd.append("999,30,99999999.00,Oslo,yes,2015-01-11,far out,a")  # an income far beyond the data
    (tmp_path / "odd.csv").write_text("\n".join(odd) + "\n")
    code, out, err = run_cli(
        ["score", run.path, "--data", tmp_path / "odd.csv", "--out", tmp_path / "s.csv", "-q"], capsys
    )
    assert code == 0, err
    assert "flagged by ensemble >" in out and "1 cells of column 'city' hold values never seen in training" in out
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert list(rows[0]) == [
        "name",
        "label",
        "recon_error",
        "nelbo",
        "ensemble",
        "flagged",
        "top_columns",
        "unseen_categories",
    ]
    assert rows[0]["label"] in ("a", "b") and rows[20]["unseen_categories"] == "1"
    far = rows[21]
    assert far["flagged"] == "1" and far["top_columns"].startswith("income (+")
    assert float(far["ensemble"]) == max(float(r["ensemble"]) for r in rows)


def test_encode_reconstruct_to_tables(run, tmp_path, capsys):
    code, _, err = run_cli(["encode", run.path, "--out", tmp_path / "z.parquet"], capsys)
    assert code == 0, err
    z = pq.read_table(tmp_path / "z.parquet")
    assert z.num_rows == 300 and z.column_names[:3] == ["split", "row", "y"] and "logvar_2" in z.column_names
    code, _, err = run_cli(["reconstruct", run.path, "--out", tmp_path / "rec.csv"], capsys)
    assert code == 0, err
    rec = read_table(tmp_path / "rec.csv")
    assert rec.num_rows == len(run.data().test) and rec.column_names == ["age", "income", "city", "member", "joined"]


def test_impute_fills_only_the_gaps(run, people, tmp_path, capsys):
    rows = people.read_text().splitlines()[:41]
    gappy = [rows[0]] + [
        ",".join("" if j == 3 and i % 3 == 0 else v for j, v in enumerate(r.split(","))) for i, r in enumerate(rows[1:])
    ]
    (tmp_path / "gaps.csv").write_text("\n".join(gappy) + "\n")
    code, out, err = run_cli(["impute", run.path, "--data", tmp_path / "gaps.csv", "--out", tmp_path / "f.csv"], capsys)
    assert code == 0, err
    before, after = read_table(tmp_path / "gaps.csv"), read_table(tmp_path / "f.csv")
    n_gaps = sum(c.null_count for c in before.columns if c is not before.column("id"))
    assert f"filled {n_gaps} empty cells" in out and "decoded means" in out
    assert after.column("city").null_count == 0 and after.column("age").null_count == 0
    keep = [i for i, v in enumerate(before.column("city").to_pylist()) if v is not None]
    assert [after.column("city")[i].as_py() for i in keep] == [before.column("city")[i].as_py() for i in keep]
    assert after.column("notes").equals(before.column("notes")) and after.column_names == before.column_names
    code, out, err = run_cli(
        [
            "impute",
            run.path,
            "--data",
            tmp_path / "gaps.csv",
            "--out",
            tmp_path / "g.csv",
            "--method",
            "sample",
            "--seed",
            "1",
        ],
        capsys,
    )
    assert code == 0 and "draws from the model" in out
    code, _, err = run_cli(
        ["impute", run.path, "--data", tmp_path / "gaps.csv", "--out", tmp_path / "gaps.csv"], capsys
    )
    assert code == 2 and "would overwrite" in err


def test_the_report_shows_columns_correlations_and_the_latent_map(run):
    from vaekit.workflows.evaluate import evaluate_run
    from vaekit.workflows.report import write_report

    run.save_evaluation(evaluate_run(run, iw_samples=2, sample_quality=False))
    html = write_report(run.path).read_text()
    for section in ("Columns: data and synthetic rows", "Correlations", "Reconstructions", "Latent space"):
        assert f"<h2>{section}</h2>" in html
    assert "<th>city</th>" in html and "Traversals" not in html


def test_the_ensemble_is_the_default_and_flags_its_fraction(run):
    val = run.data().val
    ref = anomaly.reference_scores(run.model, val)
    t = anomaly.thresholds_for(ref, 0.2)
    assert anomaly.pick_score(list(ref), model=run.model) == "ensemble"
    assert np.mean(ref["ensemble"] > t["ensemble"]) == pytest.approx(0.2, abs=0.05)
