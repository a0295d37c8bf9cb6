"""The latent diffusion prior (flow matching on the codes): the ODE solver and the log-density
against closed forms, density recovery on a known 2-D mixture (where one Gaussian fails),
storage in the run folder, use by sample / evaluate / report / serve / compare, temperature, and
an interrupted fit that resumes to the same weights."""

import json
import math

import pytest
import torch
from helpers import run_cli

import vaekit
from vaekit.core import flow, priors
from vaekit.core.sampling import sample
from vaekit.errors import RunFolderError
from vaekit.runs.priors import PriorStore
from vaekit.serve.explorer import Explorer
from vaekit.workflows import compare, report
from vaekit.workflows import fit_prior as fit_prior_module
from vaekit.workflows.fit_prior import diffusion_settings, fit_diffusion, fit_prior

TINY = dict(arch="mlp", hidden=[64], latent_dim=4, epochs=3, progress=False, figures=False)
FIT = dict(kind="diffusion", epochs=3, hidden=[32, 32], steps=8, progress=False)


# -- the mathematics ---------------------------------------------------------------------------------


def test_heun_and_the_log_density_match_a_linear_flow_in_closed_form():
    """v(x, t) = a x carries x0 to x1 = e^a x0, so p_1 = N(0, e^{2a} I). Heun's method on it
    multiplies by exactly 1 + ah + (ah)^2 / 2 per step (and by 1 - ah + (ah)^2 / 2 backwards),
    while the divergence integral is exactly a D: both solver results are known to round-off,
    and within Heun's O(h^2) of the continuous answer."""
    a, n, d = 0.5, 40, 3
    h = 1.0 / n
    net = lambda x, t: a * x  # noqa: E731
    x0 = torch.randn(300, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x1 = flow.integrate(net, x0, n)
    torch.testing.assert_close(x1, (1 + a * h + (a * h) ** 2 / 2) ** n * x0, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x1, math.exp(a) * x0, rtol=3e-5, atol=0)
    x = 2.0 * torch.randn(300, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    back = (1 - a * h + (a * h) ** 2 / 2) ** n * x
    exact_scheme = torch.distributions.Normal(0.0, 1.0).log_prob(back).sum(1) - a * d
    torch.testing.assert_close(flow.log_prob(net, x, n), exact_scheme, rtol=1e-12, atol=1e-10)
    continuous = torch.distributions.Normal(0.0, math.exp(a)).log_prob(x).sum(1)
    torch.testing.assert_close(flow.log_prob(net, x, n), continuous, rtol=0, atol=1e-3)
    # a time-dependent shift v = c t: x1 = x0 + c / 2, divergence 0
    c = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    shift = lambda x, t: c * t[:, None]  # noqa: E731
    torch.testing.assert_close(flow.integrate(shift, x0, 5), x0 + c / 2)
    want = torch.distributions.Normal(0.0, 1.0).log_prob(x1 - c / 2).sum(1)
    torch.testing.assert_close(flow.log_prob(shift, x1, 5), want)


CENTRES = torch.tensor([[-4.0, -4.0], [-4.0, 4.0], [4.0, -4.0], [4.0, 4.0]])
WEIGHTS = torch.tensor([0.1, 0.2, 0.3, 0.4])
SD = 0.5


def mixture() -> torch.distributions.Distribution:
    D = torch.distributions
    return D.MixtureSameFamily(D.Categorical(WEIGHTS), D.Independent(D.Normal(CENTRES, SD * torch.ones(4, 2)), 1))


def mode_masses(z: torch.Tensor) -> torch.Tensor:
    return torch.bincount(torch.cdist(z, CENTRES).argmin(1), minlength=4) / len(z)


def near_a_mode(z: torch.Tensor) -> float:
    return float((torch.cdist(z, CENTRES).min(1).values < 3 * SD).double().mean())


def test_recovers_a_2d_mixture_where_one_gaussian_cannot():
    """Four well-separated modes with masses 0.1 .. 0.4: the fitted flow puts each mode's mass
    within 0.03, nearly all samples on a mode, and its held-out log-density within 0.25 nats of
    the truth; the best single Gaussian (the moments of the data) fails all three."""
    torch.manual_seed(0)
    codes = mixture().sample((4000,)).double()
    settings = diffusion_settings(epochs=60, hidden=[64, 64], seed=0, batch_size=256, lr=1e-3)
    prior = fit_diffusion(codes, settings, None, steps=20)
    z = prior.sample(4000, generator=torch.Generator().manual_seed(1))
    assert (mode_masses(z) - WEIGHTS).abs().max() < 0.03, mode_masses(z)
    assert near_a_mode(z) > 0.9
    held_out = mixture().sample((1000,))
    truth = float(mixture().log_prob(held_out).mean())
    assert abs(float(prior.log_prob(held_out).mean()) - truth) < 0.25
    # one Gaussian with the data's mean and covariance
    gauss = torch.distributions.MultivariateNormal(codes.mean(0).float(), torch.cov(codes.T).float())
    zg = gauss.sample((4000,))
    assert near_a_mode(zg) < 0.5  # most of its mass sits between the modes
    assert float(gauss.log_prob(held_out).mean()) < truth - 2.0
    # temperature scales the starting noise: draws gather around the image of x0 = 0 (on a
    # multimodal density that need not be a mode, unlike a mixture's temperature)
    centre = prior.sample(1, temperature=1e-6, generator=torch.Generator().manual_seed(1))
    spread = lambda t: float(
        (prior.sample(4000, temperature=t, generator=torch.Generator().manual_seed(1)) - centre).norm(dim=1).mean()
    )  # noqa: E731
    assert spread(0.1) < spread(0.5) < spread(1.0)


# -- in a run folder ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny digits VAE with a fitted diffusion prior (its default prior)."""
    path = tmp_path_factory.mktemp("diffusion") / "run"
    vaekit.train("digits", out=path, **TINY)
    info = fit_prior(path, **FIT)
    assert info["kind"] == "diffusion" and info["steps"] == 8 and info["hidden"] == 32 and info["depth"] == 2
    return path


def test_stored_bound_to_the_weights_and_the_default(run):
    r = vaekit.load_run(run)
    files = sorted(p.name for p in r.priors.folder.iterdir())
    assert files == ["default.json", "diffusion.json", "diffusion.safetensors"]  # no progress file left
    info = json.loads((r.priors.folder / "diffusion.json").read_text())
    assert info["weights_sha256"] == r.weights_digest() and "val_log_density" in info
    assert r.priors.default_kind() == "diffusion" and r.priors.fitted() == ["diffusion"]
    prior = r.prior()
    assert isinstance(prior, priors.FlowPrior) and prior.steps == 8 and prior.latent_dim == 4
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    torch.testing.assert_close(prior.sample(5, generator=g()), vaekit.load_run(run).prior().sample(5, generator=g()))
    # temperature: the same noise scaled, so a tighter spread around the same codes
    wide = prior.sample(2000, generator=g())
    assert (prior.sample(2000, temperature=0.5, generator=g()).std(0) < wide.std(0)).all()


def test_sample_evaluate_report_serve_and_compare_use_it(run, tmp_path, capsys):
    code, out, err = run_cli(["sample", run, "-n", 4, "--temperature", 0.8, "--out", tmp_path / "s.png"], capsys)
    assert code == 0 and "prior diffusion, temperature 0.8" in out, err
    code, out, err = run_cli(["evaluate", run, "-k", 3, "--max-examples", 40, "-q"], capsys)
    assert code == 0, err
    smp = json.loads((run / "evaluation.json").read_text())["samples"]
    assert smp["prior"] == "diffusion" and "fd_samples_standard" in smp
    assert "z ~ the fitted latent diffusion (flow matching) prior" in out
    html = report.write_report(run, out=tmp_path / "r.html").read_text()
    assert "64 decoded z ~ the fitted latent diffusion" in html and "its FD used" not in html
    ex = Explorer.from_run(run, map_points=50, score_reference=20)
    assert isinstance(ex.prior, priors.FlowPrior)
    want = sample(ex.model, 6, prior=vaekit.load_run(run).prior(), seed=4, temperature=0.7)
    torch.testing.assert_close(ex.samples(6, seed=4, temperature=0.7), want)
    res = compare.compare(run, run, out=tmp_path / "cmp", n_samples=60)
    m = next(iter(res["models"].values()))
    assert m["run_prior"] == "diffusion" and m["fd_run_prior_samples"] != m["fd_prior_samples"]


def test_an_interrupted_fit_resumes_to_the_same_prior(tmp_path, monkeypatch):
    path = tmp_path / "run"
    vaekit.train("digits", out=path, **TINY)
    opts = dict(FIT, epochs=4)
    fit_prior(path, **opts)
    whole = vaekit.load_run(path).priors.tensors("diffusion")
    saved = PriorStore.save_progress

    def interrupt_after_two(self, kind, state):
        saved(self, kind, state)
        if state.epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(PriorStore, "save_progress", interrupt_after_two)
    with pytest.raises(KeyboardInterrupt):
        fit_prior(path, **opts)
    store = vaekit.load_run(path).priors
    assert store.progress("diffusion").epoch == 2
    monkeypatch.setattr(PriorStore, "save_progress", saved)
    started = []  # the epoch each fit starts from
    real = fit_prior_module._resume_diffusion
    monkeypatch.setattr(fit_prior_module, "_resume_diffusion", lambda *a: started.append(real(*a)) or started[-1])
    fit_prior(path, **opts)
    assert started == [2]  # it went on from epoch 2
    resumed = vaekit.load_run(path).priors.tensors("diffusion")
    assert whole.keys() == resumed.keys() and all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert store.progress("diffusion") is None
    # other settings do not resume from it: a different seed starts again
    monkeypatch.setattr(PriorStore, "save_progress", interrupt_after_two)
    with pytest.raises(KeyboardInterrupt):
        fit_prior(path, **opts)
    monkeypatch.setattr(PriorStore, "save_progress", saved)
    started.clear()
    fit_prior(path, **dict(opts, seed=1))
    assert started == [0]


def test_cli_fit_prior_diffusion_and_its_mistakes(tmp_path, capsys):
    path = tmp_path / "run"
    vaekit.train("digits", out=path, **dict(TINY, epochs=1))
    argv = ["fit-prior", path, "--kind", "diffusion", "--epochs", 2, "--hidden", "16,16", "--steps", 5, "-q"]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "fitted a diffusion prior" in out and "(probability-flow ODE, 5 steps)" in out
    for bad, message in (
        (["--hidden", "16,32"], "one width per residual block, all equal"),
        (["--steps", "0"], "--steps must be between 1 and 1000"),
        (["--epochs", "0"], "--epochs must be at least 1"),
    ):
        code, _, err = run_cli([*argv, *bad], capsys)
        assert code == 2 and message in err and "Traceback" not in err, err
    vaekit.train(resume=path, epochs=2, progress=False, figures=False)  # new best weights
    with pytest.raises(RunFolderError, match="fitted to earlier weights"):
        vaekit.load_run(path).prior("diffusion")
