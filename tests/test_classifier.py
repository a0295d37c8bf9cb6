"""The feature classifier behind "FD (classifier features)": trained once per dataset, cached."""

import numpy as np
import pytest
import torch

from vaekit.config import DataConfig
from vaekit.data import load_data
from vaekit.errors import DataError
from vaekit.evaluation import classifier


@pytest.fixture(scope="module")
def digits():
    cfg = DataConfig("digits")
    return cfg, load_data(cfg)


def test_trains_once_then_comes_from_the_cache(digits, monkeypatch):
    cfg, data = digits
    net = classifier.get_classifier(cfg, data)
    assert net.meta["test_accuracy"] > 0.9
    assert net.features(data.test.x[:7]).shape == (7, classifier.FEATURE_DIM)
    assert torch.allclose(net.probabilities(data.test.x[:7]).sum(1), torch.ones(7))

    def no_training(*a, **k):
        raise AssertionError("the cached classifier should have been used")

    monkeypatch.setattr(classifier, "train_classifier", no_training)
    again = classifier.get_classifier(cfg, data)
    assert torch.equal(again.predict(data.test.x), net.predict(data.test.x))
    assert again.meta == net.meta


def test_cache_key_follows_the_data(digits):
    cfg, data = digits
    other_cfg = DataConfig("digits", val_fraction=0.2)
    assert classifier.cache_key(cfg, data) == classifier.cache_key(
        DataConfig("digits"), load_data(DataConfig("digits"))
    )
    assert classifier.cache_key(cfg, data) != classifier.cache_key(other_cfg, load_data(other_cfg))


def test_a_damaged_cache_entry_is_retrained(digits, tmp_path, monkeypatch):
    monkeypatch.setattr(classifier, "MIN_STEPS", 10)  # a quick, poor classifier is enough here
    cfg, data = digits
    first = classifier.get_classifier(cfg, data, cache=tmp_path)
    (weights,) = tmp_path.rglob("model.safetensors")
    weights.write_bytes(b"not safetensors")
    net = classifier.get_classifier(cfg, data, cache=tmp_path)
    assert torch.equal(net.predict(data.test.x), first.predict(data.test.x))  # same seed, same classifier
    assert classifier.get_classifier(cfg, data, cache=tmp_path).meta == net.meta  # and cached again


def test_unlabelled_data_have_no_classifier(tmp_path):
    path = tmp_path / "plain.npy"
    np.save(path, np.random.default_rng(0).random((120, 6)).astype(np.float32))
    cfg = DataConfig(str(path))
    with pytest.raises(DataError, match="no labels"):
        classifier.get_classifier(cfg, load_data(cfg))
