"""The one training loop. It knows the model only through `model(x, y) -> ModelOutput`
and the objective; everything else (data, run folder, callbacks) is passed in.

Speed without giving up guarantees (see BENCHMARKS.md for what each bought):
- the data lives on the training device as one tensor; a batch is an index into it;
- Adam runs its fused kernel (one pass over all parameters) where PyTorch has one;
- the non-finite guard is decided on the device: the fused optimizer skips a step whose
  loss or gradient is not finite through its `found_inf` flag, so no step is applied
  blindly and yet nothing waits on the host; counters are read back every
  `host_sync_every(device)` steps (every step on the CPU, where reading costs nothing);
- precision fp32 | bf16 | fp16 (autocast, with a gradient scaler for fp16) and
  torch.compile are options; several processes train with DistributedDataParallel
  (vaekit.distributed);
- denormal floats are flushed to zero on every CPU thread (vaekit.denormals): a Bernoulli
  decoder's gradients fill with them as training goes on, and x86 CPUs compute on them
  about 100x slower.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from . import checkpoint as ckpt
from . import distributed
from .config import TrainConfig
from .corruption import Corruption
from .data import DataSplits, Dataset
from .denormals import flush_denormals
from .errors import TrainingDiverged, VaekitError
from .objectives import KLControl
from .schedules import LRSchedule

Callback = Callable[[int, dict[str, Any], torch.nn.Module], None]
LOG_EVERY = 20  # steps between progress-bar refreshes (each refresh reads values off the device)
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# Steps between reads of the guard's counters on an accelerator (None: LOG_EVERY). A
# diverging run is stopped at most this many steps late; no non-finite step is applied.
HOST_SYNC_EVERY: int | None = None


# our buffers (a fixed sigma) never change in training, so DDP need not re-send them each step
_NO_BUFFER_SYNC = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    else {"broadcast_buffers": False}
)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return distributed.device_for(distributed.context(), torch.device("cuda"))
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise VaekitError("--device cuda was asked for but PyTorch sees no CUDA GPU")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise VaekitError("--device mps was asked for but this machine has no MPS device")
    if name not in ("cpu", "cuda", "mps"):
        raise VaekitError(f"unknown device {name!r}; choose auto, cpu, cuda or mps")
    return distributed.device_for(distributed.context(), torch.device(name))


def host_sync_every(device: torch.device) -> int:
    """How often the loop reads its counters back to the host. On the CPU every op has run
    by the time Python sees its result, so reading costs nothing and the host view is exact
    at every step; on an accelerator a read stalls the queue, so it happens rarely."""
    if device.type == "cpu" and HOST_SYNC_EVERY is None:
        return 1
    return HOST_SYNC_EVERY or LOG_EVERY


def make_optimizer(params: list[torch.nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where this PyTorch has one for the parameters' device
    (CPU, CUDA, MPS in recent versions): about 4x faster than the per-tensor loop on the CPU,
    and it honours a device-side `found_inf` flag. Elsewhere the multi-tensor version."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.Adam(params, lr=lr, foreach=True)


def _is_fused(optimizer: torch.optim.Optimizer) -> bool:
    return bool(optimizer.param_groups[0].get("fused"))


def native_bf16(device: torch.device) -> bool:
    """Whether the device computes in bfloat16 natively (so bf16 autocast is a clear win):
    CUDA GPUs from Ampere on, CPUs with AMX or AVX512-BF16 (recent Xeons)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        avx512_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
        return bool(amx() or avx512_bf16())
    return False


class Precision:
    """Autocast for the forward pass and, for fp16, a GradScaler. bf16 needs no scaler (it has
    fp32's exponent range); fp16 does, or small gradients underflow to zero."""

    def __init__(self, name: str, device: torch.device):
        if name == "auto":
            name = "bf16" if native_bf16(device) else "fp32"
        if name not in PRECISIONS:
            raise VaekitError(f"unknown precision {name!r}; choose auto, {', '.join(PRECISIONS)}")
        self.name, self.dtype, self.device = name, PRECISIONS[name], device
        self.scaler = torch.amp.GradScaler(device.type) if name == "fp16" else None

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)


def _prefers_channels_last(model: torch.nn.Module, device: torch.device, precision: Precision) -> bool:
    """Conv nets run faster with channels-last weights and activations under reduced precision
    (oneDNN's bf16 kernels on the CPU: conv VAE step 56 -> 45 ms here) and on CUDA (tensor
    cores); in float32 on the CPU it makes no measurable difference, so we leave it."""
    has_conv = any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in model.modules())
    return has_conv and (precision.dtype is not None or device.type == "cuda")


def _rng_state(data_gen: torch.Generator, device: torch.device, ctx: distributed.Context) -> dict[str, torch.Tensor]:
    """The RNG states a checkpoint needs: the shared data generator, and each rank's own
    torch (and CUDA) state, which draws the latent noise. Rank 0's keep their plain names."""
    rng = {"data": data_gen.get_state()}
    own = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        own["cuda"] = torch.cuda.get_rng_state(device)
    for name, value in own.items():
        for r, part in enumerate(distributed.all_gather_bytes(value, ctx, device)):
            rng[name if r == 0 else f"{name}.rank{r}"] = part
    return rng


def _set_rng_state(rng: dict[str, torch.Tensor], data_gen: torch.Generator, device: torch.device,
                   ctx: distributed.Context) -> None:  # fmt: skip
    data_gen.set_state(rng["data"])
    suffix = "" if ctx.rank == 0 else f".rank{ctx.rank}"
    if "torch" + suffix not in rng:
        raise VaekitError(
            f"this checkpoint was written by fewer processes than the {ctx.world_size} resuming it; "
            "resume with the same number of processes"
        )
    torch.set_rng_state(rng["torch" + suffix])
    if device.type == "cuda" and "cuda" + suffix in rng:
        torch.cuda.set_rng_state(rng["cuda" + suffix], device)


def _seed_rank(seed: int, ctx: distributed.Context) -> None:
    """Each rank draws its own latent noise; rank 0 keeps the single-process stream."""
    if ctx.rank > 0:
        torch.manual_seed(seed + 1_000_003 * ctx.rank)


def _grad_norm(params: list[torch.nn.Parameter], clip: float | None) -> torch.Tensor:
    """The global gradient norm (clipping to `clip` when given): a 0-dim device tensor."""
    if clip is not None:
        return torch.nn.utils.clip_grad_norm_(params, clip, foreach=True)
    grads = [p.grad for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


@torch.no_grad()
def evaluate_loss(
    model, data: Dataset, cfg: TrainConfig, *, seed: int, corruption: Corruption | None = None, batch_size: int = 256
) -> dict[str, float]:
    """Mean loss, recon and KL (nats per example) over a dataset, with fixed noise (seeded).
    The loss is the objective once the KL schedules have run their course (recon + beta * KL;
    free bits per dimension over the whole set; beta * |KL - C| at the final capacity C): the
    objective training aims at, so the best epoch is not simply the one with the least KL.
    batch_size 256 keeps a conv model's evaluation activations well below the training data's size.
    Under torchrun each rank evaluates its own shard and the sums are all-reduced, so every
    rank returns the same numbers (for the whole dataset)."""
    ctx = distributed.context()
    was_training = model.training
    model.eval()
    device = model.device
    if ctx.enabled:
        mine = distributed.shard_slice(len(data), ctx)
        data = Dataset(data.x[mine], None if data.y is None else data.y[mine])
    gen = torch.Generator(device=device).manual_seed(seed)
    # (n, recon, KL per latent dimension...) summed over examples, in float64
    sums = torch.zeros(2 + model.latent_dim, dtype=torch.float64, device=device)
    for x, y in data.batches(batch_size):
        x_in = x if corruption is None else corruption(x, gen)
        out = model(x_in, y, target=x, generator=gen)
        sums[0] += len(x)
        sums[1] += out.recon.sum().double()
        sums[2:] += out.kl_per_dim.sum(0).double()
    model.train(was_training)
    distributed.all_reduce_sum_(sums, ctx)
    n = max(float(sums[0]), 1.0)
    recon, kl_per_dim = sums[1] / n, sums[2:] / n  # (), (D,)
    loss = KLControl.from_config(cfg, total_steps=1).final_loss(recon[None], kl_per_dim[None])
    recon, kl = float(recon), float(kl_per_dim.sum())
    return {"loss": float(loss), "recon": recon, "kl": kl, "nelbo": recon + kl}


class _Guard:
    """The non-finite guard and the epoch's per-step records, kept on the device.

    Per step: bad = the loss or the gradient norm is not finite. The fused optimizer reads
    `found_inf` (= bad) and leaves weights and moments untouched when it is set. Each step's
    flag and (loss, recon, KL) sums go into preallocated buffers (a handful of device ops,
    no host sync); every `sync_every` steps the host reads the new flags back, counts the
    skipped steps and stops the run if `max_bad_steps` steps in a row were bad."""

    def __init__(self, steps: int, device: torch.device, ctx: distributed.Context):
        self.ctx = ctx
        self.found_inf = torch.zeros((), device=device)
        self.flags = torch.zeros(steps, device=device)  # 1.0 where the step was skipped
        self.terms = torch.zeros(steps, 3, device=device)  # per step: loss * n, recon sum, KL sum
        self.examples: list[int] = []  # per step, this rank's batch size (host-known)
        self.read_upto, self.skipped, self.run, self.longest, self.applied_examples = 0, 0, 0, 0, 0

    def check(self, loss: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
        # loss + norm is finite exactly when both are (short of a 1e38 overflow, also worth skipping)
        self.found_inf.copy_(torch.isfinite(loss.detach().float() + norm).logical_not_())
        # grads are all-reduced, but the loss is each rank's own: every rank must skip together
        distributed.all_reduce_max_(self.found_inf, self.ctx)
        return self.found_inf

    def record(self, i: int, n: int, loss: torch.Tensor, recon: torch.Tensor, kl: torch.Tensor) -> None:
        self.flags[i] = self.found_inf
        self.terms[i] = torch.stack([loss.detach().float() * n, recon.detach().float().sum(), kl.detach().float().sum()])
        self.examples.append(n)

    def read(self, upto: int) -> None:
        """Bring the flags of steps [read_upto, upto) to the host (the only sync)."""
        for j, bad in enumerate(self.flags[self.read_upto : upto].tolist(), start=self.read_upto):
            if bad:
                self.skipped += 1
                self.run += 1
                self.longest = max(self.longest, self.run)
            else:
                self.run = 0
                self.applied_examples += self.examples[j]
        self.read_upto = upto

    @property
    def applied(self) -> int:
        return self.read_upto - self.skipped

    def sums(self, upto: int) -> list[float]:
        """(loss, recon, KL) summed over the applied steps so far (bad steps' NaNs left out)."""
        ok = (self.flags[:upto] == 0).unsqueeze(1)
        return torch.where(ok, self.terms[:upto], 0.0).double().sum(0).tolist()


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
    Under torchrun (vaekit.distributed) every rank calls fit; only rank 0 writes run_dir,
    shows progress and runs the callbacks. fit switches on flush-to-zero for denormal floats
    on torch's CPU threads (vaekit.denormals); the mode stays on in the process afterwards.
    Returns the metric rows of the epochs run now.
    """
    ctx = distributed.context()
    progress = progress and ctx.is_main
    device = model.device
    flush_denormals()
    train, val = data.train.to(device), data.val.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg.lr)
    precision = Precision(cfg.precision, device)
    data_gen = torch.Generator(device=device).manual_seed(cfg.seed)
    state: dict[str, Any] = {"epoch": 0, "step": 0, "best_val": math.inf, "bad_epochs": 0}

    if resume:
        if run_dir is None:
            raise ValueError("resume needs a run_dir")
        model_state, opt_state, rng, state = ckpt.load_checkpoint(Path(run_dir) / ckpt.CHECKPOINT_FILE)
        model.load_state_dict(model_state)
        optimizer.load_state_dict(opt_state)
        _set_rng_state(rng, data_gen, device, ctx)
        if ctx.is_main:
            ckpt.truncate_metrics(run_dir, state["epoch"])
    elif ctx.enabled:
        _seed_rank(cfg.seed, ctx)

    if _prefers_channels_last(model, device, precision):
        model.to(memory_format=torch.channels_last)  # in place: the optimizer keeps the same parameters

    # what runs the training forward: DDP averages gradients across ranks during backward;
    # the compiled version serves full batches (fixed shapes: one graph), eager the rest
    net: torch.nn.Module = model
    if ctx.enabled:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                      gradient_as_bucket_view=True, **_NO_BUFFER_SYNC)  # fmt: skip
    net_full = torch.compile(net, dynamic=False) if cfg.compile else net

    # every rank walks the same permutation in global batches of world_size * batch_size and
    # trains on its own equal slice; the last < world_size examples of the epoch are left out
    # so that the slices are equal and DDP's mean of means is the global batch mean.
    n = len(train) - len(train) % ctx.world_size
    if n == 0:
        raise VaekitError(f"{ctx.world_size} processes need at least as many training examples")
    bs, global_bs = cfg.batch_size, cfg.batch_size * ctx.world_size
    steps = math.ceil(n / global_bs)
    kl_control = KLControl.from_config(cfg, total_steps=steps * cfg.epochs)
    schedule = LRSchedule.from_config(cfg, steps_per_epoch=steps)
    if "schedule" in state:  # resumed (a checkpoint from before schedules has none)
        schedule.load_state_dict(state["schedule"])
    corruption = Corruption.parse(cfg.denoise, clip=clip_range) if cfg.denoise else None
    sync_every = host_sync_every(device)
    fused = _is_fused(optimizer)
    history: list[dict[str, Any]] = []
    model.train()
    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        if cfg.patience is not None and state["bad_epochs"] >= cfg.patience:
            break
        t0 = time.perf_counter()
        guard = _Guard(steps, device, ctx)
        applied_at_sync = state["step"]  # host view of applied steps at the last read
        perm = torch.randperm(len(train), generator=data_gen, device=device)[:n]
        bar = tqdm(total=steps, desc=f"epoch {epoch}/{cfg.epochs}", disable=not progress, leave=False,
                   unit="step", dynamic_ncols=True)  # fmt: skip
        for i in range(steps):
            idx = perm[i * global_bs : (i + 1) * global_bs]
            # (B_global, *shape); index_select gathers whole rows, ~7x faster than x[idx] on the CPU.
            # The randomness below is drawn for the global batch, the same on every rank.
            x = train.x.index_select(0, idx)
            y = None if train.y is None else train.y.index_select(0, idx)
            if cfg.binarize == "dynamic":
                x = torch.bernoulli(x, generator=data_gen)
            x_in = x if corruption is None else corruption(x, data_gen)
            if ctx.enabled:  # this rank's slice, (B, *shape)
                mine = distributed.shard_slice(len(idx), ctx)
                x, x_in, y = x[mine], x_in[mine], None if y is None else y[mine]
            # the KL schedule's step: applied steps as last read, plus the steps since (exact
            # unless a step was skipped since the last read)
            step = applied_at_sync + (i - guard.read_upto)
            forward = net_full if len(x) == bs else net
            # the rate follows the batches of the run (skipped ones too): host-known, so it is the
            # same whenever the guard's counters are read back
            lr = schedule.lr_at((epoch - 1) * steps + i)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with precision.autocast():
                out = forward(x_in, y, target=x)
                loss = kl_control.loss(out, step)
            optimizer.zero_grad(set_to_none=True)
            if precision.scaler is not None:
                precision.scaler.scale(loss).backward()
                precision.scaler.unscale_(optimizer)
            else:
                loss.backward()
            found_inf = guard.check(loss, _grad_norm(params, cfg.grad_clip))
            if fused:
                optimizer.found_inf = found_inf  # the fused kernel skips the update when set
                optimizer.step()
            elif not bool(found_inf):  # the multi-tensor Adam cannot skip on its own: a host sync
                optimizer.step()
            if precision.scaler is not None:
                precision.scaler.update()
            guard.record(i, len(x), loss, out.recon, out.kl)
            if (i + 1) % sync_every == 0 or i == steps - 1:
                guard.read(i + 1)
                applied_at_sync = state["step"] + guard.applied
                if guard.longest >= cfg.max_bad_steps:
                    raise TrainingDiverged(
                        f"training diverged: {guard.longest} steps in a row had a non-finite loss or gradient "
                        f"(epoch {epoch}); try a lower --lr, --grad-clip 1.0, or check the data"
                    )
                if progress and ((i + 1) % LOG_EVERY < sync_every or i == steps - 1):
                    seen = max(guard.applied_examples, 1)
                    l, r, k = (v / seen for v in guard.sums(i + 1))
                    bar.set_postfix(loss=f"{l:.2f}", recon=f"{r:.2f}", kl=f"{k:.2f}",
                                    img_s=f"{(i + 1) * global_bs / (time.perf_counter() - t0):.0f}",
                                    refresh=False)  # fmt: skip
                    bar.update(i + 1 - bar.n)
        bar.close()
        optimizer.found_inf = None
        state["step"] = applied_at_sync
        seconds = time.perf_counter() - t0
        totals = torch.tensor([float(guard.applied_examples), *guard.sums(steps)], dtype=torch.float64, device=device)
        distributed.all_reduce_sum_(totals, ctx)  # every rank's examples and sums
        seen, l_sum, r_sum, k_sum = totals.tolist()
        tr_loss, tr_recon, tr_kl = (v / max(seen, 1.0) for v in (l_sum, r_sum, k_sum))
        skipped = guard.skipped
        v = evaluate_loss(model, val, cfg, seed=cfg.seed + 1, corruption=corruption)
        improved = v["loss"] < state["best_val"]
        if improved:
            state["best_val"], state["bad_epochs"] = v["loss"], 0
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch
        # the run's seconds so far (training and validation), the slowest rank's on every rank so
        # that all ranks agree on where a time limit ends the run
        elapsed = torch.tensor(state.get("seconds", 0.0) + time.perf_counter() - t0, dtype=torch.float64, device=device)
        state["seconds"] = float(distributed.all_reduce_max_(elapsed, ctx))
        stop = schedule.end_epoch(epoch, bad_epochs=state["bad_epochs"], seconds=state["seconds"])
        state["schedule"] = schedule.state_dict()
        row = {
            "epoch": epoch, "step": state["step"],
            "train_loss": tr_loss, "train_recon": tr_recon, "train_kl": tr_kl,
            "val_loss": v["loss"], "val_recon": v["recon"], "val_kl": v["kl"], "val_nelbo": v["nelbo"],
            "beta": cfg.beta, "kl_weight": kl_control.weight(state["step"]),
            "capacity": kl_control.target(state["step"]), "seconds": seconds, "images_per_s": n / seconds, "skipped_steps": skipped,
            "precision": precision.name, "lr": lr,
        }  # fmt: skip
        history.append(row)
        if progress:
            tqdm.write(
                f"epoch {epoch}/{cfg.epochs}  train loss {tr_loss:.2f} (recon {tr_recon:.2f}, kl {tr_kl:.2f})  "
                f"val loss {v['loss']:.2f}  nats/example  {seconds:.1f}s  {n / seconds:.0f} img/s"
            )
        rng = _rng_state(data_gen, device, ctx) if run_dir is not None else None  # a collective: every rank
        if run_dir is not None and ctx.is_main:
            if improved:
                ckpt.save_weights(Path(run_dir) / ckpt.MODEL_FILE, model, {"epoch": epoch, "val_loss": v["loss"]})
            ckpt.append_metrics(run_dir, row)
            ckpt.save_checkpoint(Path(run_dir) / ckpt.CHECKPOINT_FILE, model, optimizer, rng, state)
        if ctx.is_main:
            for cb in callbacks:
                cb(epoch, row, model)
        if stop:  # the time limit leaves no room for another epoch
            break
    distributed.barrier(ctx)  # every rank leaves with rank 0's files complete
    return history
