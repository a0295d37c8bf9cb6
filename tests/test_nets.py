"""Networks are sized from the data: any height, width and channel count round-trips."""

import pytest
import torch

from vaekit.config import ModelConfig
from vaekit.core.model import VAE
from vaekit.core.nets import auto_channels, build_networks
from vaekit.errors import VaekitError


@pytest.mark.parametrize("shape", [[1, 8, 8], [1, 28, 28], [3, 64, 64], [3, 5, 9], [1, 1, 1], [4, 33, 17]])
def test_conv_decoder_returns_exactly_the_input_shape(shape):
    cfg = ModelConfig(arch="conv", data_shape=shape, latent_dim=4)
    enc, dec = build_networks(cfg, num_params=2)
    x = torch.rand(2, *shape)
    assert enc(x).shape == (2, 8)
    assert dec(torch.randn(2, 4)).shape == (2, 2, *shape)


def test_auto_channels_follow_the_image_size():
    assert auto_channels(28, 28) == [32, 64]
    assert auto_channels(8, 8) == [32]
    assert auto_channels(64, 64) == [32, 64, 128, 256]
    assert auto_channels(512, 512)[-1] == 256  # capped


def test_mlp_handles_feature_vectors():
    model = VAE.from_config(ModelConfig(arch="mlp", data_shape=[13], latent_dim=2, hidden=[8], likelihood="gaussian"))
    out = model(torch.randn(4, 13))
    assert out.px.mean.shape == (4, 13)


def test_conv_on_vectors_is_a_clear_error():
    with pytest.raises(VaekitError, match="use --arch mlp"):
        VAE.from_config(ModelConfig(arch="conv", data_shape=[13]))
