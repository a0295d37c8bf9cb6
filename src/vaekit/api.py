"""The Python API that the CLI mirrors: train a run folder, load it back.

    import vaekit
    model = vaekit.train("digits", out="runs/digits", epochs=20)
    model = vaekit.load("runs/digits")
    images = model.sample(16)
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import checkpoint as ckpt
from . import distributed
from . import plots
from .corruption import Corruption
from .objectives import KLControl
from .config import DataConfig, ModelConfig, RunConfig, TrainConfig
from .data import DataSplits, load_data
from .errors import DataError, RunFolderError, VaekitError
from .likelihoods import LIKELIHOODS
from .model import VAE
from .nets import auto_channels
from .sampling import encode_dataset, reconstruct, sample
from .trainer import evaluate_loss, fit, resolve_device

# Options that may change when a run is resumed; everything else must match the run's config.
RESUMABLE_OPTIONS = {"epochs", "patience", "device", "precision", "compile", "time_limit"}
_SECTIONS = {"model": ModelConfig, "train": TrainConfig, "data": DataConfig}


def option_names() -> dict[str, str]:
    """option name -> config section, for every option train() accepts."""
    names = {f.name: sec for sec, kind in _SECTIONS.items() for f in dataclasses.fields(kind)}
    names.pop("data_shape")
    names.pop("num_classes")
    names.pop("source")
    names.pop("kind")
    return names


def _split_options(options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    valid = option_names()
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise VaekitError(f"unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}")
    out: dict[str, dict[str, Any]] = {sec: {} for sec in _SECTIONS}
    for k, v in options.items():
        out[valid[k]][k] = v
    return out


MLP_MAX_VALUES = 1024  # small images (up to 32x32 grey) with a Bernoulli likelihood get the MLP by default


def default_arch(data: DataSplits, likelihood: str) -> str:
    """mlp for vectors; conv for images, except small ones (at most MLP_MAX_VALUES values: MNIST,
    Fashion-MNIST, digits) under the Bernoulli likelihood, where the MLP (512-256) reached a
    better -ELBO per epoch than the conv net (32/64) and costs a third to a fifth of its time per
    epoch on a CPU (BENCHMARKS.md). Under the discretized likelihoods the conv net reached the
    better NLL on the same images (docs/evaluation.md), and larger images need its locality (an
    MLP's first layer grows with the pixels), so those keep it."""
    if not data.is_image:
        return "mlp"
    small = math.prod(data.shape) <= MLP_MAX_VALUES
    return "mlp" if small and likelihood == "bernoulli" else "conv"


def _model_config(data: DataSplits, kind: str, conditional: bool, given: dict[str, Any]) -> ModelConfig:
    given = dict(given)
    lo, hi = data.value_range()
    in_unit = lo >= 0.0 and hi <= 1.0
    if given.get("likelihood") in (None, "auto"):
        given["likelihood"] = "bernoulli" if in_unit else "gaussian"
        if not in_unit and "learn_sigma" not in given:
            given["learn_sigma"] = "global"
    if given["likelihood"] == "bernoulli" and not in_unit:
        raise DataError(
            f"{data.name} has values in [{lo:.3g}, {hi:.3g}], outside [0, 1], so they cannot be Bernoulli "
            "probabilities; use --likelihood gaussian or rescale the data to [0, 1]"
        )
    if given.get("arch") in (None, "auto"):
        given["arch"] = default_arch(data, given["likelihood"])
    support = getattr(LIKELIHOODS.get(given["likelihood"]), "support", None)
    if support is not None and (lo < support[0] or hi > support[1]):
        raise DataError(
            f"{data.name} has values in [{lo:.3g}, {hi:.3g}], outside [{support[0]:g}, {support[1]:g}] where "
            f"the {given['likelihood']} likelihood lives; use --likelihood gaussian or rescale the data"
        )
    if conditional and not data.has_labels:
        raise DataError(f"--conditional needs labels, and {data.name} has none")
    if given["arch"] == "conv" and given.get("channels") is None and len(data.shape) == 3:
        given["channels"] = auto_channels(data.shape[1], data.shape[2])
    if kind not in ("vae", "ae"):
        raise VaekitError(f"unknown model {kind!r}; choose vae or ae")
    return ModelConfig(kind=kind, data_shape=data.shape, num_classes=data.num_classes if conditional else 0, **given)


def _check_train_config(cfg: TrainConfig, model_cfg: ModelConfig) -> None:
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise VaekitError("--epochs and --batch-size must be at least 1")
    if not cfg.lr > 0:
        raise VaekitError("--lr must be positive")
    if cfg.beta < 0:
        raise VaekitError("--beta must be zero or positive")
    if cfg.binarize not in ("none", "dynamic"):
        raise VaekitError(f"unknown --binarize {cfg.binarize!r}; choose none or dynamic")
    if cfg.binarize == "dynamic" and model_cfg.likelihood != "bernoulli":
        raise VaekitError("--binarize dynamic needs the Bernoulli likelihood")
    KLControl.from_config(cfg, total_steps=1)  # validates the KL options
    if cfg.denoise:
        Corruption.parse(cfg.denoise)
    if cfg.precision not in ("auto", "fp32", "bf16", "fp16"):
        raise VaekitError(f"unknown --precision {cfg.precision!r}; choose auto, fp32, bf16 or fp16")


def _data_info(data: DataSplits) -> dict[str, Any]:
    from . import __version__

    return {
        "data_name": data.name, "is_image": data.is_image, "class_names": data.class_names,
        "n_train": len(data.train), "n_val": len(data.val), "n_test": len(data.test),
        "official_test": data.official_test, "vaekit_version": __version__,
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
    }  # fmt: skip


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise VaekitError(f"--out {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / ckpt.CONFIG_FILE).exists():
            raise VaekitError(f"--out {out} is a non-empty folder that is not a run; choose another")
        if not overwrite:
            raise VaekitError(
                f"{out} already holds a run; pass --resume {out} to continue it, or --overwrite to start again"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _resume_config(run_dir: Path, data: str | None, kind: str | None, conditional: bool | None,
                   options: dict[str, Any]) -> RunConfig:  # fmt: skip
    config, _ = ckpt.read_config(run_dir)
    if not (run_dir / ckpt.CHECKPOINT_FILE).exists():
        raise RunFolderError(f"{run_dir} has no checkpoint to resume from (no epoch finished)")
    sections = _split_options(options)
    saved = dataclasses.asdict(config)
    changed = []
    if data is not None and data != config.data.source:
        changed.append(f"data ({config.data.source} -> {data})")
    if kind is not None and kind != config.model.kind:
        changed.append(f"model ({config.model.kind} -> {kind})")
    if conditional is not None and conditional != (config.model.num_classes > 0):
        changed.append("conditional")
    for sec, values in sections.items():
        for k, v in values.items():
            if k in RESUMABLE_OPTIONS:
                setattr(getattr(config, sec), k, v)
            elif v is not None and v != "auto" and saved[sec][k] != v:
                changed.append(f"{k} ({saved[sec][k]} -> {v})")
    if changed:
        raise VaekitError(
            f"--resume {run_dir} cannot change how the run was built: {', '.join(changed)}; "
            "start a new run instead"
        )
    return config


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
    **options: Any,
) -> VAE:
    """Train a VAE (model="vae") or AE (model="ae") and write its run folder; return the
    model with the best validation weights. Options are the fields of ModelConfig,
    TrainConfig and DataConfig (latent_dim=16, epochs=30, beta=1.0, image_size=64, ...).
    resume=<run folder> continues that run up to `epochs` in total."""
    options = {k: v for k, v in options.items() if v is not None}
    if resume is not None:
        run_dir = Path(resume)
        config = _resume_config(run_dir, data, model, conditional, options)
        last = ckpt.load_checkpoint(run_dir / ckpt.CHECKPOINT_FILE)[3]["epoch"]
        if config.train.epochs <= last:
            raise VaekitError(
                f"{run_dir} has already trained {last} epochs; pass --epochs N with N > {last} to train more"
            )
        splits = load_data(config.data)
    else:
        sections = _split_options(options)
        data_cfg = DataConfig(source=data or DataConfig.source, **sections["data"])
        splits = load_data(data_cfg)
        model_cfg = _model_config(splits, model or "vae", bool(conditional), sections["model"])
        config = RunConfig(model=model_cfg, train=TrainConfig(**sections["train"]), data=data_cfg)
        run_dir = Path(out) if out is not None else Path("runs") / f"{splits.name}-{model_cfg.kind}"
    _check_train_config(config.train, config.model)
    started_group = not distributed.context().enabled
    ctx = distributed.init_from_env(config.train.device)  # under torchrun: join the process group
    device = resolve_device(config.train.device)

    def write_run_folder() -> None:
        if resume is None:
            _prepare_out(run_dir, overwrite)
            ckpt.write_config(run_dir, config, _data_info(splits))
        else:
            ckpt.write_config(run_dir, config, ckpt.read_config(run_dir)[1])

    distributed.on_main_only(write_run_folder, ctx)  # only rank 0 writes the run folder

    torch.manual_seed(config.train.seed)
    vae = VAE.from_config(config.model).to(device)
    clip = (0.0, 1.0) if splits.is_image else None
    fit(vae, splits, config.train, run_dir=run_dir, resume=resume is not None, progress=progress, clip_range=clip)
    vae = load(run_dir, device=str(device))
    # the honest number: the best model's objective on data it never saw (nats per example);
    # under torchrun every rank evaluates its shard and the sums are all-reduced
    vae.test_metrics = evaluate_loss(vae, splits.test.to(device), config.train, seed=config.train.seed + 2)
    if figures and ctx.is_main:
        write_run_figures(vae, splits, run_dir)
    if started_group and ctx.enabled:
        distributed.barrier(ctx)
        distributed.shutdown()
    return vae


def load(run_dir: str | Path, *, which: str = "best", device: str = "cpu") -> VAE:
    """A trained model from a run folder, in eval mode. which="best" (validation) or "last"."""
    run_dir = Path(run_dir)
    config, info = ckpt.read_config(run_dir)
    if which == "best":
        state, _ = ckpt.load_weights(run_dir / ckpt.MODEL_FILE)
    elif which == "last":
        state = ckpt.load_checkpoint(run_dir / ckpt.CHECKPOINT_FILE)[0]
    else:
        raise VaekitError(f"which must be best or last, not {which!r}")
    try:
        model = VAE.from_config(config.model)
        model.load_state_dict(state)
    except (RuntimeError, VaekitError, TypeError, ValueError) as e:
        raise RunFolderError(f"the weights in {run_dir} do not match its config: {str(e).splitlines()[0]}") from None
    model.to(resolve_device(device)).eval()
    model.run_dir, model.run_config, model.run_info = run_dir, config, info
    return model


def load_run_data(model: VAE) -> DataSplits:
    """The data a loaded model was trained on, split exactly as in training."""
    return load_data(model.run_config.data)


def write_run_figures(model: VAE, data: DataSplits, run_dir: Path, *, n: int = 16, seed: int = 0) -> dict[str, Path]:
    """The PNGs every run ends with: reconstructions, samples, loss curves, latent scatter."""
    run_dir = Path(run_dir)
    paths = {}
    test = data.test
    x, y = test.x[:n], None if test.y is None else test.y[:n]
    y_cond = y if model.config.num_classes else None
    rec = reconstruct(model, x, y_cond)
    half = max(1, (len(x) + 1) // 2)
    blocks = [x[:half], rec[:half], x[half:], rec[half:]]
    paths["reconstructions"] = plots.save_grid(
        run_dir / "reconstructions.png", torch.cat([b for b in blocks if len(b)]), nrow=half
    )
    ys = None
    if model.config.num_classes:
        ys = torch.arange(64) % model.config.num_classes
    paths["samples"] = plots.save_grid(run_dir / "samples.png", sample(model, 64, seed=seed, y=ys), nrow=8)
    rows = ckpt.read_metrics(run_dir)
    if rows:
        paths["loss_curves"] = plots.loss_curves(rows, run_dir / "loss_curves.png")
    enc = encode_dataset(model, test)
    labels = None if "y" not in enc else enc["y"].numpy()
    paths["latent_scatter"] = plots.latent_scatter(
        enc["mu"].numpy(), run_dir / "latent_scatter.png", labels=labels, class_names=data.class_names,
        title=f"{model.config.kind.upper()} latent space, test split (posterior means)",
    )  # fmt: skip
    return paths
