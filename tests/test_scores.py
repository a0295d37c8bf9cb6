"""Per-example anomaly scores: each against a hand computation, and the input-complexity
correction against raw likelihood on a case built to fool the likelihood."""

import math
import zlib

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import vaekit
from vaekit.config import ModelConfig
from vaekit.core.model import VAE
from vaekit.errors import VaekitError
from vaekit.evaluation.ood import auroc
from vaekit.evaluation.scores import (
    code_length,
    complexity_score,
    likelihood_ratio_score,
    negative_elbo,
    reconstruction_error,
    score_examples,
)


def tiny(kind="vae", shape=(1, 8, 8), **kw):
    torch.manual_seed(0)
    return VAE.from_config(
        ModelConfig(kind=kind, arch="mlp", hidden=[32], latent_dim=3, data_shape=list(shape), **kw)
    ).eval()


def test_code_length_is_the_compressed_size_in_nats():
    x = torch.rand(3, 1, 8, 8)
    pixels = (x * 255).round().to(torch.uint8).numpy().transpose(0, 2, 3, 1)
    want = [8 * len(zlib.compress(p.tobytes(), 9)) * math.log(2) for p in pixels]
    assert code_length(x, compressor="zlib").tolist() == pytest.approx(want)


@pytest.mark.parametrize("compressor", ["png", "zlib"])
@pytest.mark.parametrize("channels", [1, 3])
def test_simple_images_have_shorter_codes(compressor, channels):
    noise = torch.rand(4, channels, 16, 16, generator=torch.Generator().manual_seed(0))
    flat = torch.full((4, channels, 16, 16), 0.3)
    assert (code_length(flat, compressor=compressor) < code_length(noise, compressor=compressor) - 100).all()


def test_code_length_rejects_non_images():
    with pytest.raises(VaekitError, match="needs images"):
        code_length(torch.rand(4, 10))
    with pytest.raises(VaekitError, match="compressor"):
        code_length(torch.rand(1, 1, 4, 4), compressor="gzip9")


def test_reconstruction_error_is_the_squared_error_from_the_posterior_mean():
    model = tiny()
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        x_hat = torch.sigmoid(model.decoder(model.encode(x).mu)[:, 0])
        got = reconstruction_error(model, x)
    assert got.tolist() == pytest.approx(((x - x_hat) ** 2).sum((1, 2, 3)).tolist(), rel=1e-5)


def test_negative_elbo_matches_torch_distributions():
    model = tiny()
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        got = negative_elbo(model, x, generator=torch.Generator().manual_seed(3))
        q = model.encode(x)
        z = q.mu + q.std * torch.randn(q.mu.shape, generator=torch.Generator().manual_seed(3))
        logits = model.decoder(z)[:, 0]
        recon = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))
        qz = torch.distributions.Normal(q.mu, q.std)
        kl = torch.distributions.kl_divergence(qz, torch.distributions.Normal(0.0, 1.0)).sum(1)
    assert got.tolist() == pytest.approx((recon + kl).tolist(), rel=1e-5)


def test_likelihood_ratio_and_complexity_are_differences_in_nats():
    model = tiny()
    torch.manual_seed(1)
    background = VAE.from_config(model.config).eval()  # other weights
    x = torch.rand(6, 1, 8, 8)
    s = score_examples(model, x, background=background, seed=5)
    with torch.no_grad():
        nll = negative_elbo(model, x, generator=torch.Generator().manual_seed(5))
        nll_bg = negative_elbo(background, x, generator=torch.Generator().manual_seed(6))
    assert s["nelbo"] == pytest.approx(nll.double().numpy(), rel=1e-6)
    assert s["llr"] == pytest.approx((nll - nll_bg).double().numpy(), rel=1e-5, abs=1e-4)
    assert s["complexity"] == pytest.approx((nll.double() - code_length(x)).numpy(), rel=1e-6)
    assert list(s) == ["recon_error", "nelbo", "complexity", "llr"]
    assert likelihood_ratio_score(torch.tensor([3.0]), torch.tensor([1.0])).item() == 2.0
    assert complexity_score(torch.tensor([3.0]), torch.tensor([5.0])).item() == -2.0


def test_scores_are_reproducible_and_deterministic_ones_ignore_batching():
    model = tiny()
    x = torch.rand(50, 1, 8, 8)
    a = score_examples(model, x, seed=1, batch_size=16)
    b = score_examples(model, x, seed=1, batch_size=16)
    c = score_examples(model, x, seed=1, batch_size=7)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_allclose(a["recon_error"], c["recon_error"], rtol=1e-5)


def test_ae_gets_only_the_reconstruction_error_and_conditional_models_are_refused():
    assert list(score_examples(tiny("ae"), torch.rand(4, 1, 8, 8))) == ["recon_error"]
    assert list(score_examples(tiny(shape=(10,)), torch.rand(4, 10))) == ["recon_error", "nelbo"]  # no images
    with pytest.raises(VaekitError, match="unconditional"):
        score_examples(tiny(num_classes=3), torch.rand(4, 1, 8, 8))
    with pytest.raises(VaekitError, match="iw_samples"):
        score_examples(tiny(), torch.rand(4, 1, 8, 8), iw_samples=1)


def test_complexity_correction_beats_raw_likelihood_when_simple_inputs_look_likely(tmp_path):
    """In-distribution: digits on a noisy background. Out: the same digits, clean. A Bernoulli
    VAE gives the clean (simpler) digits a *higher* likelihood than its own test data, the
    failure Nalisnick et al. 2019 describe; subtracting the PNG code length removes it."""
    x = (load_digits().images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8)
    noisy = np.clip(x + np.random.default_rng(0).uniform(0, 0.5, x.shape), 0, 1).astype(np.float32)
    np.save(tmp_path / "noisy.npy", noisy)
    run = vaekit.train(
        str(tmp_path / "noisy.npy"),
        out=tmp_path / "run",
        epochs=8,
        arch="mlp",
        hidden=[128],
        latent_dim=4,
        batch_size=64,
        progress=False,
        figures=False,
    )
    model = run.model
    s_in = score_examples(model, run.data().test.x)
    s_out = score_examples(model, torch.from_numpy(x[:300]))
    raw, corrected = auroc(s_in["nelbo"], s_out["nelbo"]), auroc(s_in["complexity"], s_out["complexity"])
    assert raw < 0.5  # the likelihood prefers the out-of-distribution inputs
    assert corrected > 0.9


def test_importance_sampled_nll_approaches_log_p_by_quadrature_and_drives_the_corrections():
    """With a 1-D latent, log p(x) = log int p(x|z) N(z; 0, 1) dz is a quadrature on a fine grid:
    an independent reference for nll_iw, which must lie between it and the ELBO."""
    torch.manual_seed(0)
    model = VAE.from_config(ModelConfig(arch="mlp", hidden=[16], latent_dim=1, data_shape=[1, 4, 4])).eval()
    x = (torch.rand(6, 1, 4, 4) > 0.5).float()
    with torch.no_grad():
        z = torch.linspace(-8, 8, 4001)[:, None]  # (G, 1)
        log_px_z = torch.stack([model.decode(z).log_prob(xi.expand(len(z), 1, 4, 4)) for xi in x])  # (6, G)
        log_prior = torch.distributions.Normal(0.0, 1.0).log_prob(z[:, 0])  # (G,)
        dz = float(z[1, 0] - z[0, 0])
        nll_quad = -(torch.logsumexp(log_px_z.double() + log_prior.double(), 1) + math.log(dz))
    s = score_examples(model, x, iw_samples=2000, seed=0)
    assert list(s) == ["recon_error", "nelbo", "nll_iw", "complexity"]
    np.testing.assert_allclose(s["nll_iw"], nll_quad.numpy(), atol=0.05)
    nelbo = score_examples(model, x.repeat(1000, 1, 1, 1), seed=1)["nelbo"].reshape(1000, 6)  # 1000 draws each
    se = nelbo.std(0) / math.sqrt(1000)
    assert np.all(nelbo.mean(0) > nll_quad.numpy() - 3 * se)  # the negative ELBO bounds the NLL from above
    assert s["complexity"] == pytest.approx(s["nll_iw"] - code_length(x).numpy(), rel=1e-9)


def test_rank_normalise_is_the_normal_quantile_of_the_mid_rank_and_keeps_order_beyond_the_reference():
    from scipy.stats import norm, rankdata

    from vaekit.evaluation.scores import rank_normalise

    ref = np.random.default_rng(0).gamma(2.0, size=500)
    z = rank_normalise(ref, ref)  # on the reference itself: Phi^-1 of rank / (M + 1), ranks 1..M
    np.testing.assert_allclose(z, norm.ppf(rankdata(ref) / 501), rtol=1e-12)
    beyond = rank_normalise(np.array([ref.max() + 1, ref.max() + 5, ref.max() + 50]), ref)
    assert z.max() < beyond[0] < beyond[1] < beyond[2]  # far stays far, in order
    assert np.allclose(np.diff(beyond) / np.array([4.0, 45.0]), np.diff(beyond)[0] / 4.0)  # a straight line
    inside_low = rank_normalise(np.array([ref.min(), np.sort(ref)[1]]), ref)
    assert inside_low[0] < inside_low[1] < 0  # inside the range, a low score is typical
    below = rank_normalise(np.array([ref.min() - 0.01, ref.min() - 1.0]), ref)
    assert z.max() < below[0] < below[1]  # below anything seen is as atypical as above it


def test_the_ensemble_averages_recon_nll_and_complexity_but_not_llr():
    from vaekit.evaluation.scores import ensemble_members, ensemble_score, rank_normalise

    rng = np.random.default_rng(1)
    names = ["recon_error", "nelbo", "complexity", "llr"]
    ref = {n: rng.normal(size=300) for n in names}
    assert ensemble_members(names) == ["recon_error", "nelbo", "complexity"]
    assert ensemble_members([*names, "nll_iw"]) == ["recon_error", "nll_iw", "complexity"]
    # an input the likelihood finds typical (a simple image) but complexity finds far beyond anything seen
    s = {
        "recon_error": np.array([0.0]),
        "nelbo": np.array([-1.0]),
        "complexity": np.array([30.0]),
        "llr": np.array([0.0]),
    }
    expected = np.mean([rank_normalise(s[n], ref[n]) for n in ("recon_error", "nelbo", "complexity")], 0)
    got = ensemble_score(s, ref)
    assert got == pytest.approx(expected) and got[0] > np.quantile(ensemble_score(ref, ref), 0.99)
