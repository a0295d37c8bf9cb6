"""The hierarchical VAE: its ELBO and importance weights against torch.distributions, the
top-down pass's consistency (encode, decode, reconstruction, temperatures), per-group free bits,
clear errors, and training: learning, exact resume, two processes like one."""

import pytest
import torch
from helpers import DDP_VAL_FRACTION, torchrun_train
from torch.distributions import Normal, kl_divergence

import vaekit
from vaekit.config import ModelConfig
from vaekit.core.build import build_model
from vaekit.core.hvae import HierarchicalVAE, resolutions
from vaekit.core.objectives import free_bits_kl
from vaekit.errors import VaekitError

SHAPE = [1, 8, 8]
TINY = dict(model="hvae", widths=[8, 8, 8], groups=[1, 1, 1], group_channels=2, latent_dim=3)


def _model(likelihood="discretized-logistic", **extra) -> HierarchicalVAE:
    cfg = ModelConfig(
        kind="hvae",
        data_shape=SHAPE,
        likelihood=likelihood,
        latent_dim=3,
        widths=[8, 8, 8],
        groups=[1, 1, 2],
        group_channels=2,
        **extra,
    )
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():  # leave the zero-initialised prior layers: priors that depend on the groups above
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def _images(n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, *SHAPE, generator=g) * 255).round() / 255


def test_resolutions_are_sized_from_the_images():
    assert resolutions(28, 28) == [(1, 1), (7, 7), (14, 14), (28, 28)]
    assert resolutions(8, 8) == [(1, 1), (4, 4), (8, 8)]
    assert resolutions(9, 7) == [(1, 1), (5, 4), (9, 7)]


def test_kl_and_weights_match_torch_distributions():
    model, x = _model(), _images()
    noise = torch.randn(x.shape[0], model.noise_dim, generator=torch.Generator().manual_seed(2))
    out = model(x, eps=noise)
    _, passes = model._walk(x.shape[0], None, model.encoder(x, None), noise, inferred=len(model.group_dims))
    normal = lambda d: Normal(d.mu, d.std)  # noqa: E731
    kl = torch.cat([kl_divergence(normal(s.q), normal(s.p)) for s in passes], dim=1)
    torch.testing.assert_close(out.kl_per_dim, kl, rtol=1e-5, atol=1e-6)
    assert [s.z.shape[1] for s in passes] == model.group_dims == out.groups
    # log w with the same noise: log p(x|z) + sum_g log p(z_g | z_<g) - log q(z_g | x, z_<g)
    log_w = model.log_importance_weights(x, k=1, generator=torch.Generator().manual_seed(2))[0]
    ratio = sum(normal(s.p).log_prob(s.z).sum(1) - normal(s.q).log_prob(s.z).sum(1) for s in passes)
    torch.testing.assert_close(log_w, -out.recon + ratio, rtol=1e-5, atol=1e-4)


def test_the_analytic_kl_is_the_monte_carlo_mean_of_the_log_ratio():
    """E_q[log w] = -(recon + KL): the mean of many draws of log w against the ELBO with analytic KLs."""
    model, x = _model(), _images(1).expand(4000, *SHAPE)
    with torch.no_grad():
        out = model(x, generator=torch.Generator().manual_seed(4))
        log_w = model.log_importance_weights(x, k=1, generator=torch.Generator().manual_seed(5))[0]
    elbo = -(out.recon + out.kl)
    se = (log_w.std() ** 2 / len(log_w) + elbo.std() ** 2 / len(elbo)).sqrt()
    assert abs(float(log_w.mean() - elbo.mean())) < 4 * float(se), (float(log_w.mean()), float(elbo.mean()))


def test_iwae_tightens_the_bound_and_all_groups_inferred_is_the_default():
    model, x = _model(), _images()
    with torch.no_grad():
        g = lambda: torch.Generator().manual_seed(7)  # noqa: E731
        full = model.log_importance_weights(x, k=64, generator=g())
        same = model.log_importance_weights(x, k=64, generator=g(), inferred=len(model.group_dims))
        assert torch.equal(full, same)
        elbo, iwae = full.mean(0), torch.logsumexp(full, 0) - torch.log(torch.tensor(64.0))
        assert (iwae >= elbo).all()
        top_only = model.log_importance_weights(x, k=64, generator=g(), inferred=1)
        assert top_only.shape == full.shape and not torch.equal(top_only, full)


def test_encode_is_the_top_group_and_reconstruction_the_posterior_means():
    model, x = _model(), _images()
    with torch.no_grad():
        out = model(x, eps=torch.zeros(x.shape[0], model.noise_dim))  # eps = 0: every z at its posterior mean
        q = model.encode(x)
        torch.testing.assert_close(q.mu, out.posterior.mu)
        torch.testing.assert_close(out.z, q.mu)
        torch.testing.assert_close(model.reconstruction(x), out.px.mean)


def test_decoding_a_top_code_draws_the_lower_groups_at_their_temperatures():
    model, z = _model(), torch.randn(5, 3, generator=torch.Generator().manual_seed(3))
    lower = len(model.group_dims) - 1
    with torch.no_grad():
        mean = model.decode_mean(z)
        assert torch.equal(mean, model.decode_mean(z))  # the lower groups at their prior means
        assert torch.equal(mean, model.decode_mean(z, temperatures=[0.0] * lower))
        a = model.decode_mean(z, temperatures=[1.0] * lower, generator=torch.Generator().manual_seed(1))
        b = model.decode_mean(z, temperatures=[1.0] * lower, generator=torch.Generator().manual_seed(2))
        assert not torch.equal(a, b) and not torch.equal(a, mean)
    with pytest.raises(VaekitError, match="one temperature per lower group"):
        model.decode_mean(z, temperatures=[1.0])
    s1, s2 = model.sample(4, seed=1), model.sample(4, seed=1)
    assert torch.equal(s1, s2) and s1.shape == (4, *SHAPE)
    assert not torch.equal(model.sample(4, seed=1, temperatures=[0.0] * lower), s1)


def test_free_bits_hold_each_group_not_each_number():
    kl = torch.rand(5, 7, generator=torch.Generator().manual_seed(0))
    groups = [1, 2, 4]
    by_hand = sum(max(0.9, float(kl[:, a:b].sum(1).mean())) for a, b in [(0, 1), (1, 3), (3, 7)])
    assert float(free_bits_kl(kl, 0.9, groups)) == pytest.approx(by_hand)
    assert float(free_bits_kl(kl, 0.9)) == pytest.approx(float(kl.mean(0).clamp_min(0.9).sum()))


@pytest.mark.parametrize(
    "extra, message",
    [
        (dict(groups=[1, 2]), "one number per resolution"),
        (dict(groups=[2, 1, 1]), "exactly one top"),
        (dict(widths=[8, 8]), "one number per resolution"),
        (dict(data_shape=[12]), "models images"),
    ],
)
def test_a_bad_layout_is_one_sentence(extra, message):
    cfg = dict(kind="hvae", data_shape=SHAPE, widths=[8, 8, 8], groups=[1, 1, 1]) | extra
    with pytest.raises(VaekitError, match=message):
        build_model(ModelConfig(**cfg))


def test_training_lowers_the_bound(tmp_path):
    vaekit.train(
        "digits",
        out=tmp_path / "r",
        epochs=4,
        lr=3e-3,
        likelihood="discretized-logistic",
        progress=False,
        figures=False,
        **TINY,
    )
    rows = vaekit.load_run(tmp_path / "r").metrics()
    assert rows[-1]["val_loss"] < rows[0]["val_loss"] - 20, [r["val_loss"] for r in rows]
    model = vaekit.load(tmp_path / "r")
    assert isinstance(model, HierarchicalVAE)


def test_resume_is_exact(tmp_path):
    kw = dict(likelihood="discretized-logistic", progress=False, figures=False, free_bits=0.05, **TINY)
    vaekit.train("digits", out=tmp_path / "full", epochs=2, **kw)
    vaekit.train("digits", out=tmp_path / "half", epochs=1, **kw)
    vaekit.train(resume=tmp_path / "half", epochs=2, progress=False, figures=False)
    a, b = (
        vaekit.load(tmp_path / "full", which="last").state_dict(),
        vaekit.load(tmp_path / "half", which="last").state_dict(),
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_processes_train_it_like_one(tmp_path):
    args = "--model hvae --widths 8,8,8 --groups 1,1,1 --group-channels 2 --latent-dim 3 --epochs 1 --batch-size 64"
    torchrun_train(tmp_path, *args.split(), "--out", str(tmp_path / "two"))
    kw = dict(epochs=1, batch_size=128, val_fraction=DDP_VAL_FRACTION, arch="mlp", hidden=[32], progress=False)
    vaekit.train("digits", out=tmp_path / "one", figures=False, **kw, **TINY)
    a, b = (
        vaekit.load(tmp_path / "two", which="last").state_dict(),
        vaekit.load(tmp_path / "one", which="last").state_dict(),
    )
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 1e-3, f"weights differ by up to {worst:.2g}"
