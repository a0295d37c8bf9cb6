"""`vaekit evaluate`, `compare` and `report` end to end on tiny digits runs, and bad input."""

import json
import re

import numpy as np
import pytest
from helpers import run_cli

import vaekit

TINY = dict(arch="mlp", hidden=[32], latent_dim=4, epochs=2, batch_size=64, progress=False, figures=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    vaekit.train("digits", out=root / "vae", likelihood="discretized-logistic", **TINY)
    vaekit.train("digits", out=root / "ae", model="ae", likelihood="discretized-logistic", **TINY)
    return root


def test_evaluate_prints_a_table_and_writes_json(runs, tmp_path, capsys):
    code, out, err = run_cli(["evaluate", runs / "vae", "--iw-samples", 20, "--out", tmp_path / "m.json", "-q"], capsys)
    assert code == 0, err
    res = json.loads((tmp_path / "m.json").read_text())
    lik = res["likelihood"]
    assert lik["discrete"] and lik["iw_samples"] == 20 and lik["n_examples"] == 180
    assert lik["nll_bits_per_dim"] == pytest.approx(lik["nll"] / (64 * np.log(2)))
    assert lik["nll"] < lik["nelbo"]
    assert res["latent"]["latent_dim"] == 4 and len(res["latent"]["kl_per_dim"]) == 4
    assert 0 < res["reconstruction"]["ssim"] <= 1 and res["reconstruction"]["psnr"] > 0
    smp = res["samples"]
    assert smp["fd_samples"] > smp["fd_train_reference"] >= 0
    assert smp["k"] == 3 and all(
        0 <= smp[f"{m}_{s}"] <= 1 for m in ("precision", "recall") for s in ("samples", "train_reference")
    )
    # 2 epochs of a tiny MLP: blurrier than the data, and its look-alike samples cover little of it
    assert smp["sharpness_samples"] < 1 and smp["sharpness_reconstructions"] < 1
    assert smp["recall_samples"] < smp["recall_train_reference"] - 0.3
    for text in (
        "-ELBO",
        "NLL, IWAE k=20",
        "bits/dim",
        "active units",
        "PSNR",
        "FD (classifier features)",
        "precision / recall (k=3)",
        "sharpness ratio",
    ):
        assert text in out
    assert re.search(r"NLL, IWAE k=20\s+[0-9.]+ ± [0-9.]+ nats/example", out)


def test_evaluate_an_autoencoder_skips_the_likelihood(runs, capsys):
    code, out, err = run_cli(
        ["evaluate", runs / "ae", "-k", 5, "--max-examples", 50, "--no-sample-quality", "-q"], capsys
    )
    assert code == 0, err
    res = json.loads((runs / "ae" / "evaluation.json").read_text())
    assert res["likelihood"] is None and res["samples"] is None and res["n_examples"] == 50
    assert res["latent"]["kl_per_dim"] is None and "MSE" in out and "NLL" not in out


def test_compare_ae_and_vae(runs, tmp_path, capsys):
    code, out, err = run_cli(["compare", runs / "ae", runs / "vae", "--out", tmp_path / "cmp", "-q"], capsys)
    assert code == 0, err
    res = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert res["labels"] == ["AE", "VAE"]
    for label in ("AE", "VAE"):
        m = res["models"][label]
        assert m["fd_prior_samples"] > 0 and m["fd_fitted_gaussian_samples"] > 0 and m["recon_mse"] > 0
        assert 0 <= m["precision_prior_samples"] <= 1 and 0 <= m["recall_prior_samples"] <= 1
        assert 0 < m["sharpness_prior_samples"] and 0 < m["sharpness_reconstructions"] < 1
        # no prior fitted: the run's prior is N(0, I), and its numbers are those
        assert m["run_prior"] == "standard" and m["fd_run_prior_samples"] == m["fd_prior_samples"]
    assert len(list((tmp_path / "cmp").glob("*.png"))) == 12
    html = (tmp_path / "cmp" / "compare.html").read_text()
    assert html.count("data:image/png;base64,") == 12 and "http" not in html
    for text in (
        "FD (classifier features), z ~ N(0, I)",
        "recall of N(0, I) samples",
        "sharpness ratio of reconstructions",
    ):
        assert text in out


def test_report_is_one_self_contained_file(runs, capsys):
    code, out, err = run_cli(["report", runs / "vae", "-k", 5, "-q"], capsys)
    assert code == 0, err
    html = (runs / "vae" / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert html.count("<img ") == html.count("data:image/png;base64,") == 8  # curves, KL, activity .. scatter
    assert not re.search(r"(src|href)=\"(https?:|//|file:)", html)  # nothing to fetch
    for section in (
        "Metrics",
        "Training",
        "Latent health",
        "Reconstructions",
        "Samples",
        "Interpolations",
        "Traversals",
        "Latent space",
    ):
        assert f"<h2>{section}</h2>" in html
    assert "bits/dim" in html and "precision / recall (k=3)" in html and "sharpness ratio" in html


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "{tmp}/nope"], "no such run folder"),
        (["evaluate", "{vae}", "--iw-samples", "0"], "at least 1"),
        (["evaluate", "{vae}", "--max-examples", "1"], "at least 2"),
        (["evaluate", "{vae}", "--out", "{tmp}"], "is a folder"),
        (["evaluate", "{vae}", "--split", "nonsense"], "unknown split"),
        (["report", "{vae}", "--metrics", "{tmp}/garbage.json"], "not a vaekit evaluation"),
        (["report", "{vae}", "--metrics", "{tmp}/missing.json"], "no such metrics file"),
        (["compare", "{vae}", "{other}"], "same data"),
        (["compare", "{vae}", "{vae}", "--out", "{tmp}/garbage.json"], "is a file"),
    ],
)
def test_bad_input_ends_in_one_sentence(runs, tmp_path, capsys, argv, message):
    (tmp_path / "garbage.json").write_text("{not json")
    other = tmp_path / "other"
    x = np.random.default_rng(0).random((60, 4)).astype(np.float32)
    np.savez(tmp_path / "vectors.npz", x=x, y=np.arange(60) % 3)
    if "{other}" in argv:
        vaekit.train(str(tmp_path / "vectors.npz"), out=other, **{**TINY, "epochs": 1})
    argv = [a.format(tmp=tmp_path, vae=runs / "vae", other=other) for a in argv]
    code, out, err = run_cli(argv, capsys)
    assert code == 2
    assert err.startswith("vaekit: error:") and message in err and len(err.strip().splitlines()) == 1


def test_discretized_likelihood_refuses_data_outside_unit_interval(tmp_path, capsys):
    np.save(tmp_path / "wide.npy", np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32))
    code, out, err = run_cli(
        [
            "train",
            "--data",
            tmp_path / "wide.npy",
            "--likelihood",
            "discretized-gaussian",
            "--epochs",
            1,
            "--out",
            tmp_path / "r",
            "-q",
        ],
        capsys,
    )
    assert code == 2 and "discretized-gaussian" in err and "outside [0, 1]" in err


def test_dynamically_binarized_run_gets_bits_per_dim_on_a_fixed_binarization(tmp_path):
    from vaekit.workflows.evaluate import evaluate_run

    vaekit.train("digits", out=tmp_path / "bin", binarize="dynamic", **{**TINY, "epochs": 1})
    run = vaekit.load_run(tmp_path / "bin")
    res = evaluate_run(run, iw_samples=3, sample_quality=False)
    assert res["binarized"] and res["likelihood"]["discrete"]
    assert res["likelihood"]["nll_bits_per_dim"] == pytest.approx(res["likelihood"]["nll"] / (64 * np.log(2)))
    # the same run evaluated on grey levels would have no bits/dim: Bernoulli is no distribution over them
    run.config.train.binarize = "none"
    res = evaluate_run(run, iw_samples=3, sample_quality=False)
    assert not res["binarized"] and not res["likelihood"]["discrete"]


def test_vectors_get_mse_but_no_image_metrics(tmp_path, capsys):
    x = np.random.default_rng(0).random((80, 4)).astype(np.float32)
    np.savez(tmp_path / "vectors.npz", x=x, y=np.arange(80) % 2)
    vaekit.train(str(tmp_path / "vectors.npz"), out=tmp_path / "v", matrix="raw", **{**TINY, "epochs": 1})
    code, out, err = run_cli(["evaluate", tmp_path / "v", "-k", 4, "-q"], capsys)
    assert code == 0, err
    res = json.loads((tmp_path / "v" / "evaluation.json").read_text())
    assert res["reconstruction"]["psnr"] is None and res["reconstruction"]["ssim"] is None
    assert res["reconstruction"]["mse"] > 0 and res["samples"]["fd_samples"] >= 0
    assert "sharpness_samples" not in res["samples"] and 0 <= res["samples"]["recall_samples"] <= 1
    assert "PSNR" not in out and "sharpness" not in out and "Bernoulli on grey levels" in out
