"""Denoising: a model trained with --denoise raises PSNR on held-out noisy inputs, and
`vaekit denoise` writes one cleaned PNG per input image."""

import numpy as np
import pytest
import torch
from PIL import Image

import vaekit
from vaekit.cli import main
from vaekit.config import Corruption
from vaekit.data import corrupt
from vaekit.errors import VaekitError
from vaekit.evaluation.reconstruction import psnr
from vaekit.workflows.denoising import denoise, denoise_files, denoising_quality


@pytest.fixture(scope="module")
def dae(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dae") / "run"
    return vaekit.train(
        "digits",
        out=folder,
        model="ae",
        denoise="gaussian:0.3",
        epochs=25,
        arch="mlp",
        hidden=[256],
        latent_dim=16,
        batch_size=64,
        progress=False,
        figures=False,
    )


def test_denoiser_raises_psnr_on_held_out_noisy_inputs(dae):
    clean = vaekit.load_run(dae.path).data().test.x  # never seen in training
    noisy = corrupt(clean, Corruption.parse("gaussian:0.3"), generator=torch.Generator().manual_seed(123))
    before, after = psnr(noisy, clean), psnr(denoise(dae.model, noisy), clean)
    assert after.mean() > before.mean() + 3.0  # dB
    assert (after > before).float().mean() > 0.9  # for nearly every image, not just on average
    q = denoising_quality(dae.model, clean, "gaussian:0.3", seed=123)
    assert q["psnr_noisy"] == pytest.approx(before.mean().item(), rel=1e-6)
    assert q["psnr_denoised"] > q["psnr_noisy"] + 3.0 and q["ssim_denoised"] > q["ssim_noisy"]


def test_denoise_command_writes_one_png_per_image(dae, tmp_path, capsys):
    src = tmp_path / "noisy"
    (src / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ["a.png", "sub/b.jpg"]:
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(src / name)
    try:
        main(["denoise", str(dae.path), "--input", str(src), "--out", str(tmp_path / "clean")])
    except SystemExit as e:
        assert not e.code
    assert "wrote 2 cleaned images" in capsys.readouterr().out
    for name in ["a.png", "sub/b.png"]:
        with Image.open(tmp_path / "clean" / name) as im:
            assert im.size == (8, 8) and im.mode == "L"
    paths = denoise_files(dae, "digits:test", tmp_path / "split")
    assert len(paths) == 180 and paths[0].name == "00000.png"


def test_denoise_bad_inputs(dae, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    with pytest.raises(VaekitError, match="is a file"):
        denoise_files(dae, "digits:test", tmp_path / "file")
    with pytest.raises(SystemExit) as e:
        main(["denoise", str(dae.path), "--input", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and "no such file or folder" in capsys.readouterr().err
    vec = vaekit.train(str(_vectors(tmp_path)), out=tmp_path / "vec", epochs=1, progress=False, figures=False)
    with pytest.raises(VaekitError, match="feature vectors"):
        denoise_files(vec, str(tmp_path / "v.npy"), tmp_path / "o2")


def _vectors(tmp_path):
    np.save(tmp_path / "v.npy", np.random.default_rng(0).random((40, 6)).astype(np.float32))
    return tmp_path / "v.npy"
