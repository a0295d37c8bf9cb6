"""Anomaly detection end to end on tiny digits runs: background model, thresholds, the
`score` and `fit-background` commands, and one-sentence errors for bad input to `score`."""

import csv
import json

import numpy as np
import pytest
import torch
from helpers import needs_fashion_mnist, run_cli

import vaekit
from vaekit.data import read_examples
from vaekit.errors import VaekitError
from vaekit.workflows import anomaly

NEEDS_FASHION_MNIST = needs_fashion_mnist()

TINY = dict(arch="mlp", hidden=[32], latent_dim=3, batch_size=128, progress=False, figures=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny digits VAE trained without the digit 9, with its background model."""
    folder = tmp_path_factory.mktemp("anomaly") / "run"
    vaekit.train("digits", out=folder, epochs=3, exclude_labels=[9], **TINY)
    anomaly.fit_background(folder, epochs=2, progress=False)
    return folder


@pytest.fixture(scope="module")
def noise_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("noise") / "noise.npy"
    np.save(path, np.random.default_rng(0).random((40, 1, 8, 8)).astype(np.float32))
    return path


@pytest.fixture(scope="module")
def large_file(tmp_path_factory):
    """Images of another shape than the run's 8x8 digits."""
    path = tmp_path_factory.mktemp("large") / "large.npy"
    np.save(path, np.random.default_rng(0).random((10, 1, 12, 12)).astype(np.float32))
    return path


def test_background_is_a_run_folder_trained_on_perturbed_inputs(run):
    bg_dir = run / "background"
    info = json.loads((bg_dir / "config.json").read_text())["info"]
    assert info["perturbation"] == "uniform:0.2" and info["background_of"] == str(run)
    model = vaekit.load(run)
    background = vaekit.load_run(run).background()
    assert background is not None and background.path == bg_dir
    bg = background.model
    assert bg.config == model.config
    assert not torch.equal(bg.state_dict()["decoder.head.weight"], model.state_dict()["decoder.head.weight"])
    with pytest.raises(VaekitError, match="already holds a background"):
        anomaly.fit_background(run, epochs=1, progress=False)


def test_background_needs_a_vae(tmp_path):
    vaekit.train("digits", out=tmp_path / "ae", model="ae", epochs=1, **TINY)
    with pytest.raises(VaekitError, match="needs a VAE"):
        anomaly.fit_background(tmp_path / "ae", epochs=1, progress=False)


def test_thresholds_flag_the_asked_fraction_of_in_distribution_data(run):
    model = vaekit.load(run)
    val = vaekit.load_run(run).data().val
    thresholds = anomaly.calibrate(model, val, fpr=0.2)
    s = anomaly.reference_scores(model, val)  # every score of the validation split, the ensemble too
    assert set(thresholds) == set(s) == {"recon_error", "nelbo", "complexity", "ensemble"}
    for name, t in thresholds.items():
        assert np.mean(s[name] > t) == pytest.approx(0.2, abs=0.02), name


def test_score_writes_one_row_per_input_with_a_flag(run, capsys, tmp_path):
    code, out, err = run_cli(["score", run, "--data", "digits:test", "--out", tmp_path / "s.csv", "-q"], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert len(rows) == 180 and rows[0]["name"] == "test[0]"
    assert set(rows[0]) == {"name", "label", "recon_error", "nelbo", "complexity", "llr", "ensemble", "flagged"}
    flagged = np.array([int(r["flagged"]) for r in rows])
    ensemble = np.array([float(r["ensemble"]) for r in rows])
    assert "flagged by ensemble" in out
    r = vaekit.load_run(run)
    threshold = anomaly.calibrate(r.model, r.data().val, background=r.background().model)["ensemble"]
    np.testing.assert_array_equal(flagged, ensemble > threshold)
    assert 0 < flagged.sum() < 60


def test_score_evaluates_out_data_and_held_out_classes(run, noise_file, capsys, tmp_path):
    code, out, err = run_cli(["score", run, "--out-data", noise_file, "--report", tmp_path / "ood", "-q"], capsys)
    assert code == 0, err
    m = json.loads((tmp_path / "ood" / "metrics.json").read_text())
    assert set(m["scores"]) == {"recon_error", "nelbo", "complexity", "llr", "ensemble"}
    assert m["n_out"] == 40 and m["in_data"] == "digits:test"
    assert m["scores"]["nelbo"]["auroc"] > 0.9  # uniform noise is easy for the likelihood
    for f in ["roc.png", "histograms.png", "scores.csv", "report.md"]:
        assert (tmp_path / "ood" / f).stat().st_size > 0
    # no --out-data: the classes the run was trained without are the anomalies
    code, out, err = run_cli(["score", run, "--report", tmp_path / "held", "-q"], capsys)
    assert code == 0, err
    m = json.loads((tmp_path / "held" / "metrics.json").read_text())
    test_y = read_examples("digits:test", data_shape=[1, 8, 8]).y
    assert m["n_out"] == int((test_y == 9).sum()) and m["n_in"] == int((test_y != 9).sum())
    assert "trained without (9)" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["--data", "digits:test", "--out-data", "digits:val"], "not both"),
        (["--out-data", "digits:val", "--out", "x.csv"], "--out is for --data"),
        ([], "give --data SOURCE"),
        pytest.param(
            ["--data", "fashion-mnist:test"], "model was trained on shape (1, 8, 8)", marks=NEEDS_FASHION_MNIST
        ),
        (["--data", "LARGE"], "model was trained on shape (1, 8, 8)"),
        (["--data", "digits:tset"], "no such file or folder"),
        (["--data", "digits:test", "--flag-by", "nope"], "score 'nope' is not available"),
        (["--data", "digits:test", "--flag-by", "nll_iw"], "--iw-samples"),
        (["--data", "digits:test", "--fpr", "1.5"], "--fpr must lie"),
        (["--data", "digits:test", "--iw-samples", "1"], "iw_samples must be 0"),
        (["--data", "digits:test", "--compressor", "rar"], "unknown compressor"),
        (["--out-data", "digits:test", "--anomaly-label", "42"], "no example labelled 42"),
        (["--in-data", "NOISE", "--anomaly-label", "1"], "has no labels"),
        (["--in-data", "NOISE", "--report", "R"], "needs out-of-distribution examples"),
    ],
)
def test_bad_inputs_to_score_are_one_sentence_errors(run, noise_file, large_file, capsys, tmp_path, args, message):
    places = {"NOISE": str(noise_file), "LARGE": str(large_file), "R": str(tmp_path / "r")}
    args = [places.get(a, a) for a in args]
    code, out, err = run_cli(["score", run, *args, "-q"], capsys)
    assert code == 2
    assert err.startswith("vaekit: error: ") and message in err and err.count("\n") == 1
    assert "Traceback" not in err


def test_score_on_a_missing_run_folder(capsys, tmp_path):
    code, _, err = run_cli(["score", tmp_path / "nothing", "--data", "digits:test"], capsys)
    assert code == 2 and "no such run folder" in err
