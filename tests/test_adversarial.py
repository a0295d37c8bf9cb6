"""VAE-GAN (--adversarial): the adaptive weight and the feature distance against hand computations,
exact resume with the discriminator in the checkpoint, the non-finite guard over both optimizers,
any image size and channel count, the last epoch kept as the run's best, and one-sentence refusals."""

import numpy as np
import pytest
import torch
from helpers import run_cli

import vaekit
from vaekit.config import DataConfig, ModelConfig, TrainConfig
from vaekit.core.model import VAE
from vaekit.core.nets import PatchDiscriminator
from vaekit.core.objectives import Objective
from vaekit.data import load_data
from vaekit.errors import TrainingDiverged, VaekitError
from vaekit.runs.checkpoint import load_checkpoint
from vaekit.runs.layout import CHECKPOINT_FILE
from vaekit.training import adversarial, fit
from vaekit.training.callbacks import Callback

TINY = dict(arch="conv", channels=[8, 16], latent_dim=4, progress=False, figures=False)
ADV = dict(adversarial=True, adversarial_start=20)  # digits: 11 steps per epoch of 128


def test_the_vae_gets_the_gradients_of_rec_plus_the_adaptively_weighted_adversarial_term():
    """What the step's gradient plumbing (each term through D once, reused) must equal: plain
    autograd of rec + lambda g, rec = loss + feature_weight * feat, lambda = adversarial_weight *
    |d rec / dW| / (|d g / dW| + 1e-4) at the decoder's last layer W (Esser et al. 2021); and D
    gets no gradient from the VAE's update."""
    torch.manual_seed(0)
    model = VAE.from_config(ModelConfig(arch="conv", channels=[8, 16], latent_dim=3, data_shape=[1, 8, 8]))
    adv = adversarial.AdversarialTraining(
        model, TrainConfig(adversarial=True, feature_weight=0.7, adversarial_weight=0.5)
    )
    x = torch.rand(6, 1, 8, 8)
    out = model(x)
    loss = Objective().loss(out, 0)
    fakes = torch.cat([out.px.mean, model.decode_mean(torch.randn(6, 3))])
    _, g, feat = adv._losses(x, fakes)
    params = list(model.parameters())
    lam = adv._vae_backward(loss, feat, g, fakes, params)
    rec = loss + 0.7 * feat
    last = adv.last
    (d_rec,), (d_g,) = (
        torch.autograd.grad(rec, [last], retain_graph=True),
        torch.autograd.grad(g, [last], retain_graph=True),
    )
    want_lam = 0.5 * d_rec.norm() / (d_g.norm() + 1e-4)
    assert float(lam) == pytest.approx(float(want_lam), rel=1e-5)
    want = torch.autograd.grad(rec + want_lam * g, params, retain_graph=True)
    for p, w in zip(params, want):
        torch.testing.assert_close(p.grad, w, rtol=1e-4, atol=1e-6)
    assert all(p.grad is None for p in adv.disc.parameters())
    assert float(adversarial.adaptive_weight(torch.ones(3), torch.zeros(3))) == adversarial.ADAPTIVE_MAX


def test_feature_distance_sums_per_example_and_averages_layers():
    real = [torch.zeros(2, 3, 4, 4), torch.zeros(2, 5, 2, 2)]
    fake = [torch.ones(2, 3, 4, 4), 2 * torch.ones(2, 5, 2, 2)]
    assert float(adversarial.feature_distance(real, fake)) == pytest.approx((48 + 80) / 2)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 9, 11), (2, 5, 6)])
def test_the_patch_discriminator_takes_any_image_size_and_channel_count(shape):
    d = PatchDiscriminator(list(shape))
    logits, features = d(torch.rand(3, *shape))
    assert logits.shape[:2] == (3, 1) and len(features) == len(d.stages) >= 1
    assert all(f.shape[0] == 3 for f in features)


def test_the_last_layer_is_the_decoders_output_layer():
    conv = VAE.from_config(ModelConfig(arch="conv", channels=[8, 16], data_shape=[1, 8, 8]))
    assert adversarial.decoder_last_layer(conv.decoder) is conv.decoder.body[-1].weight
    mlp = VAE.from_config(ModelConfig(arch="mlp", hidden=[16], data_shape=[1, 8, 8]))
    assert adversarial.decoder_last_layer(mlp.decoder) is mlp.decoder.head.weight


def test_resume_is_exact_with_the_discriminator_in_the_checkpoint(tmp_path):
    vaekit.train("digits", out=tmp_path / "full", epochs=4, **TINY, **ADV)
    vaekit.train("digits", out=tmp_path / "half", epochs=2, **TINY, **ADV)
    state = load_checkpoint(tmp_path / "half" / CHECKPOINT_FILE)
    assert set(state.parts) == {"discriminator"} and state.parts["discriminator"]["optimizer"]["state"]
    vaekit.train(resume=tmp_path / "half", epochs=4, progress=False, figures=False)
    full, half = (load_checkpoint(tmp_path / n / CHECKPOINT_FILE) for n in ("full", "half"))
    for mine, theirs in (
        (full.model, half.model),
        (full.parts["discriminator"]["model"], half.parts["discriminator"]["model"]),
    ):
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    rows = {n: vaekit.load_run(tmp_path / n).metrics() for n in ("full", "half")}
    assert [r["adv_d_loss"] for r in rows["full"]] == [r["adv_d_loss"] for r in rows["half"]]
    assert rows["full"][0]["adv_d_loss"] is None and rows["full"][-1]["adv_d_loss"] > 0  # off, then on
    # once the discriminator is on, every epoch is kept: the run's best weights are the last
    best, last = vaekit.load(tmp_path / "full"), vaekit.load(tmp_path / "full", which="last")
    assert all(torch.equal(v, last.state_dict()[k]) for k, v in best.state_dict().items())


class Capture(Callback):
    def on_fit_start(self, loop):
        self.loop = loop
        self.disc = {k: v.clone() for k, v in loop.adversarial.disc.state_dict().items()}
        self.vae = {k: v.clone() for k, v in loop.model.state_dict().items()}


def test_a_non_finite_discriminator_skips_both_updates_then_stops(monkeypatch):
    data = load_data(DataConfig(source="digits"))
    model = VAE.from_config(ModelConfig(arch="conv", channels=[8], latent_dim=2, data_shape=data.shape))
    losses = adversarial.AdversarialTraining._losses

    def nan_for_d(self, x, fakes):  # D's loss (and so its gradients) not finite; the VAE's fine
        d_loss, g, feat = losses(self, x, fakes)
        return d_loss * float("nan"), g, feat

    monkeypatch.setattr(adversarial.AdversarialTraining, "_losses", nan_for_d)
    cap = Capture()
    cfg = TrainConfig(epochs=2, adversarial=True, adversarial_start=0, max_bad_steps=3)
    with pytest.raises(TrainingDiverged, match="non-finite"):
        fit(model, Objective(), data, cfg, callbacks=[cap])
    # the VAE's own loss was finite, but no step of either network was applied
    for now, before in ((cap.loop.model.state_dict(), cap.vae), (cap.loop.adversarial.disc.state_dict(), cap.disc)):
        assert all(torch.equal(now[k], before[k]) for k in before)


def test_any_image_size_and_channel_count_trains(tmp_path):
    x = np.random.default_rng(0).random((60, 3, 9, 11)).astype(np.float32)
    np.savez(tmp_path / "rgb.npz", x=x)
    run = vaekit.train(
        str(tmp_path / "rgb.npz"),
        out=tmp_path / "r",
        epochs=2,
        batch_size=16,
        **TINY,
        adversarial=True,
        adversarial_start=0,
    )
    row = run.metrics()[-1]
    assert np.isfinite(row["train_loss"]) and row["adv_weight"] > 0 and row["adv_feature"] > 0
    assert run.model.sample(4, seed=0).shape == (4, 3, 9, 11)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data", "{vectors}", "--adversarial"], "--adversarial needs images"),
        (["--data", "digits", "--adversarial", "--precision", "fp16"], "not fp16"),
        (
            ["--data", "digits", "--adversarial", "--adversarial-weight", "-1"],
            "--adversarial-weight must be zero or positive",
        ),
        (["--data", "digits", "--adversarial", "--adversarial-start", "-5"], "--adversarial-start must be at least 0"),
    ],
)
def test_mistakes_are_one_sentence(tmp_path, capsys, argv, message):
    np.save(tmp_path / "v.npy", np.random.default_rng(0).random((40, 5)).astype(np.float32))
    argv = [a.replace("{vectors}", str(tmp_path / "v.npy")) for a in argv]
    code, _, err = run_cli(["train", *argv, "--epochs", "1", "--out", tmp_path / "run", "-q"], capsys)
    assert code == 2 and message in err and "Traceback" not in err, err


def test_torchrun_is_refused_with_one_sentence():
    from vaekit.training import loop

    class Several:
        enabled = True

    model = VAE.from_config(ModelConfig(arch="conv", channels=[8], data_shape=[1, 8, 8]))
    with pytest.raises(VaekitError, match="one process"):
        loop._adversarial(model, TrainConfig(adversarial=True), Several())
