"""Every command on a hierarchical VAE run (a tiny one on the 8x8 digits): the hvae is a first-class
model, so each command works on it as on a flat VAE, with the numbers covering every group."""

import base64
import io
import json

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from helpers import run_cli
from PIL import Image

import vaekit
from vaekit.core import sampling
from vaekit.data import load_split
from vaekit.serve import Explorer
from vaekit.serve.app import create_app

TINY = dict(model="hvae", widths=[8, 8, 8], groups=[1, 1, 1], group_channels=2, latent_dim=3)


@pytest.fixture(scope="module")
def hvae_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hvae") / "run"
    vaekit.train("digits", out=folder, epochs=3, lr=3e-3, likelihood="discretized-logistic", progress=False, **TINY)
    return folder


def test_evaluate_gives_bits_per_dim_over_every_group(hvae_run, tmp_path, capsys):
    code, out, _ = run_cli(["evaluate", hvae_run, "-k", "4", "--max-examples", "40", "--n-samples", "40", "-q"], capsys)
    assert code == 0 and "bits/dim" in out
    lik = json.loads((hvae_run / "evaluation.json").read_text())["likelihood"]
    model = vaekit.load(hvae_run)
    assert lik["kl"] > 0 and lik["nll"] <= lik["nelbo"] + 3 * lik["nelbo_se"]
    assert lik["num_dims"] == 64 and len(model.group_dims) == 3


def test_sample_takes_a_temperature_per_lower_group(hvae_run, tmp_path, capsys):
    paths = [tmp_path / f"{i}.png" for i in range(3)]
    assert run_cli(["sample", hvae_run, "-n", "9", "--out", paths[0]], capsys)[0] == 0
    assert run_cli(["sample", hvae_run, "-n", "9", "--temperatures", "0,0", "--out", paths[1]], capsys)[0] == 0
    assert run_cli(["sample", hvae_run, "-n", "9", "--temperatures", "0,0", "--out", paths[2]], capsys)[0] == 0
    a, b, c = (np.asarray(Image.open(p)) for p in paths)
    assert not np.array_equal(a, b) and np.array_equal(b, c)
    code, _, err = run_cli(["sample", hvae_run, "--temperatures", "1"], capsys)
    assert code == 2 and "one temperature per lower group" in err


def test_reconstruct_decodes_every_group(hvae_run, tmp_path, capsys):
    """`reconstruct` decodes every group's posterior mean, not the top code alone (the lower
    groups at their prior means, which is what interpolation shows)."""
    model, x = vaekit.load(hvae_run), load_split("digits:test").x[:60]
    with torch.no_grad():
        every = sampling.reconstruct(model, x)
        torch.testing.assert_close(every, model.reconstruction(x).clamp(0, 1))
        top_only = sampling.decode(model, model.encode(x).mode())
    assert not torch.allclose(every, top_only, atol=1e-4)
    assert run_cli(["reconstruct", hvae_run, "--out", tmp_path / "r.png"], capsys)[0] == 0
    assert np.asarray(Image.open(tmp_path / "r.png")).std() > 0


def test_interpolate_and_traverse_walk_the_top_group(hvae_run, tmp_path, capsys):
    model = vaekit.load(hvae_run)
    x = load_split("digits:test").x[:2]
    path = sampling.interpolate(model, x[0], x[1], steps=5)
    ends = sampling.decode(model, model.encode(x).mode())
    torch.testing.assert_close(path[[0, -1]], ends)  # its ends are the top codes' images
    assert not torch.equal(path[1], path[0])
    grid = sampling.traverse(model, dims=[0], steps=5)
    assert grid.shape == (1, 5, 1, 8, 8) and not torch.equal(grid[0, 0], grid[0, -1])
    for args in (["interpolate", "--a", "0", "--b", "1"], ["traverse"]):
        assert run_cli([args[0], hvae_run, *args[1:], "--out", tmp_path / "x.png"], capsys)[0] == 0


def test_a_fitted_prior_is_what_sample_then_uses(hvae_run, tmp_path, capsys):
    code, _, err = run_cli(["fit-prior", hvae_run, "--kind", "gmm"], capsys)
    assert code == 0, err
    prior = vaekit.load_run(hvae_run).prior()
    assert prior.kind == "gmm" and prior.latent_dim == 3  # fitted on the top group's codes
    code, out, _ = run_cli(["sample", hvae_run, "-n", "4", "--out", tmp_path / "s.png"], capsys)
    assert code == 0 and "prior gmm" in out


def test_encode_gives_the_top_group(hvae_run, tmp_path, capsys):
    assert run_cli(["encode", hvae_run, "--out", tmp_path / "codes.npz"], capsys)[0] == 0
    codes = np.load(tmp_path / "codes.npz")
    assert codes["mu"].shape == (1797, 3) and codes["logvar"].shape == (1797, 3)
    assert np.isfinite(codes["mu"]).all() and codes["mu"].std(0).min() > 0  # not one code for every digit


def test_score_offers_the_hierarchical_likelihood_ratio(hvae_run, tmp_path, capsys):
    code, out, err = run_cli(
        ["score", hvae_run, "--data", "digits:test", "--iw-samples", "2", "--out", tmp_path / "s.csv", "-q"], capsys
    )
    assert code == 0, err
    head, *rows = (tmp_path / "s.csv").read_text().splitlines()
    assert "llr_top" in head.split(",") and len(rows) > 100
    column = head.split(",").index("llr_top")
    values = np.array([float(r.split(",")[column]) for r in rows])
    assert np.isfinite(values).all() and values.std() > 0


def test_compare_and_report(hvae_run, tmp_path, capsys):
    flat = tmp_path / "flat"
    vaekit.train(
        "digits",
        out=flat,
        epochs=1,
        arch="mlp",
        hidden=[16],
        latent_dim=3,
        likelihood="discretized-logistic",
        progress=False,
    )
    code, _, err = run_cli(["compare", hvae_run, flat, "--out", tmp_path / "cmp", "--n-samples", "50", "-q"], capsys)
    assert code == 0, err
    models = list(json.loads((tmp_path / "cmp" / "compare.json").read_text())["models"].values())
    assert [m["kind"] for m in models] == ["hvae", "vae"]
    assert all(np.isfinite(m["recon_mse"]) and m["recon_mse"] > 0 for m in models)
    code, _, err = run_cli(["report", hvae_run, "-k", "2", "--out", tmp_path / "r.html", "-q"], capsys)
    assert code == 0, err
    html = (tmp_path / "r.html").read_text()
    assert "bits/dim" in html and html.count("data:image/png;base64") >= 3


def test_compress_round_trip(hvae_run, tmp_path, capsys):
    pytest.importorskip("constriction")
    code, out, err = run_cli(["compress", hvae_run, "--input", "digits:test", "--out", tmp_path / "f.vkc"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["decompress", tmp_path / "f.vkc", "--run", hvae_run, "--out", tmp_path / "d.npy"], capsys)
    assert code == 0, err
    want = (load_split("digits:test").x * 255).round().to(torch.uint8).numpy()
    got = np.load(tmp_path / "d.npy")
    assert np.array_equal(got.reshape(want.shape), want)  # every pixel back


def test_the_explorer_serves_it(hvae_run):
    client = TestClient(create_app(Explorer.from_run(hvae_run, score_reference=40)))
    info = client.get("/api/info").json()
    assert info["latent_dim"] == 3
    samples = client.get("/api/samples", params={"n": 4, "seed": 1}).json()
    assert len(samples["images"]) == 4 and len(set(samples["images"])) == 4
    z = [0.1, -0.2, 0.3]
    r = client.post("/api/decode", json={"z": z})
    assert r.status_code == 200, r.text
    head, _, b64 = r.json()["image"].partition(",")
    got = np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))), dtype=np.float64) / 255
    want = sampling.decode(vaekit.load(hvae_run), torch.tensor([z]))[0, 0].numpy()
    np.testing.assert_allclose(got, want, atol=0.5 / 255 + 1e-6)  # the model's image of that top code
