"""A fitted prior is what `evaluate` and `report` draw their samples from (as `sample` does),
and `sample --temperature` scales the prior's spread."""

import json

import pytest
import torch
from helpers import run_cli

import vaekit
from vaekit.core import priors
from vaekit.core.sampling import sample
from vaekit.evaluation.classifier import get_classifier
from vaekit.evaluation.evaluate import evaluate
from vaekit.evaluation.sample_quality import feature_frechet_distance
from vaekit.workflows import report
from vaekit.workflows.fit_prior import fit_prior

TINY = dict(arch="mlp", hidden=[64], latent_dim=4, epochs=3, beta=0.5, progress=False, figures=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny digits VAE with a fitted 5-component mixture prior (its default prior)."""
    path = tmp_path_factory.mktemp("prior-use") / "run"
    vaekit.train("digits", out=path, **TINY)
    fit_prior(path, kind="gmm", components=5, progress=False)
    return path


def _fd(run, kind: str) -> float:
    """FD (classifier features) of len(test) samples (seed 0) from one prior vs the test split,
    computed here from the pieces rather than by evaluate."""
    r = vaekit.load_run(run)
    model, data = r.model, r.data()
    x = sample(model, len(data.test), prior=r.prior(kind), seed=0)
    return feature_frechet_distance(get_classifier(r.config.data, data), x, data.test.x)


def test_evaluate_measures_the_fitted_prior(run, capsys):
    code, out, err = run_cli(["evaluate", run, "-k", 5, "--max-examples", 40, "-q"], capsys)
    assert code == 0, err
    smp = json.loads((run / "evaluation.json").read_text())["samples"]
    assert smp["prior"] == "gmm"
    assert smp["fd_samples"] == pytest.approx(_fd(run, "gmm"), rel=1e-6)
    assert smp["fd_samples_standard"] == pytest.approx(_fd(run, "standard"), rel=1e-6)
    assert smp["fd_samples"] != pytest.approx(smp["fd_samples_standard"], rel=1e-3)
    assert "z ~ the fitted Gaussian mixture" in out and "FD, z ~ N(0, I)" in out
    # --prior standard: N(0, I), as before any prior was fitted
    code, out, err = run_cli(["evaluate", run, "-k", 5, "--max-examples", 40, "--prior", "standard", "-q"], capsys)
    assert code == 0, err
    smp = json.loads((run / "evaluation.json").read_text())["samples"]
    assert smp["prior"] == "standard" and "fd_samples_standard" not in smp
    assert smp["fd_samples"] == pytest.approx(_fd(run, "standard"), rel=1e-6)
    assert "z ~ N(0, I) vs test" in out
    code, out, err = run_cli(["evaluate", run, "--prior", "vae", "-q"], capsys)
    assert code == 2 and "no fitted vae prior" in err and "Traceback" not in err


def test_report_draws_from_the_fitted_prior(run, tmp_path, capsys):
    # evaluation.json (from the test above or made here) measured N(0, I): the report says so
    code, _, err = run_cli(["evaluate", run, "-k", 5, "--max-examples", 40, "--prior", "standard", "-q"], capsys)
    assert code == 0, err
    html = report.write_report(run, out=tmp_path / "r.html").read_text()
    assert "64 decoded z ~ the fitted Gaussian mixture" in html
    assert "its FD used samples from N(0, I)" in html and "run `vaekit evaluate` again" in html
    # measured again with the fitted prior: no such note
    code, _, err = run_cli(["evaluate", run, "-k", 5, "--max-examples", 40, "-q"], capsys)
    assert code == 0, err
    html = report.write_report(run, out=tmp_path / "r2.html").read_text()
    assert "its FD used samples" not in html and "64 decoded z ~ the fitted Gaussian mixture" in html
    html = report.write_report(run, out=tmp_path / "r3.html", prior="standard").read_text()
    assert "64 decoded z ~ N(0, I)" in html and "its FD used samples from the fitted Gaussian mixture" in html


def test_evaluate_model_without_a_run_folder_uses_the_model_prior(run):
    """A bare model (no Run) knows nothing of the run's fitted mixture: evaluate draws from N(0, I)."""
    r = vaekit.load_run(run)
    assert r.priors.default_kind() == "gmm"  # the run's default is the mixture ...
    model, data = vaekit.load(run), r.data()
    res = evaluate(model, data, iw_samples=5, max_examples=40, classifier=get_classifier(r.config.data, data))
    smp = res["samples"]  # ... but the model on its own is evaluated with its own prior
    assert smp["prior"] == "standard" and "fd_samples_standard" not in smp
    assert smp["fd_samples"] == pytest.approx(_fd(run, "standard"), rel=1e-6)
    assert isinstance(r.prior("standard"), priors.StandardNormal)


@pytest.mark.parametrize("kind", ["standard", "gmm"])
def test_sample_temperature_scales_the_spread(run, tmp_path, capsys, kind):
    model = vaekit.load(run)
    prior = vaekit.load_run(run).prior(kind)
    _, z1 = sample(model, 2000, prior=prior, seed=3, return_z=True)
    _, zt = sample(model, 2000, prior=prior, seed=3, return_z=True)
    torch.testing.assert_close(z1, zt)  # seeded: the same draws
    _, z07 = sample(model, 2000, prior=prior, seed=3, return_z=True, temperature=0.7)
    if kind == "standard":  # the same noise, scaled
        torch.testing.assert_close(z07, 0.7 * z1)
    else:  # the same component k and noise: z_T = m_k + T * L_k eps, so (z_T - T z_1) / (1 - T) = m_k
        m = (z07.double() - 0.7 * z1.double()) / 0.3
        assert float(torch.cdist(m, prior.means.double()).min(1).values.max()) < 1e-4
    code, out, err = run_cli(
        ["sample", run, "-n", 16, "--temperature", 0.7, "--prior", kind, "--out", tmp_path / "s.png"], capsys
    )
    assert code == 0, err
    assert (tmp_path / "s.png").is_file() and f"prior {kind}, temperature 0.7" in out
    code, _, err = run_cli(["sample", run, "--temperature", 0, "--out", tmp_path / "t.png"], capsys)
    assert code == 2 and err.strip() == "vaekit: error: temperature must be a positive finite number, not 0.0"
