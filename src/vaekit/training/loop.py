"""The one training loop. It knows the model only through `model(x, y, target=, eps=) ->
ModelOutput` and the objective through `objective.loss(out, step, progress)`; data, the objective and the
callbacks are passed in, and it writes nothing itself (the run folder is a callback's business,
see vaekit.runs.writer).

    history = fit(model, objective, data, cfg, callbacks=[Progress()])

Speed without giving up guarantees (see BENCHMARKS.md for what each bought):
- the data lives on the training device as one tensor; a batch is an index into it;
- Adam runs its fused kernel (one pass over all parameters) where PyTorch has one;
- the non-finite guard (vaekit.training.guard) is decided on the device: the fused optimizer
  skips a step whose loss or gradient is not finite through its `found_inf` flag, so nothing
  waits on the host; counters are read back every `host_sync_every(device)` steps;
- precision fp32 | bf16 | fp16 and torch.compile are options; several processes train with
  DistributedDataParallel (vaekit.training.distributed);
- denormal floats are flushed to zero on every CPU thread (vaekit.training.denormals).

Randomness: one generator, seeded by cfg.seed and saved in every checkpoint, draws the data
order, dynamic binarization, corruption and the latent noise eps of each global batch; under
torchrun every rank draws the same and takes its slice, so N processes with batch b step like one
process with batch N*b, for a VAE as for an AE.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from ..config import TrainConfig
from ..core.objectives import Objective
from ..data.corruption import corrupt
from ..data.datasets import Dataset, DataSplits
from ..errors import TrainingDiverged, VaekitError
from . import distributed
from .adversarial import PART, AdversarialTraining
from .callbacks import Callback, notify
from .denormals import flush_denormals
from .devices import LOG_EVERY, host_sync_every
from .guard import Guard
from .optim import apply_step, grad_norm, make_optimizer, match_state_layout
from .precision import Precision
from .schedules import LRSchedule
from .state import TrainingState, rng_state, set_rng_state
from .validation import evaluate_loss

# our buffers (a fixed sigma) never change in training, so DDP need not re-send them each step
_NO_BUFFER_SYNC = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    else {"broadcast_buffers": False}
)


def _prefers_channels_last(model: torch.nn.Module, device: torch.device, precision: Precision) -> bool:
    """Conv nets run faster with channels-last weights and activations under reduced precision
    (oneDNN's bf16 kernels on the CPU: conv VAE step 56 -> 45 ms here), on CUDA (tensor cores),
    and in float32 on the CPU for the hierarchical VAE (oneDNN's backward of its many small
    convolutions: 1.2 -> 0.9 s per step of 128 on one thread; the flat conv VAE's 45 ms is
    unchanged). MPS is left as it is (not measured)."""
    has_conv = any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in model.modules())
    return has_conv and (precision.dtype is not None or device.type in ("cuda", "cpu"))


@dataclass
class Loop:
    """One fit in progress: the parts it trains with and where it stands. Callbacks read it."""

    model: torch.nn.Module
    objective: Objective
    cfg: TrainConfig
    train: Dataset  # on the device
    val: Dataset
    optimizer: torch.optim.Optimizer
    precision: Precision
    schedule: LRSchedule
    guard: Guard
    data_gen: torch.Generator
    ctx: distributed.Context
    forward_full: torch.nn.Module  # what runs full batches (DDP / compiled when asked)
    forward_rest: torch.nn.Module  # the last, shorter batch (eager: no recompilation)
    steps: int  # per epoch
    examples: int  # per epoch, over all ranks
    clip: tuple[float, float] | None  # where corrupted inputs are clipped (the data's range)
    adversarial: AdversarialTraining | None  # the discriminator and its step, with --adversarial
    state: dict[str, Any] = field(default_factory=dict)  # epoch, step, best_val, bad_epochs, seconds
    improved: bool = False  # the last epoch reached a new best validation loss
    stop: bool = False

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def is_main(self) -> bool:
        return self.ctx.is_main

    @property
    def epoch(self) -> int:
        return self.state["epoch"]

    @property
    def params(self) -> list[torch.nn.Parameter]:
        return [p for g in self.optimizer.param_groups for p in g["params"]]

    def snapshot(self) -> TrainingState:
        """Everything an exact resume needs. A collective under torchrun: call it on every rank."""
        rng = rng_state(self.data_gen, self.device, self.ctx)
        parts = {} if self.adversarial is None else {PART: self.adversarial.state_dict()}
        return TrainingState(self.model.state_dict(), self.optimizer.state_dict(), rng, dict(self.state), parts)

    def step(self, i: int, x, x_in, y, eps, step: int, batch: int) -> None:
        """Train on the epoch's batch i (the run's batch `batch`): the VAE's step, or with
        --adversarial the joint VAE-GAN step."""
        if self.adversarial is None:
            train_step(self, i, x, x_in, y, eps, step, batch)
        else:
            self.adversarial.step(self, i, x, x_in, y, eps, step, batch, train_step)


# -- setting up ------------------------------------------------------------------------------------


def start(
    model,
    objective: Objective,
    data: DataSplits,
    cfg: TrainConfig,
    *,
    resume: TrainingState | None,
    clip: tuple[float, float] | None,
) -> Loop:
    """Everything the epochs need, on the model's device; from `resume` when given."""
    ctx = distributed.context()
    device = model.device
    flush_denormals()
    train, val = data.train.to(device), data.val.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg.lr)
    precision = Precision(cfg.precision, device)
    data_gen = torch.Generator(device=device).manual_seed(cfg.seed)
    adversarial = _adversarial(model, cfg, ctx)
    state: dict[str, Any] = {"epoch": 0, "step": 0, "best_val": math.inf, "bad_epochs": 0, "seconds": 0.0}
    if resume is not None:
        state = _restore(resume, model, optimizer, data_gen, device, ctx)
        if adversarial is not None:
            adversarial.load_state_dict(resume.parts.get(PART))
    if _prefers_channels_last(model, device, precision):
        model.to(memory_format=torch.channels_last)  # in place: the optimizer keeps the same parameters
        match_state_layout(optimizer)  # a restored Adam's moments follow (see there)
    forward_full, forward_rest = _forwards(model, cfg, ctx, device)
    # every rank walks the same permutation in global batches of world_size * batch_size and
    # trains on its own equal slice; the last < world_size examples of the epoch are left out
    # so that the slices are equal and DDP's mean of means is the global batch mean.
    n = len(train) - len(train) % ctx.world_size
    if n == 0:
        raise VaekitError(f"{ctx.world_size} processes need at least as many training examples")
    steps = math.ceil(n / (cfg.batch_size * ctx.world_size))
    schedule = LRSchedule.from_config(cfg, steps_per_epoch=steps)
    if "schedule" in state:  # resumed (a checkpoint from before schedules has none)
        schedule.load_state_dict(state["schedule"])
        schedule.plan(state["epoch"], state.get("seconds", 0.0))
    guard = Guard(device, ctx, max_bad=cfg.max_bad_steps, skip_norm=cfg.skip_norm)
    return Loop(
        model=model,
        objective=objective,
        cfg=cfg,
        train=train,
        val=val,
        optimizer=optimizer,
        precision=precision,
        schedule=schedule,
        guard=guard,
        data_gen=data_gen,
        ctx=ctx,
        forward_full=forward_full,
        forward_rest=forward_rest,
        steps=steps,
        examples=n,
        clip=clip,
        adversarial=adversarial,
        state=state,
    )


def _adversarial(model, cfg: TrainConfig, ctx: distributed.Context) -> AdversarialTraining | None:
    if not cfg.adversarial:
        return None
    if ctx.enabled:  # the adaptive weight's partial gradients do not go through DDP's reducer
        raise VaekitError("--adversarial trains in one process; run it without torchrun")
    return AdversarialTraining(model, cfg)


def _restore(resume: TrainingState, model, optimizer, data_gen, device, ctx) -> dict[str, Any]:
    try:
        model.load_state_dict(resume.model)
        optimizer.load_state_dict(resume.optimizer)
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise VaekitError(f"the checkpoint does not fit this model and optimizer: {str(e).splitlines()[0]}") from None
    set_rng_state(resume.rng, data_gen, device, ctx)
    return {"seconds": 0.0, **resume.loop}


def _forwards(model, cfg: TrainConfig, ctx: distributed.Context, device: torch.device):
    """What runs the training forward: DDP averages gradients across ranks during backward; the
    compiled version serves full batches (fixed shapes: one graph), eager the rest."""
    net: torch.nn.Module = model
    if ctx.enabled:
        net = DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            gradient_as_bucket_view=True,
            **_NO_BUFFER_SYNC,
        )
    return (torch.compile(net, dynamic=False) if cfg.compile else net), net


# -- one epoch ----------------------------------------------------------------------------------------


def global_batch(
    loop: Loop, idx: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The inputs of one step for the global batch `idx`, drawn identically on every rank, then
    this rank's slice -> (target x, input x, labels y, latent noise eps)."""
    # index_select gathers whole rows, ~7x faster than x[idx] on the CPU
    x = loop.train.x.index_select(0, idx)  # (B_global, *shape)
    y = None if loop.train.y is None else loop.train.y.index_select(0, idx)
    if loop.cfg.binarize == "dynamic":
        x = torch.bernoulli(x, generator=loop.data_gen)
    x_in = x if loop.cfg.denoise is None else corrupt(x, loop.cfg.denoise, generator=loop.data_gen, clip=loop.clip)
    eps = None
    if loop.model.noisy:
        eps = torch.randn(len(idx), loop.model.noise_dim, generator=loop.data_gen, device=x.device)
    if loop.ctx.enabled:
        mine = distributed.shard_slice(len(idx), loop.ctx)
        x, x_in = x[mine], x_in[mine]
        y = None if y is None else y[mine]
        eps = None if eps is None else eps[mine]
    return x, x_in, y, eps


def train_step(loop: Loop, i: int, x, x_in, y, eps, step: int, batch: int) -> None:
    """Forward, backward and (unless the guard says no) the optimizer step for the epoch's batch
    i, the run's batch `batch`, with `step` optimizer steps applied so far."""
    for group in loop.optimizer.param_groups:
        group["lr"] = loop.schedule.lr_at(batch)
    forward = loop.forward_full if len(x) == loop.cfg.batch_size else loop.forward_rest
    with loop.precision.autocast():
        out = forward(x_in, y, target=x, eps=eps)
        loss = loop.objective.loss(out, step, loop.schedule.progress(batch))
    loop.optimizer.zero_grad(set_to_none=True)
    loop.precision.backward(loss, loop.optimizer)
    found_inf = loop.guard.check(loss, grad_norm(loop.params, loop.cfg.grad_clip))
    apply_step(loop.optimizer, found_inf)
    loop.precision.after_step()
    loop.guard.record(i, len(x), loss, out.recon, out.kl)


def train_epoch(loop: Loop, callbacks: list[Callback]) -> float:
    """One pass over the training data; returns the seconds it took."""
    t0 = time.perf_counter()
    guard, cfg = loop.guard, loop.cfg
    guard.start_epoch(loop.steps)
    sync_every = host_sync_every(loop.device)
    first_step = (loop.epoch - 1) * loop.steps
    applied_at_sync = loop.state["step"]  # host view of applied steps at the last read
    global_bs = cfg.batch_size * loop.ctx.world_size
    perm = torch.randperm(len(loop.train), generator=loop.data_gen, device=loop.device)[: loop.examples]
    reporting = [cb for cb in callbacks if cb.wants_progress]
    loop.model.train()
    for i in range(loop.steps):
        x, x_in, y, eps = global_batch(loop, perm[i * global_bs : (i + 1) * global_bs])
        # the KL schedule's step: applied steps as last read, plus the steps since (exact unless a
        # step was skipped since the last read); the rate follows every batch of the run
        step = applied_at_sync + (i - guard.read_upto)
        loop.step(i, x, x_in, y, eps, step, first_step + i)
        if (i + 1) % sync_every == 0 or i == loop.steps - 1:
            guard.read(i + 1, first_step=first_step)
            applied_at_sync = loop.state["step"] + guard.applied
            if reporting and ((i + 1) % LOG_EVERY < sync_every or i == loop.steps - 1):
                _report_progress(loop, reporting, i + 1, (i + 1) * global_bs / (time.perf_counter() - t0))
    loop.optimizer.found_inf = None
    if guard.applied == 0:
        raise TrainingDiverged(
            f"training diverged at step {first_step + loop.steps}: every step of epoch {loop.epoch} had a non-finite "
            "loss or gradient (or one above --skip-norm); try a lower --lr, --grad-clip 1.0, a higher --skip-norm, "
            "or check the data for huge values"
        )
    loop.state["step"] = applied_at_sync
    return time.perf_counter() - t0


def _report_progress(loop: Loop, callbacks: list[Callback], done: int, images_per_s: float) -> None:
    seen = max(loop.guard.applied_examples, 1)
    loss, recon, kl = (v / seen for v in loop.guard.sums(done))
    notify(callbacks, "on_progress", loop, done, {"loss": loss, "recon": recon, "kl": kl, "images_per_s": images_per_s})


def validate(loop: Loop) -> dict[str, float]:
    return evaluate_loss(
        loop.model, loop.val, loop.objective, seed=loop.cfg.seed + 1, corruption=loop.cfg.denoise, clip=loop.clip
    )


def end_epoch(loop: Loop, seconds: float, started: float, v: dict[str, float]) -> dict[str, Any]:
    """Book-keeping after an epoch: best validation loss, the time budget's plan, the metric row."""
    state, cfg = loop.state, loop.cfg
    totals = torch.tensor(
        [float(loop.guard.applied_examples), *loop.guard.sums(loop.steps)], dtype=torch.float64, device=loop.device
    )
    distributed.all_reduce_sum_(totals, loop.ctx)  # every rank's examples and sums
    seen, l_sum, r_sum, k_sum = totals.tolist()
    tr_loss, tr_recon, tr_kl = (v_ / max(seen, 1.0) for v_ in (l_sum, r_sum, k_sum))
    loop.improved = v["loss"] < state["best_val"] or _adversarial_on(loop)
    if loop.improved:
        state["best_val"], state["bad_epochs"] = v["loss"], 0
    else:
        state["bad_epochs"] += 1
    # the run's seconds so far (training and validation), the slowest rank's on every rank so that
    # all ranks agree on where a time limit ends the run
    elapsed = torch.tensor(state["seconds"] + time.perf_counter() - started, dtype=torch.float64, device=loop.device)
    state["seconds"] = float(distributed.all_reduce_max_(elapsed, loop.ctx))
    next_batch = loop.epoch * loop.steps
    lr, progress = loop.schedule.lr_at(next_batch - 1), loop.schedule.progress(next_batch)  # the epoch's last rate
    loop.stop = loop.schedule.end_epoch(loop.epoch, bad_epochs=state["bad_epochs"], seconds=state["seconds"])
    state["schedule"] = loop.schedule.state_dict()
    return {
        "epoch": loop.epoch,
        "step": state["step"],
        "train_loss": tr_loss,
        "train_recon": tr_recon,
        "train_kl": tr_kl,
        "val_loss": v["loss"],
        "val_recon": v["recon"],
        "val_kl": v["kl"],
        "val_nelbo": v["nelbo"],
        "beta": cfg.beta,
        "kl_weight": loop.objective.weight(state["step"], progress),
        "capacity": loop.objective.target(state["step"]),
        "seconds": seconds,
        "images_per_s": loop.examples / seconds,
        "skipped_steps": loop.guard.skipped,
        "precision": loop.precision.name,
        "lr": lr,
        **({} if loop.adversarial is None else loop.adversarial.epoch_metrics()),
    }


def _adversarial_on(loop: Loop) -> bool:
    """Whether the discriminator is training: then the validation likelihood no longer measures
    what training aims at (sharpness is bought with it), and every epoch's weights are kept."""
    return loop.adversarial is not None and loop.state["step"] >= loop.cfg.adversarial_start


def patience_spent(loop: Loop) -> bool:
    return loop.cfg.patience is not None and loop.state["bad_epochs"] >= loop.cfg.patience


# -- the loop -----------------------------------------------------------------------------------------


def fit(
    model: torch.nn.Module,
    objective: Objective,
    data: DataSplits,
    cfg: TrainConfig,
    *,
    callbacks: Iterable[Callback] = (),
    resume: TrainingState | None = None,
    clip: tuple[float, float] | None = (0.0, 1.0),
) -> list[dict[str, Any]]:
    """Train `model` on data.train, validating on data.val after every epoch, until cfg's epoch
    count, the time limit (cfg.time_limit, a budget: see vaekit.training.schedules) or early
    stopping (cfg.patience) ends the run. resume: a TrainingState from an earlier fit of the same
    model (vaekit.runs reads one from a checkpoint) to continue exactly where it stopped.
    clip: the data's range, where corrupted inputs are clipped (None: unbounded vectors).
    Under torchrun every rank calls fit. fit switches on flush-to-zero for denormal floats on
    torch's CPU threads (vaekit.training.denormals); the mode stays on in the process afterwards.
    Returns the metric rows of the epochs run now."""
    callbacks = list(callbacks)
    loop = start(model, objective, data, cfg, resume=resume, clip=clip)
    history: list[dict[str, Any]] = []
    notify(callbacks, "on_fit_start", loop)
    try:
        while not (loop.stop or patience_spent(loop) or _reached_the_end(loop)):
            started = time.perf_counter()
            loop.state["epoch"] += 1
            notify(callbacks, "on_epoch_start", loop)
            seconds = train_epoch(loop, callbacks)
            row = end_epoch(loop, seconds, started, validate(loop))
            history.append(row)
            notify(callbacks, "on_epoch_end", loop, row)
        distributed.barrier(loop.ctx)  # every rank leaves with rank 0's files complete
    finally:
        notify(callbacks, "on_fit_end", loop)
    return history


def _reached_the_end(loop: Loop) -> bool:
    """A resumed run that has already trained its epochs (or spent its time) has nothing to do."""
    return loop.epoch > 0 and loop.schedule.last_epoch <= loop.epoch
