"""Every model variant at tiny sizes: shapes, finite loss, gradients reach every parameter,
save -> load gives identical outputs, the same seed gives the same samples.

A new likelihood registered in LIKELIHOODS or a new arch joins this test automatically."""

import itertools

import pytest
import torch

from vaekit.config import ModelConfig
from vaekit.core.build import build_model
from vaekit.core.likelihoods import LIKELIHOODS
from vaekit.core.objectives import Objective
from vaekit.runs.files import read_tensors, write_tensors

SHAPES = {"mlp": [1, 6, 5], "conv": [3, 9, 7]}  # odd sizes on purpose
# The tabular likelihood needs a table's column heads (tests/test_tabular_likelihood.py checks it)
IMAGE_LIKELIHOODS = sorted(set(LIKELIHOODS) - {"tabular"})
VARIANTS = (
    [
        dict(kind=kind, arch=arch, likelihood=lik, num_classes=k)
        for kind, arch, lik, k in itertools.product(["vae", "ae"], ["mlp", "conv"], IMAGE_LIKELIHOODS, [0, 3])
    ]
    + [  # the codec's distortion is squared error: the Gaussian likelihood only
        dict(kind="codec", arch=arch, likelihood="gaussian", num_classes=k)
        for arch, k in itertools.product(["mlp", "conv"], [0, 3])
    ]
    + [  # the hierarchical VAE models images: its own networks (arch names only the test's shape)
        dict(kind="hvae", arch="conv", likelihood=lik, num_classes=k)
        for lik, k in itertools.product(IMAGE_LIKELIHOODS, [0, 3])
    ]
)


def _ids(v):
    return f"{v['kind']}-{v['arch']}-{v['likelihood']}-{'cond' if v['num_classes'] else 'plain'}"


def _build(v, **extra):
    cfg = ModelConfig(
        **v,
        data_shape=SHAPES[v["arch"]],
        latent_dim=3,
        hidden=[16],
        channels=[4, 8],
        **(dict(widths=[8, 8, 8], groups=[1, 1, 2], group_channels=2) if v["kind"] == "hvae" else {}),
        learn_sigma="global" if v["likelihood"] == "gaussian" and v["kind"] != "codec" else "none",
        **extra,
    )
    torch.manual_seed(0)
    return build_model(cfg)


def _batch(v, b=4):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(b, *SHAPES[v["arch"]], generator=g)
    if "bernoulli" in v["likelihood"] or "discret" in v["likelihood"]:
        x = (x * 255).round() / 255
    y = torch.arange(b) % 3 if v["num_classes"] else None
    return x, y


@pytest.mark.parametrize("v", VARIANTS, ids=_ids)
def test_shapes_loss_and_gradients(v):
    model = _build(v)
    x, y = _batch(v)
    out = model(x, y, generator=torch.Generator().manual_seed(3))  # latent noise as in training
    assert out.z.shape == (4, 3)
    assert out.recon.shape == (4,) and out.kl.shape == (4,) and out.kl_per_dim.shape == (4, model.noise_dim)
    assert model.decode_mean(out.z, y).shape == (4, *SHAPES[v["arch"]])
    loss = Objective().loss(out, step=0)
    assert torch.isfinite(loss)
    if v["kind"] == "hvae":  # the priors' last layers start at zero (VDVAE): one step, then all gradients flow
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p.sub_(1e-2 * p.grad.sign())
                p.grad = None
        out = model(x, y, generator=torch.Generator().manual_seed(3))
        loss = Objective().loss(out, step=0)
    if v["kind"] == "ae":
        assert torch.equal(out.kl, torch.zeros(4))
        assert torch.equal(out.z, model.encode(x, y).mode())
    if v["kind"] == "codec":  # noise within half a step of y; without noise the code is y rounded
        y_code = model.encode(x, y).mu
        assert ((out.z - y_code).abs() <= 0.5).all() and not torch.equal(out.z, out.z.round())
        quantized = model(x, y)
        assert torch.equal(quantized.z, y_code.round()) and (quantized.kl > 0).all()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f"no gradient reaches {missing}"


@pytest.mark.parametrize("v", VARIANTS, ids=_ids)
def test_save_load_gives_identical_outputs(v, tmp_path):
    model = _build(v).eval()
    x, y = _batch(v)
    write_tensors(tmp_path / "w.safetensors", model.state_dict())
    other = _build(v)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)  # make sure loading really replaces every weight
    state, _ = read_tensors(tmp_path / "w.safetensors")
    other.load_state_dict(state)
    other.eval()
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    o1, o2 = model(x, y, generator=g1), other(x, y, generator=g2)
    assert torch.equal(o1.recon, o2.recon) and torch.equal(o1.kl, o2.kl)


@pytest.mark.parametrize("v", VARIANTS, ids=_ids)
def test_same_seed_same_samples(v):
    model = _build(v)
    y = 1 if v["num_classes"] else None
    a = model.sample(5, seed=7, y=y)
    b = model.sample(5, seed=7, y=y)
    c = model.sample(5, seed=8, y=y)
    assert a.shape == (5, *SHAPES[v["arch"]])
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
