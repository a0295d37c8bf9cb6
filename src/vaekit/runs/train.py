"""Training into a run folder: train_run (a config and data, in memory or not), and train (what a
user asks for, by option name, the CLI's `vaekit train`). Every training in vaekit goes through
train_run: the background model, the second-stage prior and each sweep point are runs too.

    run = vaekit.train("digits", out="runs/digits", epochs=20)
    run = vaekit.load_run("runs/digits"); run.model.sample(16)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from ..config import DataConfig, RunConfig
from ..core.build import build_model
from ..core.model import VAE
from ..core.objectives import Objective
from ..data import DataSplits, load_data
from ..errors import VaekitError
from ..training import distributed
from ..training.callbacks import Callback, Progress, TensorBoard
from ..training.devices import resolve_device
from ..training.loop import fit
from ..training.validation import evaluate_loss
from .figures import write_run_figures
from .folder import FolderLock, check_out_folder
from .run import Run
from .setup import data_info, new_config, resumed_config, split_options
from .writer import RunWriter


def train_run(
    config: RunConfig,
    splits: DataSplits,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    info: dict[str, Any] | None = None,
    progress: bool = True,
    figures: bool = True,
    callbacks: Iterable[Callback] = (),
) -> Run:
    """Train a model of `config` on `splits` into the run folder `out` and return the Run, its
    `test_metrics` set (the best model's objective on the test split, nats per example).
    resume=True continues the run in `out` (whose config must be `config`) exactly where its
    checkpoint stopped. info: facts to record beside the config (default: the splits' facts).
    Under torchrun every process calls it; rank 0 writes the folder."""
    started_group = not distributed.context().enabled
    ctx = distributed.init_from_env(config.train.device)  # under torchrun: join the process group
    device = resolve_device(config.train.device)
    if ctx.is_main and not resume:
        check_out_folder(Path(out), overwrite=overwrite)  # refuse before anything is created
    with FolderLock(out) if ctx.is_main else contextlib.nullcontext():
        run = _open_for_training(config, splits, Path(out), resume=resume, overwrite=overwrite, info=info, ctx=ctx)
        model = _train(run, config, splits, device, resume=resume, progress=progress, callbacks=callbacks, ctx=ctx)
        _finish(run, model, splits, figures=figures and ctx.is_main)
    if started_group and ctx.enabled:
        distributed.barrier(ctx)
        distributed.shutdown()
    return run


def _finish(run: Run, model: VAE, splits: DataSplits, *, figures: bool) -> None:
    """What a run ends with after its last epoch: the best model's test figures and its PNGs.
    (A run killed while doing this is finished by `vaekit train --resume`.)"""
    run.device = str(model.device)
    run.test_metrics = evaluate_loss(
        model,
        splits.test.to(model.device),
        Objective.from_config(run.config.train),
        seed=run.config.train.seed + 2,
        clip=_data_range(splits),
    )
    if figures:
        write_run_figures(run, model, splits)


def finish_run(run: Run, *, figures: bool = True) -> Run:
    """Complete a run whose training is done but whose final outputs are missing (killed during
    its test evaluation or its pictures): no training, the same outputs train_run ends with."""
    with FolderLock(run.path):
        device = str(resolve_device(run.config.train.device))
        _finish(run, run.load_model("best", device=device), run.data(), figures=figures)
    return run


def _open_for_training(config, splits, out: Path, *, resume, overwrite, info, ctx) -> Run:
    """The run folder, created (new run, rank 0 writes) or opened (resume)."""
    if resume:
        run = Run.open(out)
        run.config = config
        distributed.on_main_only(run.write_config, ctx)  # the resumable options may have changed
        return run
    run = Run(out, config, info if info is not None else data_info(splits))

    def create() -> None:
        created = Run.create(out, config, run.info, overwrite=overwrite)
        if splits.table is not None:
            created.save_table(splits.table)  # every later command reads and writes the same columns

    distributed.on_main_only(create, ctx)
    return run


def _data_range(splits: DataSplits) -> tuple[float, float] | None:
    """Where corrupted inputs are clipped: images live in [0, 1]; vectors are unbounded."""
    return (0.0, 1.0) if splits.is_image else None


def _train(run: Run, config: RunConfig, splits: DataSplits, device, *, resume, progress, callbacks, ctx) -> VAE:
    """Fit a new model (or the checkpoint's) and return the best one."""
    torch.manual_seed(config.train.seed)
    model = build_model(config.model).to(device)
    state = None
    if resume:
        state = run.load_checkpoint()
        if ctx.is_main:
            run.truncate_metrics(state.epoch)
    every = [RunWriter(run), *([Progress()] if progress else []), *callbacks]
    if config.train.log == "tensorboard":
        every.append(TensorBoard(run.tensorboard_dir))
    fit(
        model,
        Objective.from_config(config.train),
        splits,
        config.train,
        callbacks=every,
        resume=state,
        clip=_data_range(splits),
    )
    return run.load_model("best", device=str(device))


def train(
    data: str | None = None,
    *,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    model: str | None = None,
    conditional: bool | None = None,
    overwrite: bool = False,
    progress: bool = True,
    figures: bool = True,
    describe: Callable[[list[str]], None] | None = None,
    **options: Any,
) -> Run:
    """Train a VAE (model="vae") or AE (model="ae") on `data` and write its run folder; return
    the Run (run.model: the best validation weights). Options are the fields of ModelConfig,
    TrainConfig and DataConfig by name (latent_dim=16, epochs=30, beta=1.0, image_size=64, ...).
    resume=<run folder> continues that run up to `epochs` in total (or its time limit).
    describe: called before training with one line per column of a table (what each became)."""
    options = {k: v for k, v in options.items() if v is not None}
    if resume is not None:
        run = Run.open(resume)
        config = resumed_config(
            run.config, data=data, kind=model, conditional=conditional, options=options, where=str(resume)
        )
        if not _more_to_do(run, config):
            return finish_run(run, figures=figures)
        return train_run(config, run.data(), resume, resume=True, progress=progress, figures=figures)
    sections = split_options(options)
    if sections["model"].get("likelihood") not in (None, "auto", "tabular"):
        sections["data"].setdefault("matrix", "raw")  # a likelihood of plain vectors reads a matrix as vectors
    data_cfg = DataConfig(source=data or DataConfig.source, **sections["data"])
    splits = load_data(data_cfg)
    if describe is not None and splits.table is not None:
        describe(splits.table.describe())
    config = new_config(data_cfg, splits, kind=model or "vae", conditional=bool(conditional), options=sections)
    out = Path(out) if out is not None else Path("runs") / f"{splits.name}-{config.model.kind}"
    return train_run(config, splits, out, overwrite=overwrite, progress=progress, figures=figures)


def _more_to_do(run: Run, config: RunConfig) -> bool:
    """Whether resuming trains more epochs (True), or only finishes missing outputs (False);
    VaekitError when there is nothing to do at all."""
    if not run.has_checkpoint():
        raise VaekitError(f"{run.path} has no checkpoint to resume from (no epoch finished)")
    state = run.load_checkpoint().loop
    done, seconds, limit = state["epoch"], state.get("seconds", 0.0), config.train.time_limit
    if config.train.max_epochs is not None and config.train.max_epochs <= done:
        why = f"{run.path} has already trained {done} epochs; pass --epochs N with N > {done} to train more"
    elif limit is not None and done > 0 and limit - seconds < seconds / done:  # not one more epoch fits
        why = f"{run.path} has used its --time-limit of {limit:g} s; pass a larger one to train more"
    else:
        return True
    if run.outputs_complete():
        raise VaekitError(why)
    return False
