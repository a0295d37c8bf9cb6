"""The contenders the benchmarks compare, built on the same data and the same architecture.

Each `train_*` function trains for a number of epochs and yields after every epoch
(epoch, seconds spent in that epoch's training loop, model handle), so the callers can time
epochs, evaluate and stop on a time budget the same way for everybody. The architectures
mirror vaekit's nets exactly:

  mlp   784-400-(2x20) encoder, 20-400-784 decoder, ReLU        (the classic PyTorch example)
  conv  Conv(1->32, 3x3/2) ReLU Conv(32->64, 3x3/2) ReLU -> Linear(3136 -> 2x16);
        Linear(16 -> 3136) ReLU -> ConvT(64->32) ReLU -> ConvT(32->1)   (vaekit's conv, latent 16)

All use the Bernoulli likelihood (binary cross-entropy on pixel intensities in [0, 1]).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
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


def load_splits():
    """Fashion-MNIST split as vaekit splits it (train 54,000 / val 6,000 / official test 10,000)."""
    from vaekit.config import DataConfig
    from vaekit.data import load_data

    return load_data(DataConfig(source="fashion-mnist"))


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
            nn.ConvTranspose2d(64, 32, 3, 2, 1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 3, 2, 1, output_padding=1),
        )  # fmt: skip

    def forward(self, z):
        return self.body(self.head(z).view(-1, 64, 7, 7))


def plain_modules(case: str) -> tuple[nn.Module, nn.Module]:
    return (MLPEnc(), MLPDec()) if case == "mlp" else (ConvEnc(), ConvDec())


# -- vaekit ------------------------------------------------------------------------------------------------


def paused(run: Callable[[Callable[[], None]], None]) -> Iterator[None]:
    """Turn `run(hook)`, a training call that calls hook() after every epoch, into a generator
    that yields after every epoch: run goes on a thread that waits inside hook() until the
    caller asks for the next epoch, so what the caller does in between is not timed."""
    import queue
    import threading

    events: "queue.Queue[object]" = queue.Queue()
    go_on = threading.Semaphore(0)
    errors: list[BaseException] = []

    def hook() -> None:
        events.put("epoch")
        go_on.acquire()

    def target() -> None:
        try:
            run(hook)
        except BaseException as e:  # noqa: BLE001  (re-raised in the caller's thread)
            errors.append(e)
        events.put(None)

    threading.Thread(target=target, daemon=True).start()
    while events.get() is not None:
        yield
        go_on.release()
    if errors:
        raise errors[0]


FOUNDATION_COMMIT = "073e1e4"  # the training loop before this work, for the ablation rows


def foundation_fit():
    """fit() as the foundation commit had it (per-tensor Adam, a host sync every step), loaded
    from git into the vaekit package so that its relative imports resolve."""
    import importlib.util
    import subprocess

    root = HERE.parent
    source = subprocess.run(["git", "show", f"{FOUNDATION_COMMIT}:src/vaekit/trainer.py"], cwd=root,
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    path = HERE / "out" / "trainer_foundation.py"
    path.parent.mkdir(exist_ok=True)
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("vaekit.trainer_foundation", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.fit


def train_vaekit(splits, case: str, *, epochs: int, seed: int = 0, lr: float = 1e-3, batch_size: int = 128,
                 fit=None, **train_options) -> Iterator[tuple[int, float, Handle]]:  # fmt: skip
    """vaekit.trainer.fit (validation every epoch, as always) at a constant rate unless
    train_options say otherwise; epoch times come from fit's own metric rows, which time the
    training loop only."""
    from vaekit.config import ModelConfig, TrainConfig
    from vaekit.model import VAE

    if fit is None:
        from vaekit.trainer import fit

    torch.manual_seed(seed)
    if case == "defaults":  # the model `vaekit train --data fashion-mnist` builds
        from vaekit.api import _model_config

        model = VAE.from_config(_model_config(splits, "vae", False, {}))
    else:
        model = VAE.from_config(ModelConfig(data_shape=[1, 28, 28], **CASES[case]))
    handle = Handle(lambda x: (lambda q: (q.mu, q.logvar))(model.encode(x)), lambda z: model.decode_params(z)[:, 0])
    # the speed benchmark compares one optimizer: Adam at a constant rate, as the peers run it
    train_options.setdefault("lr_schedule", "constant")
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device="cpu", **train_options)
    rows: list[dict] = []

    def run(hook):
        def callback(epoch, row, _model):
            rows.append(row)
            model.eval()
            hook()
            model.train()

        fit(model, splits, cfg, progress=False, callbacks=[callback])

    for _ in paused(run):
        yield rows[-1]["epoch"], rows[-1]["seconds"], handle


# -- the classic PyTorch example (examples/vae/main.py), DataLoader and all -------------------------------


def train_classic(splits, case: str, *, epochs: int, seed: int = 0, lr: float = 1e-3, batch_size: int = 128,
                  **_) -> Iterator[tuple[int, float, Handle]]:  # fmt: skip
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
        yield epoch, seconds, handle


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


def _run_pythae(trainer, epochs: int) -> Iterator[tuple[int, float]]:
    """pythae's own BaseTrainer.train(), paused after each epoch; we time its train_step
    (the training loop alone, as for the others)."""
    from pythae.trainers.training_callbacks import TrainingCallback

    times: list[float] = []
    original = trainer.train_step

    def timed_train_step(epoch):
        t0 = time.perf_counter()
        out = original(epoch)
        times.append(time.perf_counter() - t0)
        return out

    trainer.train_step = timed_train_step

    def run(hook):
        class Pause(TrainingCallback):
            def on_epoch_end(self, training_config, **kwargs):
                hook()

        trainer.callbacks = [Pause()]
        trainer.train()

    for _ in paused(run):
        yield len(times), times[-1]


def train_pythae(splits, case: str, *, epochs: int, seed: int = 0, lr: float = 1e-3, batch_size: int = 128,
                 output_dir: str = "/tmp/pythae-bench", **_) -> Iterator[tuple[int, float, Handle]]:  # fmt: skip
    """pythae's BaseTrainer with Adam(lr), the given batch size and the architecture above."""
    from pythae.trainers import BaseTrainerConfig

    torch.manual_seed(seed)
    model, _, _ = _pythae_model(case)
    config = BaseTrainerConfig(
        output_dir=output_dir, num_epochs=epochs, learning_rate=lr, per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=1024, optimizer_cls="Adam", steps_saving=None, no_cuda=True, seed=seed,
    )  # fmt: skip
    trainer = _pythae_trainer(model, splits, config)
    handle = _pythae_handle(model)
    for epoch, seconds in _run_pythae(trainer, epochs):
        model.eval()
        yield epoch, seconds, handle


def train_pythae_readme(splits, *, epochs: int, seed: int = 0, output_dir: str = "/tmp/pythae-bench",
                        **_) -> Iterator[tuple[int, float, Handle]]:  # fmt: skip
    """pythae as its README trains a VAE on 28x28 images: default networks, latent_dim 10, AdamW
    (wd 0.05, betas 0.91/0.995), lr 1e-3, batch 200, ReduceLROnPlateau(5, 0.5), 2 loader
    workers. One change: reconstruction_loss="bce" (the default is "mse"), so that its
    likelihood is the Bernoulli one every contender is measured in."""
    from pythae.models import VAE, VAEConfig
    from pythae.trainers import BaseTrainerConfig

    torch.manual_seed(seed)
    model = VAE(model_config=VAEConfig(input_dim=(1, 28, 28), latent_dim=10, reconstruction_loss="bce"))
    config = BaseTrainerConfig(
        output_dir=output_dir, num_epochs=epochs, learning_rate=1e-3, per_device_train_batch_size=200,
        per_device_eval_batch_size=200, train_dataloader_num_workers=2, eval_dataloader_num_workers=2,
        steps_saving=None, optimizer_cls="AdamW", optimizer_params={"weight_decay": 0.05, "betas": (0.91, 0.995)},
        scheduler_cls="ReduceLROnPlateau", scheduler_params={"patience": 5, "factor": 0.5}, no_cuda=True, seed=seed,
    )  # fmt: skip
    trainer = _pythae_trainer(model, splits, config)
    handle = _pythae_handle(model)
    for epoch, seconds in _run_pythae(trainer, epochs):
        model.eval()
        yield epoch, seconds, handle


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

        from vaekit.likelihoods import BernoulliLikelihood
        from vaekit.priors import StandardNormal

        self.handle, self.latent_dim = handle, latent_dim
        self.config = SimpleNamespace(num_classes=0)
        self.device = torch.device("cpu")
        self.prior = StandardNormal(latent_dim)
        self.likelihood = BernoulliLikelihood([1, 28, 28])

    def encode(self, x, y=None):
        from vaekit.distributions import DiagonalGaussian

        return DiagonalGaussian(*self.handle.encode(x))

    def decode(self, z, y=None):
        return self.likelihood(self.handle.decode_logits(z).reshape(len(z), 1, 1, 28, 28))  # (B, P=1, C, H, W)


@torch.no_grad()
def test_iwae_nll(handle: Handle, x: torch.Tensor, *, k: int = 100, seed: int = 123, batch_size: int = 500) -> float:
    """Test NLL in nats per example: -log p(x) estimated by vaekit.metrics.iwae_log_likelihood
    with k importance samples (Bernoulli likelihood), the same for every contender."""
    from vaekit.metrics import iwae_log_likelihood

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
    def train(splits, case, **kwargs):
        return train_vaekit(splits, case, **kwargs, **options)

    return train


def _vaekit_foundation(splits, case, **kwargs):
    return train_vaekit(splits, case, fit=foundation_fit(), **kwargs)


def _vaekit_foreach_adam(splits, case, **kwargs):
    """Today's loop with the multi-tensor (not fused) Adam: what the fused kernel buys."""
    import vaekit.trainer as T

    T.make_optimizer = lambda params, lr: torch.optim.Adam(params, lr=lr, foreach=True)
    return train_vaekit(splits, case, **kwargs)


def _vaekit_keep_denormals(splits, case, **kwargs):
    """Today's loop without flushing denormal floats to zero: what vaekit.denormals buys."""
    import vaekit.trainer as T

    T.flush_denormals = lambda: True
    return train_vaekit(splits, case, **kwargs)


CONTENDERS = {
    "vaekit-foundation": _vaekit_foundation,
    "vaekit-foreach-adam": _vaekit_foreach_adam,
    "vaekit-keep-denormals": _vaekit_keep_denormals,
    "vaekit": train_vaekit,
    "vaekit-bf16": _vaekit_with(precision="bf16"),
    "vaekit-compile": _vaekit_with(compile=True),
    "pythae": train_pythae,
    "classic": train_classic,
}
