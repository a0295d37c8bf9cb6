"""Tiny trained runs shared by the explorer's tests (digits, a few seconds each)."""

import warnings

import numpy as np
import pytest

import vaekit

with warnings.catch_warnings():
    # newer Starlette prefers the httpx2 package for its TestClient and warns, once, at import
    warnings.filterwarnings("ignore", message=".*httpx2")
    import fastapi.testclient  # noqa: F401


def _train(path, data="digits", **options):
    return vaekit.train(data, out=path, progress=False, figures=False, **options)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """A conv VAE with a 4-d latent space: PCA map, KL-sorted sliders."""
    path = tmp_path_factory.mktemp("serve") / "digits-vae"
    _train(path, epochs=3, latent_dim=4, seed=0)
    return path


@pytest.fixture(scope="session")
def cvae_run(tmp_path_factory):
    """A conditional VAE with a 2-d latent space: the map is the latent plane itself."""
    path = tmp_path_factory.mktemp("serve") / "digits-cvae"
    _train(path, epochs=1, latent_dim=2, arch="mlp", hidden=[64], conditional=True)
    return path


@pytest.fixture(scope="session")
def ae_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("serve") / "digits-ae"
    _train(path, model="ae", epochs=1, latent_dim=3, arch="mlp", hidden=[64])
    return path


@pytest.fixture(scope="session")
def vector_run(tmp_path_factory):
    """A model of feature vectors (not images) with a 1-d latent space."""
    root = tmp_path_factory.mktemp("serve")
    rng = np.random.default_rng(0)
    np.save(root / "features.npy", rng.normal(size=(200, 6)).astype(np.float32))
    path = root / "vectors"
    _train(path, data=str(root / "features.npy"), matrix="raw", epochs=1, latent_dim=1, hidden=[16])
    return path
