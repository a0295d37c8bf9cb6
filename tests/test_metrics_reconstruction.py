"""MSE, PSNR and SSIM against scikit-image's implementations."""

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from vaekit.errors import VaekitError
from vaekit.evaluation import reconstruction as metrics


def noisy_pair(shape, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g)
    return x, (x + 0.1 * torch.randn(shape, generator=g)).clamp(0, 1)


@pytest.mark.parametrize("shape", [(4, 1, 28, 28), (3, 3, 16, 12), (2, 1, 8, 8)])
def test_ssim_matches_scikit_image(shape):
    x, y = noisy_pair(shape, 0)
    ours = metrics.ssim(x, y)
    for i in range(shape[0]):
        ref = structural_similarity(x[i].double().numpy(), y[i].double().numpy(), data_range=1.0, channel_axis=0)
        assert ours[i].item() == pytest.approx(ref, abs=1e-10)
    assert torch.allclose(metrics.ssim(x, x), torch.ones(shape[0], dtype=torch.float64))


def test_psnr_and_mse_match_scikit_image():
    x, y = noisy_pair((5, 1, 10, 10), 1)
    for i in range(5):
        ref = peak_signal_noise_ratio(x[i].double().numpy(), y[i].double().numpy(), data_range=1.0)
        assert metrics.psnr(x, y)[i].item() == pytest.approx(ref, rel=1e-10)
        assert metrics.mse(x, y)[i].item() == pytest.approx(
            float(np.mean((x[i].numpy() - y[i].numpy()) ** 2)), rel=1e-6
        )
    assert metrics.psnr(x, x).max().item() == pytest.approx(100.0)  # capped, not infinite


def test_ssim_refuses_small_or_mismatched_images():
    with pytest.raises(VaekitError):
        metrics.ssim(torch.rand(2, 1, 6, 6), torch.rand(2, 1, 6, 6))
    with pytest.raises(VaekitError):
        metrics.ssim(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 9))
