"""The lossy codec (--model codec, Balle et al. 2017): its loss is CompressAI's rate + lambda *
255^2 * MSE, its files hold exactly the rounded codes and cost what the learned prior says they
cost, the commands round-trip, and a rate-distortion sweep writes its table and curve."""

import math

import numpy as np
import pytest
import torch
from helpers import run_cli

import vaekit
from vaekit.config import ModelConfig, codec_sigma
from vaekit.core import codec, coding
from vaekit.core.likelihoods import GaussianLikelihood
from vaekit.errors import VaekitError
from vaekit.workflows import compress as workflow
from vaekit.workflows.rd_sweep import run_rd_sweep

pytest.importorskip("constriction")

TINY = dict(model="codec", epochs=6, latent_dim=8, hidden=[32], arch="mlp", progress=False, figures=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return vaekit.train("digits", out=tmp_path_factory.mktemp("codec") / "run", lmbda=0.02, **TINY)


@pytest.fixture(scope="module")
def pixels(run):
    d = run.data()
    return workflow.to_pixels(torch.cat([d.val.x, d.test.x]))[0]


def test_the_codec_loss_is_compressais_rate_distortion_loss():
    """-log N(x; x_hat, sigma^2) with sigma from lambda is lambda * 255^2 * MSE * C * H * W * ln 2 / C
    (CompressAI's distortion term in nats per image) plus a constant that does not depend on x_hat."""
    g = torch.Generator().manual_seed(0)
    for channels, lmbda in [(1, 0.01), (3, 0.0018), (3, 0.18)]:
        shape = [channels, 5, 4]
        lik = GaussianLikelihood(shape, sigma=codec_sigma(lmbda, channels))
        x, x_hat = torch.rand(6, *shape, generator=g).double(), torch.rand(6, *shape, generator=g).double()
        nll = -lik(x_hat[:, None]).log_prob(x)
        constant = -lik(x[:, None]).log_prob(x)  # x_hat = x: the constant alone
        mse = ((x - x_hat) ** 2).flatten(1).mean(1)
        pixels = 5 * 4
        torch.testing.assert_close(nll - constant, lmbda * 255**2 * mse * pixels * math.log(2), rtol=1e-5, atol=1e-6)
    assert ModelConfig(kind="codec", likelihood="gaussian", lmbda=0.01).sigma == pytest.approx(codec_sigma(0.01, 1))
    with pytest.raises(VaekitError, match="squared error"):
        ModelConfig(kind="codec", likelihood="bernoulli")
    with pytest.raises(VaekitError, match="images"):
        ModelConfig(kind="codec", likelihood="gaussian", data_shape=[20])


def test_tables_are_the_priors_masses_over_each_range(run):
    prior = coding.float64_cpu(run.model).prior
    lo, hi, tables = codec.latent_tables(prior)
    np.testing.assert_allclose(tables.sum(1), 1.0, atol=1e-12)
    for d in range(prior.latent_dim):
        k = torch.arange(int(lo[d]) + 1, int(hi[d]), dtype=torch.float64)  # inner integers: no tails added
        v = torch.zeros(len(k), prior.latent_dim, dtype=torch.float64)
        v[:, d] = k
        with torch.no_grad():
            naive = (prior.cdf(v + 0.5) - prior.cdf(v - 0.5))[:, d].numpy()
        np.testing.assert_allclose(tables[d, 1 : len(k) + 1], naive, atol=1e-12)
        assert (tables[d, int(hi[d] - lo[d]) + 1 :] == 0).all()


def test_files_hold_the_rounded_codes_at_the_priors_price(run, pixels):
    model = coding.float64_cpu(run.model)
    x = torch.from_numpy(pixels).double() / 255
    words, codes, clamped = codec.encode(model, x, chunk=100)
    with torch.no_grad():
        rounded = model.encode(x).mu.round()
        price = float(-model.prior.log_mass(codes).sum()) / math.log(2)
    lo, hi, _ = codec.latent_tables(model.prior)
    assert torch.equal(codes, torch.minimum(torch.maximum(rounded, lo), hi)) and clamped == int(
        (codes != rounded).sum()
    )
    assert torch.equal(codec.decode(model, words, len(x), chunk=100), codes)
    assert abs(32 * len(words) - price) < 0.01 * price + 64  # ANS costs the information content, plus a word or two
    images = codec.code_images(model, codes)
    assert images.dtype == np.uint8 and images.shape == pixels.shape


def test_codes_outside_the_range_are_clamped_and_counted(run):
    model = coding.float64_cpu(run.model)
    with torch.no_grad():
        model.encoder.head.bias.add_(1e4)  # every code far above its range
    lo, hi, _ = codec.latent_tables(model.prior)
    symbols, clamped = codec.quantize(model, torch.rand(3, 1, 8, 8), lo, hi)
    assert clamped == 3 * model.latent_dim and torch.equal(symbols, (hi - lo).expand(3, -1))


def test_lossy_commands_round_trip_and_report_quality(run, tmp_path, capsys):
    file = tmp_path / "d.vkc"
    code, out, err = run_cli(["compress", run.path, "--input", "digits:test", "--out", file, "--lossy", "-q"], capsys)
    assert code == 0, err
    assert "bits/pixel" in out and "PSNR" in out and "SSIM" in out
    code, out, err = run_cli(["decompress", file, "--run", run.path, "--out", tmp_path / "d.npy", "-q"], capsys)
    assert code == 0 and "(lossy)" in out, err
    expected = workflow.compress_lossy(run, workflow.to_pixels(run.data().test.x)[0])[1]
    assert np.array_equal(np.load(tmp_path / "d.npy"), expected)
    # a codec is not a lossless coder, nor a VAE a codec: one sentence each
    code, _, err = run_cli(["compress", run.path, "--input", "digits:test", "--out", tmp_path / "x.vkc"], capsys)
    assert code == 2 and "--lossy" in err and err.count("\n") == 1


def test_a_vae_is_refused_for_lossy_compression(tmp_path, capsys):
    vae = vaekit.train("digits", out=tmp_path / "vae", epochs=1, latent_dim=2, hidden=[8], arch="mlp", progress=False)
    code, _, err = run_cli(
        ["compress", vae.path, "--input", "digits:test", "--out", tmp_path / "x.vkc", "--lossy"], capsys
    )
    assert code == 2 and "--model codec" in err and err.count("\n") == 1


def test_rate_distortion_sweep_writes_its_table_and_curve(tmp_path):
    out = tmp_path / "rd"
    # ~900 steps: enough for lambda to matter (after a few dozen steps every point still codes like at init)
    kwargs = dict(out=out, epochs=20, batch_size=32, latent_dim=4, hidden=[16], arch="mlp", progress=False, log=None)
    rows = run_rd_sweep("digits", lmbdas=[1e-2, 1e-4], **kwargs)
    assert [r["lmbda"] for r in rows] == [1e-4, 1e-2]
    assert all(r["bits_per_pixel"] > 0 and 0 < r["ssim"] <= 1 and r["images"] == 180 for r in rows)
    low, high = rows
    # distortion weighs 100x more: more bits buy a better picture (measured 0.17 vs 0.26 bits, 13.5 vs 14.3 dB)
    assert high["bits_per_pixel"] > 1.2 * low["bits_per_pixel"] and high["psnr"] > low["psnr"] + 0.3
    table = (out / "table.md").read_text()
    assert all(f"{r['bits_per_pixel']:.3f}" in table for r in rows)
    assert (out / "rd_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run_rd_sweep("digits", lmbdas=[1e-4, 1e-2], **kwargs) == rows  # a re-run reuses the points
    with pytest.raises(VaekitError, match="lambda"):
        run_rd_sweep("digits", lmbdas=[0.0], **kwargs)
