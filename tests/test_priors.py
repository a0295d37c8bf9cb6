"""Post-hoc priors on the aggregate posterior: the mixture's mathematics against scikit-learn
and closed forms, storage in the run folder, the second-stage VAE, and `sample --prior`."""

import pytest
import torch
from helpers import cli_exit_code
from sklearn.mixture import GaussianMixture

import vaekit
from vaekit.core import priors
from vaekit.core.sampling import sample
from vaekit.errors import RunFolderError, VaekitError
from vaekit.evaluation.classifier import get_classifier
from vaekit.evaluation.sample_quality import feature_frechet_distance
from vaekit.workflows.fit_prior import aggregate_codes, fit_gmm, fit_prior

TINY = dict(arch="mlp", hidden=[64], latent_dim=4, progress=False, figures=False)


@pytest.fixture(scope="module")
def codes():
    """Three well-separated 3-D clusters: a visibly non-Gaussian 'aggregate posterior'."""
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-4.0, 0, 0], [4.0, 1, 0], [0, -3.0, 2.0]])
    k = torch.randint(0, 3, (3000,), generator=g)
    return centres[k] + 0.5 * torch.randn(3000, 3, generator=g, dtype=torch.float32)


@pytest.mark.parametrize("covariance", ["full", "diag", "tied", "spherical"])
def test_gmm_log_density_equals_scikit_learn(codes, covariance):
    prior = fit_gmm(codes, components=3, covariance=covariance, seed=0)
    ref = GaussianMixture(3, covariance_type=covariance, random_state=0, reg_covar=1e-6, max_iter=500).fit(
        codes.double().numpy()
    )
    z = codes[:200]
    assert prior.log_prob(z).double().numpy() == pytest.approx(
        ref.score_samples(z.double().numpy()), rel=1e-6, abs=1e-6
    )


def test_gmm_samples_have_the_mixture_moments():
    w = torch.tensor([0.2, 0.8], dtype=torch.float64)
    m = torch.tensor([[2.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)
    L = torch.tensor([[[1.0, 0.0], [0.5, 0.3]], [[0.4, 0.0], [-0.2, 1.2]]], dtype=torch.float64)
    prior = priors.GaussianMixturePrior(w, m, L)
    S = L @ L.transpose(1, 2)
    mean = (w[:, None] * m).sum(0)
    for t in (1.0, 0.5):
        # Cov = sum_k w_k (t^2 S_k + m_k m_k^T) - mean mean^T
        cov = (w[:, None, None] * (t**2 * S + m[:, :, None] * m[:, None, :])).sum(0) - torch.outer(mean, mean)
        z = prior.sample(200_000, temperature=t, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        assert z.mean(0).numpy() == pytest.approx(mean.numpy(), abs=0.02)
        assert torch.cov(z.T).numpy() == pytest.approx(cov.numpy(), abs=0.03)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return vaekit.train("digits", out=tmp_path_factory.mktemp("p") / "run", epochs=3, **TINY).path


def test_gmm_prior_is_stored_reloaded_and_becomes_the_default(run):
    r = vaekit.load_run(run)
    assert r.priors.default_kind() == "standard" and r.priors.fitted() == []
    info = fit_prior(run, kind="gmm", components=3, progress=False)
    # the mixture explains the held-out codes better than N(0, I) does
    assert info["val_log_density"] > info["val_log_density_standard"]
    assert sorted(p.name for p in r.priors.folder.iterdir()) == ["default.json", "gmm.json", "gmm.safetensors"]
    assert r.priors.default_kind() == "gmm" and r.priors.fitted() == ["gmm"]
    loaded = vaekit.load_run(run).prior()
    assert isinstance(loaded, priors.GaussianMixturePrior) and loaded.num_components == 3
    model = vaekit.load(run)
    codes = aggregate_codes(model, vaekit.load_run(run).data().train)
    again = fit_gmm(codes, components=3, seed=0)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    assert torch.equal(loaded.sample(7, generator=g()), again.sample(7, generator=g()))
    a, b = sample(model, 6, prior=loaded, seed=3), sample(model, 6, prior=r.prior("standard"), seed=3)
    assert a.shape == b.shape == (6, 1, 8, 8) and not torch.equal(a, b)
    with pytest.raises(RunFolderError, match="no fitted vae prior; fit one with `vaekit fit-prior"):
        r.prior("vae")
    with pytest.raises(VaekitError, match="unknown prior 'flow'"):
        r.prior("flow")


def test_a_prior_fitted_to_earlier_weights_is_refused(tmp_path):
    run = vaekit.train("digits", out=tmp_path / "run", epochs=1, **TINY).path
    fit_prior(run, kind="gmm", components=2, progress=False)
    vaekit.train(resume=run, epochs=2, progress=False, figures=False)  # new best weights
    with pytest.raises(RunFolderError, match="fitted to earlier weights"):
        vaekit.load_run(run).prior()


def test_second_stage_vae_prior(tmp_path):
    run = vaekit.train("digits", out=tmp_path / "run", epochs=3, **TINY).path
    info = fit_prior(run, kind="vae", epochs=15, hidden=[64, 64], fit_on="sample", progress=False)
    assert info["val_log_density"] > info["val_log_density_standard"]  # an ELBO, and still higher
    stage_two = vaekit.load_run(run).priors.stage_two_path()
    assert stage_two == run / "priors" / "vae"
    assert (stage_two / "model.safetensors").is_file() and vaekit.load_run(
        stage_two
    ).has_weights()  # an ordinary run folder
    prior = vaekit.load_run(run).prior()
    assert isinstance(prior, priors.SecondStagePrior)
    g = lambda: torch.Generator().manual_seed(2)  # noqa: E731
    z1, z2 = prior.sample(9, generator=g()), prior.sample(9, generator=g())
    assert z1.shape == (9, 4) and torch.equal(z1, z2)
    # the draws spread like the codes they model (a second stage whose own posterior collapsed
    # must still be a Gaussian fit of the codes, not its decoder's one constant output)
    model = vaekit.load(run)
    codes = aggregate_codes(model, vaekit.load_run(run).data().train, fit_on="sample").float()
    ratio = prior.sample(4000, generator=g()).std(0) / codes.std(0)
    assert ((ratio > 0.6) & (ratio < 1.6)).all(), ratio
    # temperature 0 would collapse u to 0; a small one pulls the codes towards the decoder's mean at u = 0
    mid = prior.sample(1, temperature=1e-6, generator=g())
    assert (prior.sample(500, temperature=0.1, generator=g()) - mid).norm(dim=1).mean() < (z1 - mid).norm(dim=1).mean()


def test_cli_fit_prior_then_sample_uses_it(tmp_path, capsys):
    run = vaekit.train("digits", out=tmp_path / "run", epochs=2, **TINY).path
    assert cli_exit_code("sample", str(run), "-n", "4", "--out", str(tmp_path / "a.png")) == 0
    assert "prior standard" in capsys.readouterr().out
    assert cli_exit_code("fit-prior", str(run), "--kind", "gmm", "--components", "4") == 0
    assert "fitted a gmm prior" in capsys.readouterr().out
    assert cli_exit_code("sample", str(run), "-n", "4", "--out", str(tmp_path / "b.png")) == 0
    assert "prior gmm" in capsys.readouterr().out
    assert cli_exit_code("sample", str(run), "-n", "4", "--prior", "standard", "--out", str(tmp_path / "c.png")) == 0
    assert "prior standard" in capsys.readouterr().out
    assert cli_exit_code("sample", str(run), "--prior", "vae", "--out", str(tmp_path / "d.png")) == 2
    assert "fit one with `vaekit fit-prior" in capsys.readouterr().err
    assert cli_exit_code("fit-prior", str(run), "--kind", "gmm", "--components", "100000") == 2
    assert "more than the" in capsys.readouterr().err


@pytest.mark.parametrize("kind, beta", [("vae", 0.1), ("ae", None)])
def test_a_fitted_mixture_gives_better_samples_than_the_standard_normal(tmp_path, kind, beta):
    """Where the codes visibly do not fill N(0, I) (a low-beta VAE; an AE, whose codes are
    unconstrained), sampling from a mixture fitted on them lowers the FD (classifier features)."""
    opts = dict(TINY, hidden=[256], latent_dim=8, epochs=30)
    run = vaekit.train("digits", out=tmp_path / "run", model=kind, **({} if beta is None else {"beta": beta}), **opts)
    info = fit_prior(run.path, kind="gmm", components=10, progress=False)
    # the codes are far from N(0, I): the mixture explains held-out codes by several nats more
    assert info["val_log_density"] > info["val_log_density_standard"] + 2.0
    run = vaekit.load_run(run.path)
    model, data = run.model, run.data()
    net = get_classifier(run.config.data, data)
    test = data.test.x
    fd = {
        k: feature_frechet_distance(net, sample(model, len(test), prior=run.prior(k), seed=0), test)
        for k in ("standard", "gmm")
    }
    assert fd["gmm"] < 0.7 * fd["standard"]
