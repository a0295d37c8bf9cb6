"""Denoising training (foundation): the model sees corrupt(x) and reconstructs the clean x;
validation corrupts with fixed noise. Plus the uniform:P perturbation of the background model."""

import pytest
import torch

from vaekit.config import Corruption, DataConfig, ModelConfig, TrainConfig
from vaekit.core.model import VAE
from vaekit.core.objectives import Objective
from vaekit.data import corrupt, load_data
from vaekit.errors import VaekitError
from vaekit.training import evaluate_loss, fit


@pytest.mark.parametrize("spec,changed", [("uniform:0.3", 0.3), ("mask:0.2", 0.2), ("saltpepper:0.1", 0.1)])
def test_corruptions_touch_the_asked_fraction(spec, changed):
    x = torch.full((200, 1, 16, 16), 0.5)
    y = corrupt(x, Corruption.parse(spec), generator=torch.Generator().manual_seed(0), clip=(0.0, 1.0))
    assert (y != x).float().mean().item() == pytest.approx(changed, abs=0.01)
    assert y.min() >= 0 and y.max() <= 1


def test_uniform_perturbation_draws_uniform_values():
    x = torch.zeros(100_000)
    y = corrupt(x, Corruption.parse("uniform:1"), generator=torch.Generator().manual_seed(0), clip=(0.0, 1.0))
    assert y.mean().item() == pytest.approx(0.5, abs=0.01) and y.var().item() == pytest.approx(1 / 12, abs=0.005)
    with pytest.raises(VaekitError, match="uniform:P"):
        Corruption.parse("poisson:1")


class Recorder(torch.nn.Module):
    """Wraps a VAE and records what each training call gets as input and as target."""

    def __init__(self, vae):
        super().__init__()
        self.vae, self.calls = vae, []

    @property
    def device(self):
        return self.vae.device

    @property
    def noise_dim(self):  # the trainer draws the latent noise and sums KL per latent dimension
        return self.vae.noise_dim

    @property
    def group_dims(self):  # the objective's free bits per group (None: one flat code)
        return self.vae.group_dims

    @property
    def stochastic(self):
        return self.vae.stochastic

    @property
    def noisy(self):  # the trainer draws the latent noise of a VAE (and a codec)
        return self.vae.noisy

    def forward(self, x, y=None, *, target=None, generator=None, eps=None):
        if self.training:
            self.calls.append((x.clone(), target.clone()))
        return self.vae(x, y, target=target, generator=generator, eps=eps)


def test_trainer_feeds_corrupted_inputs_and_clean_targets():
    data = load_data(DataConfig(source="digits"))
    vae = VAE.from_config(ModelConfig(arch="mlp", hidden=[16], latent_dim=2, data_shape=[1, 8, 8]))
    rec = Recorder(vae)
    cfg = TrainConfig(epochs=1, batch_size=256, denoise="gaussian:0.3")
    fit(rec, Objective.from_config(cfg), data, cfg)
    x_in, target = rec.calls[0]
    rows = (data.train.x.flatten(1)[:, None] == target.flatten(1)[None]).all(-1).any(0)
    assert rows.all()  # targets are clean training examples
    assert (x_in - target).abs().mean() > 0.1  # inputs are corrupted
    assert x_in.min() >= 0 and x_in.max() <= 1


def test_validation_noise_is_fixed_and_matters():
    data = load_data(DataConfig(source="digits"))
    torch.manual_seed(0)
    vae = VAE.from_config(ModelConfig(arch="mlp", hidden=[16], latent_dim=2, data_shape=[1, 8, 8]))
    objective = Objective.from_config(TrainConfig())
    c = Corruption.parse("saltpepper:0.3")
    a = evaluate_loss(vae, data.val, objective, seed=1, corruption=c)
    b = evaluate_loss(vae, data.val, objective, seed=1, corruption=c)
    clean = evaluate_loss(vae, data.val, objective, seed=1)
    assert a == b
    assert a["loss"] != pytest.approx(clean["loss"])
