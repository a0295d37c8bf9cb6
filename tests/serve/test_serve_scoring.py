"""The explorer's anomaly score is the one docs/anomaly.md says to trust, with the threshold
`vaekit score` flags with: checked against vaekit.scores / vaekit.anomaly computed directly."""

import shutil

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

import vaekit
from vaekit.evaluation.scores import score_examples, with_ensemble
from vaekit.serve.app import create_app
from vaekit.serve.explorer import Explorer
from vaekit.serve.scoring import Scorer, anomaly_score
from vaekit.workflows import anomaly


@pytest.fixture(scope="module")
def run_with_background(digits_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("scoring") / "with-bg"
    shutil.copytree(digits_run, path)  # the shared run stays without a background model
    anomaly.fit_background(path, epochs=1, progress=False)
    return path


def test_the_ensemble_with_its_validation_threshold_when_there_is_a_background(run_with_background):
    ex = Explorer.from_run(run_with_background, score_reference=40)
    model, sc = ex.model, ex.scorer
    assert sc.name == "ensemble" and sc.background is not None and sc.fpr == 0.05
    run = vaekit.load_run(run_with_background)
    bg = run.background().model
    val = run.data().val
    settings = anomaly.ScoreSettings(iw_samples=4)
    ref = anomaly.reference_scores(model, val, background=bg, settings=settings)
    assert sc.threshold == pytest.approx(anomaly.calibrate(model, val, background=bg, settings=settings)["ensemble"])
    assert 0.0 < np.mean(ref["ensemble"] > sc.threshold) <= 0.05 + 1 / len(val)  # flags about 5% of validation images
    x = ex.test.x[:7]
    expected = with_ensemble(score_examples(model, x, background=bg, iw_samples=4, seed=0), ref)["ensemble"]
    np.testing.assert_allclose(sc(x).numpy(), expected, rtol=1e-5, atol=1e-4)
    # an image far from the data (a white square) is flagged; the page reports it
    white = torch.ones(1, 8, 8)
    a = ex.analyze(white)
    assert a.flagged is True and a.score > sc.threshold
    client = TestClient(create_app(ex))
    info = client.get("/api/info").json()["score"]
    assert info["key"] == "ensemble" and info["threshold"] == pytest.approx(sc.threshold)
    r = client.get("/api/test/3").json()["score"]
    assert r["key"] == "ensemble" and r["flagged"] == (r["value"] > r["threshold"])
    assert "validation" in r["help"]


def test_without_background_the_choice_follows_the_likelihood(digits_run, tmp_path):
    bern = vaekit.load(digits_run)
    # without validation data there is nothing to rank against: no ensemble; and a Bernoulli NLL
    # is no code length of 8-bit pixels, so the complexity correction is not trusted alone
    assert Scorer.for_model(bern).name == "nll_iw"
    assert Scorer.for_model(bern, samples=1).name == "nelbo"
    assert Scorer.for_model(bern).threshold is None
    disc_run = vaekit.train(
        "digits",
        out=tmp_path / "dl",
        likelihood="discretized-logistic",
        arch="mlp",
        hidden=[32],
        latent_dim=2,
        epochs=1,
        progress=False,
        figures=False,
    )
    disc = disc_run.model
    assert Scorer.for_model(disc, val=disc_run.data().val).name == "ensemble"
    sc = Scorer.for_model(disc)
    assert sc.name == "complexity" and sc.threshold is None
    x = disc_run.data().test.x[:5]
    np.testing.assert_allclose(sc(x).numpy(), score_examples(disc, x, iw_samples=4)["complexity"], rtol=1e-5)
    background = anomaly.fit_background(disc_run.path, epochs=1, progress=False)
    with_bg = Scorer.for_model(vaekit.load(disc_run.path), background=background.model)
    assert with_bg.name == "complexity"  # preferred to llr here (BENCHMARKS.md)
    ae = vaekit.train(
        "digits",
        out=tmp_path / "ae",
        model="ae",
        arch="mlp",
        hidden=[32],
        latent_dim=2,
        epochs=1,
        progress=False,
        figures=False,
    )
    assert Scorer.for_model(ae.model).name == "recon_error"


def test_conditional_models_keep_the_conditional_negative_elbo(cvae_run):
    model = vaekit.load(cvae_run)
    val = vaekit.load_run(cvae_run).data().val
    sc = Scorer.for_model(model, val=val, fpr=0.1)
    assert sc.name == "nelbo" and sc.conditional
    s_val = anomaly_score(model, val.x, val.y, samples=4).numpy()
    assert sc.threshold == pytest.approx(float(np.quantile(s_val, 0.9, method="higher")), rel=1e-6)
