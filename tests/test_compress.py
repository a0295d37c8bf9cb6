"""Lossless compression (bits-back ANS): the latent grid and the tables against scipy, exact round
trips over many images, seeds and settings, file sizes against the model's -ELBO, and a file
refused by another run, another build, or damage."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import run_cli
from PIL import Image
from scipy import stats

import vaekit
from vaekit.core import coding
from vaekit.errors import VaekitError
from vaekit.evaluation.scores import negative_elbo
from vaekit.workflows import compress as codec

pytest.importorskip("constriction")

TINY = dict(epochs=8, latent_dim=6, hidden=[32], arch="mlp", likelihood="discretized-logistic", progress=False)


def tiny_run(folder, **kwargs):
    return vaekit.train("digits", out=folder, figures=False, **{**TINY, **kwargs})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("compress") / "run")


@pytest.fixture(scope="module")
def other_run(tmp_path_factory):
    """Same settings, another seed: other weights."""
    return tiny_run(tmp_path_factory.mktemp("compress") / "other", seed=1)


@pytest.fixture(scope="module")
def digits_pixels(run):
    """All 1797 digits as 8-bit images (N, 1, 8, 8) uint8, as the coder sees them."""
    d = run.data()
    return codec.to_pixels(torch.cat([d.train.x, d.val.x, d.test.x]))[0]


# -- the mathematics -------------------------------------------------------------------------------------


def test_latent_buckets_have_equal_prior_mass_and_the_posterior_its_gaussian_mass():
    grid = coding.LatentGrid(6)
    edges = grid.edges.numpy()
    assert edges[0] == -np.inf and edges[-1] == np.inf
    np.testing.assert_allclose(np.diff(stats.norm.cdf(edges)), 1 / 64, atol=1e-14)
    np.testing.assert_allclose(stats.norm.cdf(grid.centres.numpy()), (np.arange(64) + 0.5) / 64, atol=1e-14)
    mu = torch.tensor([[0.0, 1.3, -2.5, 7.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, -4.0, 1.0, -9.0]], dtype=torch.float64)
    q = grid.posterior_masses(mu, logvar).numpy()[0]  # (4, 64)
    sd = np.exp(0.5 * logvar.numpy()[0])[:, None]
    ref = np.diff(stats.norm.cdf(edges[None, :], mu.numpy()[0][:, None], sd), axis=1)
    np.testing.assert_allclose(q, ref, atol=1e-13)
    np.testing.assert_allclose(q.sum(1), 1.0, atol=1e-13)
    with pytest.raises(VaekitError, match="latent bits"):
        coding.LatentGrid(30)


def test_chunks_grow_with_the_stack_and_the_initial_words_are_fixed():
    assert coding.next_chunk(0, 96, 64, 1000) == 1  # nothing to pop from yet: one image
    assert coding.next_chunk(64 + 96 * 10, 96, 64, 1000) == 10
    assert coding.next_chunk(10**9, 96, 64, 1000) == 64 and coding.next_chunk(10**9, 96, 64, 3) == 3
    words = coding.initial_words(6 * 12)
    assert words.dtype == np.uint32 and len(words) == math.ceil(6 * 12 / 32) + 2 and words[-1] >= 2**31
    assert np.array_equal(words, coding.initial_words(6 * 12)) and len(np.unique(words)) == len(words)


def test_models_that_cannot_code_are_refused_in_one_sentence(tmp_path):
    for kwargs, match in [
        (dict(likelihood="bernoulli"), "256 grey levels"),
        (dict(model="ae"), "autoencoder"),
        (dict(conditional=True), "unconditional"),
    ]:
        r = tiny_run(tmp_path / kwargs.get("likelihood", kwargs.get("model", "cond")), epochs=1, **kwargs)
        with pytest.raises(VaekitError, match=match):
            coding.check_codable(r.model)


# -- round trips -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_round_trip_is_exact_over_many_images_seeds_and_settings(run, digits_pixels, seed):
    """Digits in a random order, plus noise and flat images (the likelihood's worst and best
    cases); latent bits and chunk sizes vary with the seed. Encoding twice gives the same words."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (20, 1, 8, 8), dtype=np.uint8)
    flat = np.repeat(np.array([0, 255, 128], dtype=np.uint8), 64).reshape(3, 1, 8, 8)
    pixels = np.concatenate([digits_pixels[rng.permutation(len(digits_pixels))[: 400 + 300 * seed]], noise, flat])
    pixels = pixels[rng.permutation(len(pixels))]
    bits, chunk = [(12, 64), (8, 7), (10, 1)][seed]
    model = coding.coding_model(run.model)
    words = coding.encode(model, pixels, bits=bits, chunk=chunk)
    assert np.array_equal(words, coding.encode(coding.coding_model(run.model), pixels, bits=bits, chunk=chunk))
    back = coding.decode(model, words, len(pixels), bits=bits, chunk=chunk)
    assert back.dtype == np.uint8 and np.array_equal(back, pixels)


def test_file_size_is_the_models_negative_elbo(run, digits_pixels):
    """The payload is the sum over images of -log2 p(x|z) - log2 P(z) + log2 Q(z|x), one z each:
    in expectation the -ELBO. Reference: the float32 model's -ELBO with continuous latents, 64
    posterior samples per image. The file's single sample per image is noise with a standard error
    of sd / sqrt(N) (~0.25% here); allowed: 4 of those plus the initial words and one 32-bit word
    per chunk for the chunk sizes (an upper bound: 6 bits each)."""
    pixels = digits_pixels
    words = coding.encode(coding.coding_model(run.model), pixels, chunk=64)
    x = torch.from_numpy(pixels).float() / 255
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        nelbo = torch.stack([negative_elbo(run.model, x, generator=gen) for _ in range(64)]).double() / math.log(2)
    expected = float(nelbo.mean(0).sum())
    se = float(nelbo[0].std()) * math.sqrt(len(pixels))
    slack = 4 * se + 32 * len(coding.initial_words(run.model.latent_dim * coding.DEFAULT_LATENT_BITS))
    slack += 32 * (len(pixels) // 64 + 20)
    assert abs(32 * len(words) - expected) < slack
    assert abs(32 * len(words) / expected - 1) < 0.015


# -- files and commands ----------------------------------------------------------------------------------


def test_compress_and_decompress_commands_round_trip_a_split(run, tmp_path, capsys):
    file = tmp_path / "digits.vkc"
    code, out, err = run_cli(["compress", run.path, "--input", "digits:test", "--out", file, "-q"], capsys)
    assert code == 0, err
    assert "compressed 180 images" in out and "bits/dim" in out and "-ELBO" in out and "images/s" in out
    code, out, err = run_cli(["decompress", file, "--run", run.path, "--out", tmp_path / "d.npy", "-q"], capsys)
    assert code == 0, err
    expected = codec.to_pixels(run.data().test.x)[0]
    assert np.array_equal(np.load(tmp_path / "d.npy"), expected)
    code, out, err = run_cli(["decompress", file, "--run", run.path, "--out", tmp_path / "pngs", "-q"], capsys)
    assert code == 0, err
    with Image.open(tmp_path / "pngs" / "00179.png") as im:
        assert np.array_equal(np.asarray(im), expected[179, 0])


def test_another_process_with_other_threads_writes_the_same_file(run, tmp_path, capsys):
    """The same run folder gives the same tables in a fresh process started with two threads."""
    here, there = tmp_path / "here.vkc", tmp_path / "there.vkc"
    assert run_cli(["compress", run.path, "--input", "digits:test", "--out", here, "-q"], capsys)[0] == 0
    cmd = [
        sys.executable,
        "-m",
        "vaekit",
        "compress",
        str(run.path),
        "--input",
        "digits:test",
        "--out",
        str(there),
        "-q",
    ]
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "2"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert here.read_bytes() == there.read_bytes()


def test_a_folder_round_trips_pixel_for_pixel_with_its_names(run, tmp_path, capsys):
    src, rng = tmp_path / "in", np.random.default_rng(0)
    (src / "sub").mkdir(parents=True)
    images = {"a.png": rng.integers(0, 256, (8, 8), dtype=np.uint8), "sub/b.png": np.full((8, 8), 7, np.uint8)}
    for name, arr in images.items():
        Image.fromarray(arr).save(src / name)
    file = tmp_path / "f.vkc"
    assert run_cli(["compress", run.path, "--input", src, "--out", file, "-q"], capsys)[0] == 0
    code, _, err = run_cli(["decompress", file, "--run", run.path, "--out", tmp_path / "out", "-q"], capsys)
    assert code == 0, err
    for name, arr in images.items():
        with Image.open(tmp_path / "out" / name) as im:
            assert np.array_equal(np.asarray(im), arr)
    # a second decompression into the same folder would write over those files: refused
    code, _, err = run_cli(["decompress", file, "--run", run.path, "--out", tmp_path / "out"], capsys)
    assert code == 2 and "already exists" in err and err.count("\n") == 1


def test_a_file_from_another_run_is_refused(run, other_run, tmp_path, capsys):
    file = tmp_path / "x.vkc"
    assert run_cli(["compress", run.path, "--input", "digits:test", "--out", file, "-q"], capsys)[0] == 0
    code, _, err = run_cli(["decompress", file, "--run", other_run.path, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "another model" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_another_build_is_refused_unless_allowed(run, digits_pixels):
    archive = codec.compress(run, digits_pixels[:50])
    archive.build = "torch 0.0 AVX9; constriction 0.0"
    archive = codec.Archive.from_bytes(archive.to_bytes(), "x.vkc")
    with pytest.raises(VaekitError, match="allow-other-build"):
        codec.decompress(run, archive)
    assert np.array_equal(codec.decompress(run, archive, allow_other_build=True), digits_pixels[:50])


def test_other_probabilities_are_caught_not_returned_as_images(run, digits_pixels):
    """A decoder whose tables differ (here: weights nudged by 1e-4) ends elsewhere than the encoder began."""
    words = coding.encode(coding.coding_model(run.model), digits_pixels[:100], chunk=64)
    nudged = coding.coding_model(run.model)
    with torch.no_grad():
        for p in nudged.parameters():
            p.add_(1e-4)
    with pytest.raises(VaekitError, match="other probabilities"):
        coding.decode(nudged, words, 100, chunk=64)
    with pytest.raises(VaekitError, match="other probabilities"):  # an ANS stack never ends in a zero word
        coding.decode(nudged, np.array([5, 0], dtype=np.uint32), 1, chunk=64)


def test_damaged_or_foreign_files_are_refused_in_one_sentence(run, digits_pixels, tmp_path, capsys):
    good = codec.compress(run, digits_pixels[:20]).to_bytes()
    flipped = bytearray(good)
    flipped[-3] ^= 0x10
    cases = {
        "flipped.vkc": bytes(flipped),
        "short.vkc": good[:-9],
        "other.vkc": b"PK\x03\x04 a zip file",
        "empty.vkc": b"",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        code, _, err = run_cli(["decompress", tmp_path / name, "--run", run.path, "--out", tmp_path / "o"], capsys)
        assert code == 2 and err.count("\n") == 1 and ("damaged" in err or "not a file written" in err), err
    # --out may replace an earlier archive, never a file vaekit did not write
    (tmp_path / "mine.txt").write_text("keep me")
    code, _, err = run_cli(["compress", run.path, "--input", "digits:test", "--out", tmp_path / "mine.txt"], capsys)
    assert code == 2 and (tmp_path / "mine.txt").read_text() == "keep me"
    assert (
        run_cli(["compress", run.path, "--input", "digits:test", "--out", tmp_path / "flipped.vkc", "-q"], capsys)[0]
        == 0
    )


def test_without_constriction_the_commands_say_how_to_install_it(run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "constriction", None)  # `import constriction` now fails
    code, _, err = run_cli(["compress", run.path, "--input", "digits:test", "--out", tmp_path / "x.vkc"], capsys)
    assert code == 2 and "pip install 'vaekit[compress]'" in err and err.count("\n") == 1
    assert not (tmp_path / "x.vkc").exists()


# -- hierarchical VAEs: every group coded ----------------------------------------------------------------

HVAE = dict(model="hvae", widths=[8, 8, 8], groups=[1, 1, 1], group_channels=2, latent_dim=3, epochs=3)


@pytest.fixture(scope="module")
def hvae_run(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("compress") / "hvae", **HVAE)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hierarchical_round_trip_is_exact_over_seeds_grids_and_chunks(hvae_run, digits_pixels, seed):
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (5, 1, 8, 8), dtype=np.uint8)
    pixels = np.concatenate([digits_pixels[rng.permutation(len(digits_pixels))[:150]], noise])
    pixels = pixels[rng.permutation(len(pixels))]
    bits, step_bits, chunk = [(12, 6, 64), (8, 3, 5), (10, 9, 1)][seed]
    model = coding.coding_model(hvae_run.model)
    assert model.group_dims == [3, 32, 128]
    words = coding.encode(model, pixels, bits=bits, step_bits=step_bits, chunk=chunk)
    assert np.array_equal(words, coding.encode(model, pixels, bits=bits, step_bits=step_bits, chunk=chunk))
    back = coding.decode(model, words, len(pixels), bits=bits, step_bits=step_bits, chunk=chunk)
    assert back.dtype == np.uint8 and np.array_equal(back, pixels)
    with pytest.raises(VaekitError, match="other probabilities"):  # another grid: other probabilities
        coding.decode(model, words, len(pixels), bits=bits, step_bits=step_bits + 1, chunk=chunk)


def test_hierarchical_file_size_is_the_models_negative_elbo_over_every_group(hvae_run, digits_pixels):
    """The file pays for every group: within 2% of the -ELBO (all groups' KL, 16 posterior samples
    per image, float32, continuous latents); coding only the top group (the lower ones at their
    prior means) would be another number altogether. Measured: +0.4%."""
    words = coding.encode(coding.coding_model(hvae_run.model), digits_pixels, chunk=64)
    x = torch.from_numpy(digits_pixels).float() / 255
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        nelbo = torch.stack([negative_elbo(hvae_run.model, x, generator=gen) for _ in range(16)]).double()
    expected = float(nelbo.mean(0).sum()) / math.log(2)
    assert abs(32 * len(words) / expected - 1) < 0.02


def one_group_bits_back(model, pixels, bits):
    """The flat VAE's BB-ANS as it was before groups (one chunk of all images), written out with
    constriction directly: the reference the group-by-group coder must reproduce word for word."""
    import constriction

    grid, cat = coding.LatentGrid(bits), constriction.stream.model.Categorical(perfect=False)
    coder = constriction.stream.stack.AnsCoder(coding.initial_words(model.latent_dim * bits))
    with coding.deterministic_cpu():
        q = model.encode(torch.from_numpy(pixels).double() / 255)
        buckets = coder.decode(cat, coding.table_rows(grid.posterior_masses(q.mu, q.logvar), "q"))
        law = model.decode(grid.centres[torch.from_numpy(buckets.astype(np.int64))].view(len(pixels), -1)).base_dist
        coder.encode_reverse(pixels.reshape(-1).astype(np.int32), cat, coding.table_rows(law.bin_masses(), "x"))
        coder.encode_reverse(buckets, constriction.stream.model.Uniform(grid.size))
        coder.encode_reverse(np.array([len(pixels) - 1], dtype=np.int32), constriction.stream.model.Uniform(64))
    return coder.get_compressed()


def test_a_flat_vaes_payload_is_the_one_group_bits_back_it_was(run, digits_pixels):
    """A flat VAE is one group with the prior N(0, I): its words are the one-group BB-ANS's, the
    initial words as long as before (the first chunk is one image: exactly the reference)."""
    model = coding.coding_model(run.model)
    assert coding.latent_need([model.latent_dim], 12, coding.DEFAULT_STEP_BITS) == model.latent_dim * 12
    for i in (0, 7, 123):
        one = digits_pixels[i : i + 1]
        assert np.array_equal(coding.encode(model, one, chunk=64), one_group_bits_back(model, one, 12))


def test_hierarchical_files_say_their_grid_and_old_format_files_are_refused(hvae_run, run, digits_pixels):
    archive = codec.compress(hvae_run, digits_pixels[:30])
    assert archive.step_bits == coding.DEFAULT_STEP_BITS and codec.compress(run, digits_pixels[:5]).step_bits == 0
    back = codec.Archive.from_bytes(archive.to_bytes(), "h.vkc")
    assert back.version == codec.FORMAT_VERSION == 2 and back.step_bits == archive.step_bits
    assert np.array_equal(codec.decompress(hvae_run, back), digits_pixels[:30])
    old = codec.Archive.from_bytes(format_1(archive), "old.vkc")
    with pytest.raises(VaekitError, match="only the top latent group") as err:
        codec.decompress(hvae_run, old)
    assert "\n" not in str(err.value)
    flat = codec.compress(run, digits_pixels[:30])  # a flat VAE's format-1 file still decodes
    assert np.array_equal(codec.decompress(run, codec.Archive.from_bytes(format_1(flat), "f.vkc")), digits_pixels[:30])


def format_1(archive) -> bytes:
    """The archive as format 1 wrote it: version byte 1, no step-bits byte."""
    data = bytearray(archive.to_bytes())
    data[4] = 1
    at = 6 + 32 + 1 + len(archive.likelihood) + 5 + 4 * len(archive.shape) + 1  # just after latent bits
    return bytes(data[:at] + data[at + 1 :])
