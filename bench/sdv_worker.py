"""Runs inside bench/.venv-sdv (bash bench/setup_tables.sh sdv) for bench/tables_synthetic.py:

export   --out DIR                     the tables (statsmodels' bundled data sets), split 80/20
                                       into DIR/NAME/train.csv and test.csv, with DIR/NAME/meta.json
fit      --model tvae|ctgan --dir DIR/NAME --seed S --out synthetic.csv
                                       SDV's synthesizer with its defaults; prints {"seconds", "version"}
evaluate --dir DIR/NAME --synthetic synthetic.csv
                                       SDMetrics' quality report (column shapes, column-pair
                                       trends), train-on-synthetic / test-on-real macro F1 of a
                                       random forest (and train-on-real for reference), and the
                                       fraction of synthetic rows that copy a training row
                                       (SDMetrics' NewRowSynthesis); prints one JSON line
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")

# name -> (loader, columns declared categorical for every contender, the classifier's target)
TABLES = {
    "fair": ("fair", ["occupation", "occupation_husb"], "religious"),
    "anes96": ("anes96", ["vote"], "vote"),
    "grunfeld": ("grunfeld", ["firm"], "firm"),
    "randhie": ("randhie", ["idp"], "idp"),
}
TEST_FRACTION = 0.2


def export(out: Path) -> None:
    import statsmodels.api as sm

    for name, (loader, categorical, target) in TABLES.items():
        df = getattr(sm.datasets, loader).load_pandas().data
        df = df.drop(columns=[c for c in ("logpopul",) if c in df])  # anes96: log of popul, a duplicate
        rng = np.random.default_rng(0)
        test = rng.permutation(len(df))[: int(TEST_FRACTION * len(df))]
        is_test = np.zeros(len(df), dtype=bool)
        is_test[test] = True
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        df[~is_test].to_csv(folder / "train.csv", index=False)
        df[is_test].to_csv(folder / "test.csv", index=False)
        meta = {"categorical": categorical, "target": target, "rows": int((~is_test).sum()), "columns": list(df)}
        (folder / "meta.json").write_text(json.dumps(meta))
        print(f"{name}: {len(df)} rows x {df.shape[1]} columns")


def metadata(folder: Path, df: pd.DataFrame):
    from sdv.metadata import Metadata

    meta = json.loads((folder / "meta.json").read_text())
    md = Metadata.detect_from_dataframes({"t": df})
    for c in df.columns:
        sdtype = "categorical" if c in meta["categorical"] else "numerical"
        md.update_column(column_name=c, sdtype=sdtype, table_name="t")
    return md, meta


def fit(model: str, folder: Path, seed: int, out: Path) -> None:
    import sdv
    import torch
    from sdv.single_table import CTGANSynthesizer, TVAESynthesizer

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    np.random.seed(seed)
    train = pd.read_csv(folder / "train.csv")
    md, _ = metadata(folder, train)
    make = TVAESynthesizer if model == "tvae" else CTGANSynthesizer
    synth = make(md)
    t0 = time.perf_counter()
    synth.fit({"t": train})
    seconds = time.perf_counter() - t0
    rows = synth.sample(num_rows=len(train))
    (rows["t"] if isinstance(rows, dict) else rows).to_csv(out, index=False)  # SDV 2 returns {table: rows}
    print(json.dumps({"seconds": seconds, "version": sdv.__version__}))


def _features(df: pd.DataFrame, target: str, categorical: list[str], columns=None) -> pd.DataFrame:
    x = pd.get_dummies(df.drop(columns=[target]), columns=[c for c in categorical if c != target], dtype=float)
    x = x.fillna(x.median(numeric_only=True))
    return x if columns is None else x.reindex(columns=columns, fill_value=0.0)


def classifier_f1(train: pd.DataFrame, test: pd.DataFrame, target: str, categorical: list[str]) -> float:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import f1_score

    xt = _features(train, target, categorical)
    model = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1)
    model.fit(xt, train[target].astype(str))
    pred = model.predict(_features(test, target, categorical, columns=xt.columns))
    return float(f1_score(test[target].astype(str), pred, average="macro"))


def evaluate(folder: Path, synthetic_path: Path) -> None:
    from sdmetrics.reports.single_table import QualityReport
    from sdmetrics.single_table import NewRowSynthesis

    train, test = pd.read_csv(folder / "train.csv"), pd.read_csv(folder / "test.csv")
    synthetic = pd.read_csv(synthetic_path)[list(train.columns)]
    for c in train.columns:  # the same dtypes as the data (1 and 1.0 are the same category)
        synthetic[c] = synthetic[c].astype(train[c].dtype)
    md, meta = metadata(folder, train)
    md_dict = md.to_dict()["tables"]["t"]
    report = QualityReport()
    report.generate(train, synthetic, md_dict, verbose=False)
    props = report.get_properties().set_index("Property")["Score"]
    new = NewRowSynthesis.compute(train, synthetic, md_dict, numerical_match_tolerance=0.01, synthetic_sample_size=None)
    out = {
        "quality": float(report.get_score()),
        "column_shapes": float(props["Column Shapes"]),
        "column_pair_trends": float(props["Column Pair Trends"]),
        "tstr_f1": classifier_f1(synthetic, test, meta["target"], meta["categorical"]),
        "trtr_f1": classifier_f1(train, test, meta["target"], meta["categorical"]),
        "copies": float(1.0 - new),
    }
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=("export", "fit", "evaluate"))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--dir", type=Path)
    ap.add_argument("--model", choices=("tvae", "ctgan"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--synthetic", type=Path)
    args = ap.parse_args()
    if args.command == "export":
        export(args.out)
    elif args.command == "fit":
        fit(args.model, args.dir, args.seed, args.out)
    else:
        evaluate(args.dir, args.synthetic)


if __name__ == "__main__":
    main()
