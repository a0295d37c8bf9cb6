"""The contenders the benchmarks compare, built on the same data and the same architecture.

Each contender is a function `train(splits, case, *, epochs, on_epoch, seed, lr, batch_size, ...)`
that trains for a number of epochs and calls on_epoch(epoch, seconds, handle) after every epoch,
on the calling (main) thread, from inside its library's own per-epoch hook: vaekit's fit
callbacks, pythae's TrainingCallback.on_epoch_end, the classic loop's own loop. `seconds` is the
time of that epoch's training loop alone; `handle` gives the model (in eval mode) to the
evaluator. No threads: the benchmark children (bench/speed.py, bench/quality.py) pause a
contender between epochs by blocking inside on_epoch until their parent says go on, and stop
it by raising from on_epoch. The architectures mirror vaekit's nets exactly:

  mlp   784-400-(2x20) encoder, 20-400-784 decoder, ReLU        (the classic PyTorch example)
  conv  Conv(1->32, 3x3/2) ReLU Conv(32->64, 3x3/2) ReLU -> Linear(3136 -> 2x16);
        Linear(16 -> 3136) ReLU -> ConvT(64->32) ReLU -> ConvT(32->1)   (vaekit's conv, latent 16)

All use the Bernoulli likelihood (binary cross-entropy on pixel intensities in [0, 1]).

Every call into vaekit goes through a few functions here (vaekit_train_epochs, load_splits,
vaekit_train_defaults, the evaluators' _import), so that the same benchmark code drives vaekit
before and after its package layout changed (see `vaekit@REV` in bench/speed.py).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

CASES = {
    "mlp": dict(arch="mlp", hidden=[400], latent_dim=20),
    "conv": dict(arch="conv", channels=[32, 64], latent_dim=16),
    "mlp512": dict(arch="mlp", hidden=[512, 256], latent_dim=16),  # vaekit's default MLP
}


@dataclass
class Handle:
    """What the evaluator needs from a trained model: x (B, 1, 28, 28) -> (mu, logvar) and
    z -> Bernoulli logits (B, 1, 28, 28), in eval mode."""

    encode: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    decode_logits: Callable[[torch.Tensor], torch.Tensor]


OnEpoch = Callable[[int, float, Handle], None]  # (epoch, seconds of its training loop, handle)


def _import(new_path: str, old_path: str):
    """A vaekit module where the refactored package keeps it (new_path), else where it was
    before (old_path). Only a missing new_path falls back: an import error inside it is raised."""
    try:
        return importlib.import_module(new_path)
    except ModuleNotFoundError as e:
        if e.name is None or not (new_path == e.name or new_path.startswith(e.name + ".")):
            raise
        return importlib.import_module(old_path)


def vaekit_api() -> str:
    """ "new" when the importable vaekit is the refactored package (it has vaekit.training),
    "old" for the layout of cdfc92c and before (vaekit.trainer.fit)."""
    return "new" if importlib.util.find_spec("vaekit.training") is not None else "old"


def vaekit_source() -> str:
    """Where the imported vaekit comes from (the worktree of a `vaekit@REV` child, or this tree)."""
    import vaekit

    return str(Path(vaekit.__file__).resolve().parent)


def load_splits():
    """Fashion-MNIST split as vaekit splits it (train 54,000 / val 6,000 / official test 10,000).
    Both layouts: vaekit.data.load_data, DataConfig from vaekit.config."""
    load_data = _import("vaekit.data", "vaekit.data").load_data
    DataConfig = _import("vaekit.config", "vaekit.config").DataConfig
    return load_data(DataConfig(source="fashion-mnist"))


def vaekit_train_defaults():
    """vaekit's TrainConfig with its defaults (epochs, lr, batch_size, lr_schedule, precision)."""
    return _import("vaekit.config", "vaekit.config").TrainConfig()


# -- plain PyTorch modules (used by the classic loop and by pythae) ----------------------------------


class MLPEnc(nn.Module):
    def __init__(self, latent: int = 20):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, latent), nn.Linear(400, latent)

    def forward(self, x):
        h = F.relu(self.fc1(x.reshape(-1, 784)))
        return self.fc21(h), self.fc22(h)


class MLPDec(nn.Module):
    def __init__(self, latent: int = 20):
        super().__init__()
        self.fc3, self.fc4 = nn.Linear(latent, 400), nn.Linear(400, 784)

    def forward(self, z):  # logits (B, 1, 28, 28)
        return self.fc4(F.relu(self.fc3(z))).view(-1, 1, 28, 28)


class ConvEnc(nn.Module):
    def __init__(self, latent: int = 16):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU())
        self.head = nn.Linear(64 * 7 * 7, 2 * latent)

    def forward(self, x):
        mu, logvar = self.head(self.body(x).flatten(1)).chunk(2, dim=1)
        return mu, logvar


class ConvDec(nn.Module):
    def __init__(self, latent: int = 16):
        super().__init__()
        self.head = nn.Sequential(nn.Linear(latent, 64 * 7 * 7), nn.ReLU())
        self.body = nn.Sequential(
            nn.ConvTranspose2d(64, 32, 3, 2, 1, output_padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 3, 2, 1, output_padding=1),
        )

    def forward(self, z):
        return self.body(self.head(z).view(-1, 64, 7, 7))


def plain_modules(case: str) -> tuple[nn.Module, nn.Module]:
    return (MLPEnc(), MLPDec()) if case == "mlp" else (ConvEnc(), ConvDec())


# -- vaekit ------------------------------------------------------------------------------------------------


def vaekit_train_epochs(
    splits, case: str, epochs: int, seed: int, lr: float, batch_size: int, on_epoch: OnEpoch, **train_options
) -> None:
    """THE adapter: every training call into vaekit is here. Trains a vaekit VAE for `case`
    (a key of CASES, or "defaults": the model `vaekit train --data fashion-mnist` builds) with
    TrainConfig(epochs, batch_size, lr, seed, device="cpu", **train_options), validation every
    epoch as always, at a constant rate unless train_options say otherwise (the speed benchmark
    compares one optimizer: Adam at a constant rate, as the peers run it). After every epoch,
    on the main thread, with the model in eval mode: on_epoch(epoch, seconds, handle), seconds
    from vaekit's own metric row (the training loop only). Returns when the run ends (its
    epochs, or its time limit); an exception from on_epoch ends it there."""
    torch.manual_seed(seed)
    train_options.setdefault("lr_schedule", "constant")

    if vaekit_api() == "new":
        # the layered API: vaekit.training.fit(model, objective, data, cfg, callbacks=[...])
        from vaekit.config import ModelConfig, TrainConfig
        from vaekit.core.model import VAE
        from vaekit.core.objectives import Objective
        from vaekit.runs.setup import model_config
        from vaekit.training import EveryEpoch, fit

        if case == "defaults":
            model = VAE.from_config(model_config(splits, "vae", False, {}))
        else:
            model = VAE.from_config(ModelConfig(data_shape=[1, 28, 28], **CASES[case]))
        handle = Handle(lambda x: (lambda q: (q.mu, q.logvar))(model.encode(x)), lambda z: model.decode_params(z)[:, 0])
        cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device="cpu", **train_options)

        def each_epoch(epoch, row, _model):  # fit calls it on the calling (main) thread after each epoch
            model.eval()
            on_epoch(epoch, row["seconds"], handle)
            model.train()

        fit(model, Objective.from_config(cfg), splits, cfg, callbacks=[EveryEpoch(each_epoch)])
        return

    # OLD API (cdfc92c and before): vaekit.trainer.fit(model, splits, cfg, progress=, callbacks=)
    from vaekit.config import ModelConfig, TrainConfig
    from vaekit.model import VAE
    from vaekit.trainer import fit

    if case == "defaults":
        from vaekit.api import _model_config

        model = VAE.from_config(_model_config(splits, "vae", False, {}))
    else:
        model = VAE.from_config(ModelConfig(data_shape=[1, 28, 28], **CASES[case]))
    handle = Handle(lambda x: (lambda q: (q.mu, q.logvar))(model.encode(x)), lambda z: model.decode_params(z)[:, 0])
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device="cpu", **train_options)

    def callback(epoch, row, _model):  # fit calls it on the calling thread after each epoch
        model.eval()
        on_epoch(epoch, row["seconds"], handle)
        model.train()

    fit(model, splits, cfg, progress=False, callbacks=[callback])


def train_vaekit(
    splits,
    case: str,
    *,
    epochs: int,
    on_epoch: OnEpoch,
    seed: int = 0,
    lr: float = 1e-3,
    batch_size: int = 128,
    **train_options,
) -> None:
    """vaekit as a contender: vaekit_train_epochs with the contenders' keyword signature."""
    vaekit_train_epochs(splits, case, epochs, seed, lr, batch_size, on_epoch, **train_options)


# -- the classic PyTorch example (examples/vae/main.py), DataLoader and all -------------------------------


def train_classic(
    splits, case: str, *, epochs: int, on_epoch: OnEpoch, seed: int = 0, lr: float = 1e-3, batch_size: int = 128, **_
) -> None:
    """The loop of PyTorch's VAE example: a DataLoader over a Dataset (shuffle, no workers on the
    CPU, as the example does), sigmoid outputs + binary_cross_entropy(sum) + KLD, and
    `train_loss += loss.item()` every step."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(seed)
    enc, dec = plain_modules(case)
    params = list(enc.parameters()) + list(dec.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    loader = DataLoader(TensorDataset(splits.train.x), batch_size=batch_size, shuffle=True)
    handle = Handle(enc, dec)
    for epoch in range(1, epochs + 1):
        enc.train(), dec.train()
        t0 = time.perf_counter()
        train_loss = 0.0
        for (data,) in loader:
            optimizer.zero_grad()
            mu, logvar = enc(data)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            recon = torch.sigmoid(dec(z))
            bce = F.binary_cross_entropy(recon.view(-1, 784), data.view(-1, 784), reduction="sum")
            kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            loss = bce + kld
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
        seconds = time.perf_counter() - t0
        enc.eval(), dec.eval()
        on_epoch(epoch, seconds, handle)


# -- pythae 0.1.2 --------------------------------------------------------------------------------------------


def _pythae_model(case: str, latent: int | None = None):
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    enc_mod, dec_mod = plain_modules(case)

    class Enc(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.net = enc_mod

        def forward(self, x):
            mu, logvar = self.net(x)
            return ModelOutput(embedding=mu, log_covariance=logvar)

    class Dec(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = dec_mod

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))  # pythae's BCE wants probabilities

    cfg = VAEConfig(input_dim=(1, 28, 28), latent_dim=CASES[case]["latent_dim"], reconstruction_loss="bce")
    return VAE(model_config=cfg, encoder=Enc(), decoder=Dec()), enc_mod, dec_mod


def _pythae_handle(model) -> Handle:
    def encode(x):
        out = model.encoder(x)
        return out.embedding, out.log_covariance

    def decode_logits(z):
        p = model.decoder(z)["reconstruction"].clamp(1e-7, 1 - 1e-7)  # probabilities -> logits
        return torch.log(p) - torch.log1p(-p)

    return Handle(encode, decode_logits)


def _pythae_trainer(model, splits, config):
    import logging

    from pythae.data.datasets import BaseDataset
    from pythae.trainers import BaseTrainer

    logging.getLogger("pythae").setLevel(logging.ERROR)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("pythae"):
            logging.getLogger(name).setLevel(logging.ERROR)
    # what pythae's TrainingPipeline makes of arrays: a BaseDataset of (data, labels)
    train, val = (BaseDataset(d.x, torch.zeros(len(d))) for d in (splits.train, splits.val))
    return BaseTrainer(model=model, train_dataset=train, eval_dataset=val, training_config=config)


def _run_pythae(trainer, model, handle: Handle, on_epoch: OnEpoch) -> None:
    """pythae's own BaseTrainer.train(), reporting after each epoch from its on_epoch_end
    callback (called on this thread); we time its train_step (the training loop alone, as for
    the others)."""
    from pythae.trainers.training_callbacks import TrainingCallback

    times: list[float] = []
    original = trainer.train_step

    def timed_train_step(epoch):
        t0 = time.perf_counter()
        out = original(epoch)
        times.append(time.perf_counter() - t0)
        return out

    trainer.train_step = timed_train_step

    class Report(TrainingCallback):
        def on_epoch_end(self, training_config, **kwargs):
            model.eval()
            on_epoch(len(times), times[-1], handle)

    trainer.callbacks = [Report()]  # pythae 0.1.2 builds its callback handler from this in train()
    trainer.train()


def train_pythae(
    splits,
    case: str,
    *,
    epochs: int,
    on_epoch: OnEpoch,
    seed: int = 0,
    lr: float = 1e-3,
    batch_size: int = 128,
    output_dir: str = "/tmp/pythae-bench",
    **_,
) -> None:
    """pythae's BaseTrainer with Adam(lr), the given batch size and the architecture above."""
    from pythae.trainers import BaseTrainerConfig

    torch.manual_seed(seed)
    model, _, _ = _pythae_model(case)
    config = BaseTrainerConfig(
        output_dir=output_dir,
        num_epochs=epochs,
        learning_rate=lr,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=1024,
        optimizer_cls="Adam",
        steps_saving=None,
        no_cuda=True,
        seed=seed,
    )
    trainer = _pythae_trainer(model, splits, config)
    _run_pythae(trainer, model, _pythae_handle(model), on_epoch)


def train_pythae_readme(
    splits, *, epochs: int, on_epoch: OnEpoch, seed: int = 0, output_dir: str = "/tmp/pythae-bench", **_
) -> None:
    """pythae as its README trains a VAE on 28x28 images: default networks, latent_dim 10, AdamW
    (wd 0.05, betas 0.91/0.995), lr 1e-3, batch 200, ReduceLROnPlateau(5, 0.5), 2 loader
    workers. One change: reconstruction_loss="bce" (the default is "mse"), so that its
    likelihood is the Bernoulli one every contender is measured in."""
    from pythae.models import VAE, VAEConfig
    from pythae.trainers import BaseTrainerConfig

    torch.manual_seed(seed)
    model = VAE(model_config=VAEConfig(input_dim=(1, 28, 28), latent_dim=10, reconstruction_loss="bce"))
    config = BaseTrainerConfig(
        output_dir=output_dir,
        num_epochs=epochs,
        learning_rate=1e-3,
        per_device_train_batch_size=200,
        per_device_eval_batch_size=200,
        train_dataloader_num_workers=2,
        eval_dataloader_num_workers=2,
        steps_saving=None,
        optimizer_cls="AdamW",
        optimizer_params={"weight_decay": 0.05, "betas": (0.91, 0.995)},
        scheduler_cls="ReduceLROnPlateau",
        scheduler_params={"patience": 5, "factor": 0.5},
        no_cuda=True,
        seed=seed,
    )
    trainer = _pythae_trainer(model, splits, config)
    _run_pythae(trainer, model, _pythae_handle(model), on_epoch)


# -- the one evaluator every contender is measured with -------------------------------------------------


@torch.no_grad()
def test_nelbo(handle: Handle, x: torch.Tensor, *, seed: int = 123, batch_size: int = 1000) -> float:
    """-ELBO in nats per example on x (N, 1, 28, 28) under the Bernoulli likelihood, one
    posterior sample per example drawn from a fixed seed: recon (BCE summed over pixels) + KL."""
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size]
        mu, logvar = handle.encode(xb)
        z = mu + torch.randn(mu.shape, generator=g) * torch.exp(0.5 * logvar)
        logits = handle.decode_logits(z).reshape(len(xb), -1)
        recon = F.binary_cross_entropy_with_logits(logits, xb.reshape(len(xb), -1), reduction="none").sum(1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
        total += float((recon + kl).sum())
    return total / len(x)


class HandleAsModel:
    """A Handle dressed as the vaekit model that vaekit.metrics.iwae_log_likelihood reads
    (encode -> DiagonalGaussian, decode -> Bernoulli likelihood, a standard normal prior), so
    every contender's model is scored by one importance-sampled evaluator, vaekit's own."""

    stochastic = True

    def __init__(self, handle: Handle, latent_dim: int):
        from types import SimpleNamespace

        BernoulliLikelihood = _import("vaekit.core.likelihoods", "vaekit.likelihoods").BernoulliLikelihood
        StandardNormal = _import("vaekit.core.priors", "vaekit.priors").StandardNormal

        self.handle, self.latent_dim = handle, latent_dim
        self.config = SimpleNamespace(num_classes=0)
        self.device = torch.device("cpu")
        self.prior = StandardNormal(latent_dim)
        self.likelihood = BernoulliLikelihood([1, 28, 28])

    def encode(self, x, y=None):
        DiagonalGaussian = _import("vaekit.core.distributions", "vaekit.distributions").DiagonalGaussian
        return DiagonalGaussian(*self.handle.encode(x))

    def decode(self, z, y=None):
        return self.likelihood(self.handle.decode_logits(z).reshape(len(z), 1, 1, 28, 28))  # (B, P=1, C, H, W)


@torch.no_grad()
def test_iwae_nll(handle: Handle, x: torch.Tensor, *, k: int = 100, seed: int = 123, batch_size: int = 500) -> float:
    """Test NLL in nats per example: -log p(x) estimated by vaekit.metrics.iwae_log_likelihood
    with k importance samples (Bernoulli likelihood), the same for every contender."""
    iwae_log_likelihood = _import("vaekit.evaluation.likelihood", "vaekit.metrics").iwae_log_likelihood

    model = HandleAsModel(handle, latent_dim=handle.encode(x[:1])[0].shape[1])
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for i in range(0, len(x), batch_size):
        total += float(iwae_log_likelihood(model, x[i : i + batch_size], k=k, generator=g).sum())
    return -total / len(x)


def mlp_train_flops_per_image(sizes=((784, 400), (400, 40), (20, 400), (400, 784))) -> dict[str, float]:
    """Matmul FLOPs of one training step per image for the MLP. Forward: 2*in*out per layer;
    backward: 2*in*out for the weight gradient, and 2*in*out for the input gradient of every
    layer but the first (nothing needs the gradient of the data). `convention_6n` is the
    common 6 x (multiply-adds) estimate, which also counts that first input gradient."""
    macs = sum(a * b for a, b in sizes)
    first = sizes[0][0] * sizes[0][1]
    return {"exact": 2 * macs + 2 * macs + 2 * (macs - first), "convention_6n": 6 * macs}


MLP_SHAPES = [(400, 784), (400,), (40, 400), (40,), (400, 20), (400,), (784, 400), (784,)]
MLP_PARAMS = sum(math.prod(shape) for shape in MLP_SHAPES)


def adam_step_ms(repeats: int = 20) -> float:
    """Best-of-`repeats` time of one fused Adam step over the MLP's parameters: the part of a
    training step that is memory traffic, not matmuls (28 bytes per parameter)."""
    params = [torch.nn.Parameter(torch.randn(shape)) for shape in MLP_SHAPES]
    for p in params:
        p.grad = torch.randn_like(p)
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    opt.step()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        opt.step()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def step_matmuls_ms(batch: int = 128, repeats: int = 50) -> float:
    """Median time of the MLP training step's matmuls alone, at their real shapes and layouts
    (what nn.Linear and its backward call: addmm forward, grad @ W for the input gradient of
    every layer but the first, grad^T @ input for the weight gradient). No loop can run the
    step faster than this plus the optimizer's update."""
    layers = [(784, 400), (400, 40), (20, 400), (400, 784)]  # (in, out); the decoder takes 20 of the 40
    ws = [torch.randn(o, i) for i, o in layers]
    bs = [torch.randn(o) for _, o in layers]
    acts = [torch.randn(batch, i) for i, _ in layers]
    grads = [torch.randn(batch, o) for _, o in layers]

    def step():
        for a, w, b in zip(acts, ws, bs):
            torch.addmm(b, a, w.t())
        for j, (a, w, g) in enumerate(zip(acts, ws, grads)):
            if j > 0:
                g.mm(w)  # input gradient
            g.t().mm(a)  # weight gradient

    for _ in range(5):
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2] * 1e3


def matmul_gflops(n: int = 4096, repeats: int = 5) -> float:
    """Best-of-`repeats` float32 GFLOP/s of an n x n matmul with the default thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _vaekit_with(**options):
    """vaekit with TrainConfig options passed through the adapter (nothing patched inside vaekit)."""

    def train(splits, case, **kwargs):
        return train_vaekit(splits, case, **kwargs, **options)

    return train


# Each runs in its own process (bench/speed.py, bench/quality.py). The ablation rows that patched
# vaekit's internals (vaekit-foundation, vaekit-foreach-adam, vaekit-keep-denormals) are gone with
# those internals; their numbers stay in BENCHMARKS.md. For vaekit before and after a change, run
# `vaekit@REV` next to `vaekit` (bench/speed.py).
CONTENDERS = {
    "vaekit": train_vaekit,
    "vaekit-bf16": _vaekit_with(precision="bf16"),
    "vaekit-compile": _vaekit_with(compile=True),
    "pythae": train_pythae,
    "classic": train_classic,
}
