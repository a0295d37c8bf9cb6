"""The default architecture: the MLP for vectors and for small images under the Bernoulli
likelihood (measured better per epoch and cheaper there), the conv net for other images."""

from types import SimpleNamespace

import pytest

import vaekit
from vaekit.api import MLP_MAX_VALUES, default_arch


@pytest.mark.parametrize(
    "shape, is_image, likelihood, arch",
    [
        ([1, 28, 28], True, "bernoulli", "mlp"),  # Fashion-MNIST, MNIST
        ([1, 32, 32], True, "bernoulli", "mlp"),  # exactly MLP_MAX_VALUES
        ([1, 28, 28], True, "discretized-logistic", "conv"),
        ([1, 28, 28], True, "gaussian", "conv"),
        ([3, 32, 32], True, "bernoulli", "conv"),  # CIFAR-sized: 3,072 values
        ([1, 64, 64], True, "bernoulli", "conv"),
        ([5000], False, "gaussian", "mlp"),
    ],
)
def test_default_arch(shape, is_image, likelihood, arch):
    assert default_arch(SimpleNamespace(shape=shape, is_image=is_image), likelihood) == arch


def test_the_threshold_is_32x32_grey():
    assert MLP_MAX_VALUES == 32 * 32


def test_train_picks_the_default_and_an_explicit_arch_wins(tmp_path):
    small = dict(epochs=1, latent_dim=2, hidden=[8], channels=[4, 8], progress=False, figures=False)
    assert vaekit.train("digits", out=tmp_path / "a", **small).config.arch == "mlp"  # 8x8 grey, Bernoulli
    assert vaekit.train("digits", out=tmp_path / "b", arch="conv", **small).config.arch == "conv"
