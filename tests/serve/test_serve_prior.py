"""The explorer draws its samples from the run's fitted prior, as `vaekit sample` does."""

import pytest
import torch
from fastapi.testclient import TestClient

import vaekit
from vaekit.core import priors, sampling
from vaekit.errors import RunFolderError
from vaekit.serve.app import create_app
from vaekit.serve.explorer import Explorer
from vaekit.workflows.fit_prior import fit_prior


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Its own run (fitting a prior changes a run's default, so not the shared digits_run)."""
    path = tmp_path_factory.mktemp("serve-prior") / "run"
    vaekit.train("digits", out=path, progress=False, figures=False, epochs=2, latent_dim=3, arch="mlp", hidden=[64])
    return path


def test_samples_come_from_the_fitted_prior(run):
    before = Explorer.from_run(run, map_points=50, score_reference=20)
    assert isinstance(before.prior, priors.StandardNormal)  # nothing fitted yet: N(0, I)
    fit_prior(run, kind="gmm", components=4, progress=False)
    ex = Explorer.from_run(run, map_points=50, score_reference=20)
    assert isinstance(ex.prior, priors.GaussianMixturePrior)
    # the same images `vaekit sample` makes with the same seed and temperature
    want = sampling.sample(ex.model, 8, prior=vaekit.load_run(run).prior(), seed=5, temperature=0.8)
    torch.testing.assert_close(ex.samples(8, seed=5, temperature=0.8), want)
    assert not torch.allclose(before.samples(8, seed=5, temperature=0.8), want)
    client = TestClient(create_app(ex))
    assert client.get("/api/info").json()["prior"] == "GaussianMixturePrior"
    # the page's "draw z from the prior" button takes its code from /api/samples: the mixture's draw
    r = client.get("/api/samples", params={"n": 3, "seed": 7, "temperature": 0.5}).json()
    _, z = sampling.sample(ex.model, 3, prior=ex.prior, seed=7, temperature=0.5, return_z=True)
    torch.testing.assert_close(torch.tensor(r["z"]), z, atol=1e-4, rtol=0)
    assert len(r["images"]) == 3
    # a prior can still be named, as with `vaekit serve --prior standard`
    assert isinstance(
        Explorer.from_run(run, prior="standard", map_points=50, score_reference=20).prior, priors.StandardNormal
    )
    with pytest.raises(RunFolderError, match="no fitted vae prior"):
        Explorer.from_run(run, prior="vae", map_points=50, score_reference=20)
