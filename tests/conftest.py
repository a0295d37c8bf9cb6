import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True, scope="session")
def _vaekit_cache(tmp_path_factory):
    """Keep cached artefacts (the feature classifiers) out of ~/.cache during tests; one cache for
    the whole session, so a classifier is trained once."""
    import os

    old = os.environ.get("VAEKIT_CACHE")
    os.environ["VAEKIT_CACHE"] = str(tmp_path_factory.mktemp("vaekit-cache"))
    yield
    if old is None:
        os.environ.pop("VAEKIT_CACHE", None)
    else:
        os.environ["VAEKIT_CACHE"] = old
