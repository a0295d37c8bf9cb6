"""The default architecture: the MLP for vectors and for small images under the Bernoulli
likelihood (measured better per epoch and cheaper there), the conv net for other images."""

import pytest

import vaekit
from vaekit.core.nets import MLP_MAX_VALUES, default_arch


@pytest.mark.parametrize(
    "shape, likelihood, arch",
    [
        ([1, 28, 28], "bernoulli", "mlp"),  # Fashion-MNIST, MNIST
        ([1, 32, 32], "bernoulli", "mlp"),  # exactly MLP_MAX_VALUES
        ([1, 28, 28], "discretized-logistic", "conv"),
        ([1, 28, 28], "discretized-logistic-mixture", "conv"),
        ([1, 28, 28], "gaussian", "conv"),
        ([3, 32, 32], "bernoulli", "conv"),  # CIFAR-sized: 3,072 values
        ([1, 64, 64], "bernoulli", "conv"),
        ([5000], "gaussian", "mlp"),  # feature vectors
        ([5000], "bernoulli", "mlp"),
    ],
)
def test_default_arch(shape, likelihood, arch):
    assert default_arch(shape, likelihood) == arch


def test_the_threshold_is_32x32_grey():
    assert MLP_MAX_VALUES == 32 * 32


def test_train_picks_the_default_and_an_explicit_arch_wins(tmp_path):
    small = dict(epochs=1, latent_dim=2, hidden=[8], channels=[4, 8], progress=False, figures=False)
    assert vaekit.train("digits", out=tmp_path / "a", **small).config.model.arch == "mlp"  # 8x8 grey, Bernoulli
    assert vaekit.train("digits", out=tmp_path / "b", arch="conv", **small).config.model.arch == "conv"
