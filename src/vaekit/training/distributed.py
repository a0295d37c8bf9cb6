"""Training on several processes and machines with PyTorch's own stack (torch.distributed +
DistributedDataParallel), launched by torchrun:

    torchrun --nproc_per_node=4 -m vaekit train --data fashion-mnist --batch-size 64 ...
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 \
             --rdzv_backend=c10d --rdzv_endpoint=HOST:29400 -m vaekit train ...

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK (and the rendezvous address) in each process's
environment; `init_from_env` joins the process group from them (NCCL on CUDA, gloo
elsewhere) and does nothing in a plain single process. Conventions the trainer follows:

- --batch-size is per process: N processes with batch b step like one process with batch N*b.
- Every rank draws the same permutation each epoch and takes its own slice of each global
  batch, so the ranks see disjoint shards that together cover the epoch.
- Only rank 0 writes the run folder; every rank reads it (resume needs the folder on a
  file system all nodes see).
- Validation runs on a shard per rank and the sums are all-reduced, so every rank takes
  the same early-stopping decisions.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import VaekitError

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
TIMEOUT = datetime.timedelta(minutes=30)  # a slow rank (loading data, first compile) must not kill the job


@dataclass(frozen=True)
class Context:
    """Where this process stands: rank among world_size processes; local_rank on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return all(v in os.environ for v in ENV_VARS) and int(os.environ["WORLD_SIZE"]) > 1


def context() -> Context:
    """The current process group's view (a single-process Context when none is running)."""
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return Context(dist.get_rank(), dist.get_world_size(), local)
    return Context()


def init_from_env(device_name: str = "auto") -> Context:
    """Join the process group described by torchrun's environment (idempotent); a plain
    single process gets Context() and nothing happens. device_name: the --device option,
    which picks the backend (nccl for CUDA, gloo otherwise)."""
    if not launched_by_torchrun():
        return context()
    if not dist.is_available():
        raise VaekitError("this PyTorch build has no torch.distributed; run in one process")
    if not dist.is_initialized():
        local_rank = int(os.environ["LOCAL_RANK"])
        use_cuda = device_name in ("auto", "cuda") and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(local_rank)
        backend = "nccl" if use_cuda else "gloo"
        kwargs = {"device_id": torch.device("cuda", local_rank)} if use_cuda else {}
        dist.init_process_group(backend=backend, timeout=TIMEOUT, **kwargs)
    return context()


def device_for(ctx: Context, device: torch.device) -> torch.device:
    """One GPU per process: cuda -> cuda:LOCAL_RANK under torchrun."""
    if device.type == "cuda" and ctx.enabled and device.index is None:
        return torch.device("cuda", ctx.local_rank)
    return device


def barrier(ctx: Context) -> None:
    if ctx.enabled:
        dist.barrier()


def all_reduce_sum_(t: torch.Tensor, ctx: Context) -> torch.Tensor:
    """In place over all ranks; asynchronous on the device (no host sync)."""
    if ctx.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_max_(t: torch.Tensor, ctx: Context) -> torch.Tensor:
    if ctx.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


def shard(index: torch.Tensor, ctx: Context) -> torch.Tensor:
    """This rank's contiguous slice of a batch of indices (sizes differ by at most one)."""
    if not ctx.enabled:
        return index
    return torch.tensor_split(index, ctx.world_size)[ctx.rank]


def shard_slice(n: int, ctx: Context) -> slice:
    """This rank's contiguous part of n items, as shard() cuts them (host arithmetic only)."""
    if not ctx.enabled:
        return slice(0, n)
    base, extra = divmod(n, ctx.world_size)
    start = ctx.rank * base + min(ctx.rank, extra)
    return slice(start, start + base + (ctx.rank < extra))


def all_gather_bytes(t: torch.Tensor, ctx: Context, device: torch.device) -> list[torch.Tensor]:
    """Every rank's copy of a same-shaped uint8 tensor (RNG states), on the CPU, by rank."""
    if not ctx.enabled:
        return [t]
    # NCCL moves only device tensors; gloo is happy with CPU ones
    on = device if dist.get_backend() == "nccl" else torch.device("cpu")
    parts = [torch.empty_like(t, device=on) for _ in range(ctx.world_size)]
    dist.all_gather(parts, t.to(on))
    return [p.cpu() for p in parts]


def broadcast_error(message: str | None, ctx: Context) -> str | None:
    """Rank 0's error message (or None) on every rank, so all raise together instead of
    the others waiting forever at the next collective."""
    if not ctx.enabled:
        return message
    box = [message]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def on_main_only(fn, ctx: Context) -> None:
    """Run fn() on rank 0 only (writing the run folder); an error there is raised on every
    rank (as a VaekitError on the others), and the other ranks wait until rank 0 is done."""
    error = None
    if ctx.is_main:
        try:
            fn()
        except Exception as e:  # noqa: BLE001  (re-raised below, after the others are told)
            error = e
    message = broadcast_error(None if error is None else str(error), ctx)
    if error is not None:
        raise error
    if message is not None:
        raise VaekitError(message)


def is_main_process() -> bool:
    """Rank 0, or a plain process (also before and after the process group's lifetime)."""
    return int(os.environ.get("RANK", "0")) == 0
