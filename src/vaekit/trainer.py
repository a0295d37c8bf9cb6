"""The one training loop. It knows the model only through `model(x, y) -> ModelOutput`
and the objective; everything else (data, run folder, callbacks) is passed in."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from tqdm import tqdm

from . import checkpoint as ckpt
from .config import TrainConfig
from .data import DataSplits, Dataset
from .errors import TrainingDiverged, VaekitError
from .corruption import Corruption
from .objectives import KLControl

Callback = Callable[[int, dict[str, Any], torch.nn.Module], None]
LOG_EVERY = 20  # steps between progress-bar refreshes (each refresh reads values off the device)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise VaekitError("--device cuda was asked for but PyTorch sees no CUDA GPU")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise VaekitError("--device mps was asked for but this machine has no MPS device")
    if name not in ("cpu", "cuda", "mps"):
        raise VaekitError(f"unknown device {name!r}; choose auto, cpu, cuda or mps")
    return torch.device(name)


def _rng_state(data_gen: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    rng = {"torch": torch.get_rng_state(), "data": data_gen.get_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return rng


def _set_rng_state(rng: dict[str, torch.Tensor], data_gen: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(rng["torch"])
    data_gen.set_state(rng["data"])
    if device.type == "cuda" and "cuda" in rng:
        torch.cuda.set_rng_state(rng["cuda"], device)


def _grad_norm(params: list[torch.nn.Parameter], clip: float | None) -> torch.Tensor:
    if clip is not None:
        return torch.nn.utils.clip_grad_norm_(params, clip)
    grads = [p.grad for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


@torch.no_grad()
def evaluate_loss(
    model, data: Dataset, cfg: TrainConfig, *, seed: int, corruption: Corruption | None = None, batch_size: int = 1024
) -> dict[str, float]:
    """Mean loss, recon and KL (nats per example) over a dataset, with fixed noise (seeded).
    The loss is the objective once the KL schedules have run their course (recon + beta * KL;
    free bits per dimension over the whole set; beta * |KL - C| at the final capacity C): the
    objective training aims at, so the best epoch is not simply the one with the least KL."""
    was_training = model.training
    model.eval()
    device = model.device
    gen = torch.Generator(device=device).manual_seed(seed)
    recon_sum = torch.zeros((), dtype=torch.float64, device=device)
    kl_sums = torch.zeros(model.latent_dim, dtype=torch.float64, device=device)  # (D,)
    for x, y in data.batches(batch_size):
        x_in = x if corruption is None else corruption(x, gen)
        out = model(x_in, y, target=x, generator=gen)
        recon_sum += out.recon.sum().double()
        kl_sums += out.kl_per_dim.sum(0).double()
    model.train(was_training)
    n = max(len(data), 1)
    recon, kl_per_dim = recon_sum / n, kl_sums / n
    loss = KLControl.from_config(cfg, total_steps=1).final_loss(recon[None], kl_per_dim[None])
    recon, kl = float(recon), float(kl_per_dim.sum())
    return {"loss": float(loss), "recon": recon, "kl": kl, "nelbo": recon + kl}


def fit(
    model: torch.nn.Module,
    data: DataSplits,
    cfg: TrainConfig,
    *,
    run_dir: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    callbacks: Iterable[Callback] = (),
    clip_range: tuple[float, float] | None = (0.0, 1.0),
) -> list[dict[str, Any]]:
    """Train `model` on data.train for cfg.epochs epochs in total, validating on data.val.

    With run_dir, every epoch writes metrics.jsonl, checkpoint.safetensors and (when the
    validation loss improves) model.safetensors. resume=True continues from the run's last
    checkpoint exactly: the same weights as one uninterrupted run on the same machine.
    clip_range: where corrupted inputs are clipped for denoising (None: not clipped).
    Returns the metric rows of the epochs run now.
    """
    device = model.device
    train, val = data.train.to(device), data.val.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    data_gen = torch.Generator(device=device).manual_seed(cfg.seed)
    state: dict[str, Any] = {"epoch": 0, "step": 0, "best_val": math.inf, "bad_epochs": 0}

    if resume:
        if run_dir is None:
            raise ValueError("resume needs a run_dir")
        model_state, opt_state, rng, state = ckpt.load_checkpoint(Path(run_dir) / ckpt.CHECKPOINT_FILE)
        model.load_state_dict(model_state)
        optimizer.load_state_dict(opt_state)
        _set_rng_state(rng, data_gen, device)
        ckpt.truncate_metrics(run_dir, state["epoch"])

    n, bs = len(train), cfg.batch_size
    steps = math.ceil(n / bs)
    kl_control = KLControl.from_config(cfg, total_steps=steps * cfg.epochs)
    corruption = Corruption.parse(cfg.denoise, clip=clip_range) if cfg.denoise else None
    history: list[dict[str, Any]] = []
    model.train()
    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        if cfg.patience is not None and state["bad_epochs"] >= cfg.patience:
            break
        t0 = time.perf_counter()
        sums = torch.zeros(3, device=device)  # loss, recon, kl summed over examples
        skipped = 0
        bad_in_a_row = 0
        perm = torch.randperm(n, generator=data_gen, device=device)
        bar = tqdm(total=steps, desc=f"epoch {epoch}/{cfg.epochs}", disable=not progress, leave=False,
                   unit="step", dynamic_ncols=True)  # fmt: skip
        for i in range(steps):
            idx = perm[i * bs : (i + 1) * bs]
            x = train.x[idx]
            y = None if train.y is None else train.y[idx]
            if cfg.binarize == "dynamic":
                x = torch.bernoulli(x, generator=data_gen)
            x_in = x if corruption is None else corruption(x, data_gen)
            out = model(x_in, y, target=x)
            loss = kl_control.loss(out, state["step"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = _grad_norm(params, cfg.grad_clip)
            if not bool(torch.isfinite(loss) & torch.isfinite(norm)):
                skipped += 1
                bad_in_a_row += 1
                if bad_in_a_row >= cfg.max_bad_steps:
                    raise TrainingDiverged(
                        f"training diverged: {bad_in_a_row} steps in a row had a non-finite loss or gradient "
                        f"(epoch {epoch}); try a lower --lr, --grad-clip 1.0, or check the data"
                    )
                continue
            bad_in_a_row = 0
            optimizer.step()
            state["step"] += 1
            with torch.no_grad():
                sums += torch.stack([loss.detach() * len(idx), out.recon.detach().sum(), out.kl.detach().sum()])
            if progress and (i % LOG_EVERY == 0 or i == steps - 1):
                seen = min((i + 1) * bs, n)
                l, r, k = (sums / seen).tolist()
                bar.set_postfix(loss=f"{l:.2f}", recon=f"{r:.2f}", kl=f"{k:.2f}",
                                img_s=f"{seen / (time.perf_counter() - t0):.0f}", refresh=False)  # fmt: skip
            bar.update(1)
        bar.close()
        seconds = time.perf_counter() - t0
        tr_loss, tr_recon, tr_kl = (sums / max(n - skipped * bs, 1)).tolist()
        v = evaluate_loss(model, val, cfg, seed=cfg.seed + 1, corruption=corruption)
        improved = v["loss"] < state["best_val"]
        if improved:
            state["best_val"], state["bad_epochs"] = v["loss"], 0
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch
        row = {
            "epoch": epoch, "step": state["step"],
            "train_loss": tr_loss, "train_recon": tr_recon, "train_kl": tr_kl,
            "val_loss": v["loss"], "val_recon": v["recon"], "val_kl": v["kl"], "val_nelbo": v["nelbo"],
            "beta": cfg.beta, "kl_weight": kl_control.weight(state["step"]),
            "capacity": kl_control.target(state["step"]), "seconds": seconds, "images_per_s": n / seconds, "skipped_steps": skipped,
        }  # fmt: skip
        history.append(row)
        if progress:
            tqdm.write(
                f"epoch {epoch}/{cfg.epochs}  train loss {tr_loss:.2f} (recon {tr_recon:.2f}, kl {tr_kl:.2f})  "
                f"val loss {v['loss']:.2f}  nats/example  {seconds:.1f}s  {n / seconds:.0f} img/s"
            )
        if run_dir is not None:
            if improved:
                ckpt.save_weights(Path(run_dir) / ckpt.MODEL_FILE, model, {"epoch": epoch, "val_loss": v["loss"]})
            ckpt.append_metrics(run_dir, row)
            ckpt.save_checkpoint(
                Path(run_dir) / ckpt.CHECKPOINT_FILE, model, optimizer, _rng_state(data_gen, device), state
            )
        for cb in callbacks:
            cb(epoch, row, model)
    return history
