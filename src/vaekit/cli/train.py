from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .. import api
from ..config import DataConfig, ModelConfig, TrainConfig
from . import app
from .options import int_list

M, T, D = ModelConfig(), TrainConfig(), DataConfig()
MODEL, TRAINING, DATA, RUN = "Model", "Training", "Data", "Run folder"


@app.command(no_args_is_help=False)
def train(
    data: Optional[str] = typer.Option(None, help=f"Built-in dataset (digits, fashion-mnist), image folder, IDX folder, or .npy/.npz file. (default: {D.source})", rich_help_panel=DATA, show_default=False),
    image_size: Optional[int] = typer.Option(None, help="Resize and centre-crop folder images to N x N. (default: keep sizes; they must agree)", rich_help_panel=DATA),
    color: Optional[str] = typer.Option(None, help="Convert folder images to gray or rgb. (default: as found; must agree)", rich_help_panel=DATA),
    val_fraction: Optional[float] = typer.Option(None, help=f"Fraction of the training split held out for validation. (default: {D.val_fraction})", rich_help_panel=DATA, show_default=False),
    test_fraction: Optional[float] = typer.Option(None, help=f"Test fraction for data with no official test split. (default: {D.test_fraction})", rich_help_panel=DATA, show_default=False),
    split_seed: Optional[int] = typer.Option(None, help=f"Seed of the train/validation/test split. (default: {D.split_seed})", rich_help_panel=DATA, show_default=False),
    model: Optional[str] = typer.Option(None, help="vae, or ae for the deterministic autoencoder baseline. (default: vae)", rich_help_panel=MODEL, show_default=False),
    arch: Optional[str] = typer.Option(None, help="mlp or conv. (default: mlp for vectors, and for small images of up to 1024 values such as 28x28 grey under the Bernoulli likelihood; conv for other images)", rich_help_panel=MODEL, show_default=False),
    latent_dim: Optional[int] = typer.Option(None, help=f"Size of the latent code z. (default: {M.latent_dim})", rich_help_panel=MODEL, show_default=False),
    hidden: Optional[str] = typer.Option(None, help="MLP hidden widths, comma-separated. (default: 512,256)", rich_help_panel=MODEL, show_default=False),
    channels: Optional[str] = typer.Option(None, help="Conv channels per stride-2 stage, comma-separated. (default: sized from the images, e.g. 32,64 for 28x28)", rich_help_panel=MODEL, show_default=False),
    likelihood: Optional[str] = typer.Option(None, help="p(x|z): bernoulli, gaussian, discretized-logistic or discretized-gaussian (8-bit data: gives NLL in bits/dim). (default: bernoulli for data in [0, 1), else gaussian]", rich_help_panel=MODEL, show_default=False),
    sigma: Optional[float] = typer.Option(None, help=f"Gaussian likelihood: fixed sigma, or initial sigma when learned. (default: {M.sigma})", rich_help_panel=MODEL, show_default=False),
    learn_sigma: Optional[str] = typer.Option(None, help="Gaussian likelihood: none (fixed), global or channel. (default: none; global for data outside [0, 1)]", rich_help_panel=MODEL, show_default=False),
    conditional: Optional[bool] = typer.Option(None, "--conditional/--unconditional", help="Condition encoder and decoder on the labels (CVAE). (default: unconditional)", rich_help_panel=MODEL, show_default=False),
    epochs: Optional[int] = typer.Option(None, help=f"Epochs in total (with --resume: the new total). (default: {T.epochs})", rich_help_panel=TRAINING, show_default=False),
    batch_size: Optional[int] = typer.Option(None, help=f"Examples per step. (default: {T.batch_size})", rich_help_panel=TRAINING, show_default=False),
    lr: Optional[float] = typer.Option(None, help=f"Adam learning rate. (default: {T.lr})", rich_help_panel=TRAINING, show_default=False),
    beta: Optional[float] = typer.Option(None, help=f"Weight of the KL term: loss = recon + beta * KL. (default: {T.beta})", rich_help_panel=TRAINING, show_default=False),
    grad_clip: Optional[float] = typer.Option(None, help="Clip the global gradient norm to this. (default: no clipping)", rich_help_panel=TRAINING, show_default=False),
    seed: Optional[int] = typer.Option(None, help=f"Seed for every random number of the run. (default: {T.seed})", rich_help_panel=TRAINING, show_default=False),
    patience: Optional[int] = typer.Option(None, help="Stop after this many epochs without validation improvement. (default: never)", rich_help_panel=TRAINING, show_default=False),
    binarize: Optional[str] = typer.Option(None, help="none, or dynamic: resample binary pixels x ~ Bernoulli(x) each batch. (default: none)", rich_help_panel=TRAINING, show_default=False),
    kl_warmup: Optional[int] = typer.Option(None, help="Raise the KL weight linearly from 0 to beta over N steps. (default: off)", rich_help_panel=TRAINING, show_default=False),
    kl_cycles: Optional[int] = typer.Option(None, help="Cyclical KL annealing with M cycles over the run (Fu et al. 2019). (default: off)", rich_help_panel=TRAINING, show_default=False),
    free_bits: Optional[float] = typer.Option(None, help="Each latent dimension's KL counts as at least L nats (Kingma et al. 2016). (default: off)", rich_help_panel=TRAINING, show_default=False),
    capacity: Optional[str] = typer.Option(None, help="C:N, loss = recon + beta * |KL - C_t| with C_t rising to C nats over N steps (Burgess et al. 2018). (default: off)", rich_help_panel=TRAINING, show_default=False),
    denoise: Optional[str] = typer.Option(None, help="Train as a denoiser: gaussian:SIGMA, saltpepper:P or mask:P corrupt the input; the target stays clean. (default: off)", rich_help_panel=TRAINING, show_default=False),
    exclude_label: Optional[str] = typer.Option(None, help="Drop these classes (comma-separated) from training and validation; the test split keeps them. (default: none)", rich_help_panel=DATA, show_default=False),
    device: Optional[str] = typer.Option(None, help="auto, cpu, cuda or mps. (default: auto)", rich_help_panel=TRAINING, show_default=False),
    precision: Optional[str] = typer.Option(None, help="auto (bf16 where the device computes it natively: AMX/AVX512-BF16 CPUs, Ampere+ GPUs; else fp32), fp32, bf16 or fp16 (autocast; fp16 adds a gradient scaler). (default: fp32)", rich_help_panel=TRAINING, show_default=False),
    lr_schedule: Optional[str] = typer.Option(None, help=f"Learning rate over the run: cosine (falls to 0 by the last epoch; about 1 nat better -ELBO on Fashion-MNIST at 30 epochs, but raising --epochs on --resume restarts the fall), constant, plateau (halved after 3 epochs without a better validation loss), or auto: cosine with --time-limit, constant otherwise. (default: {T.lr_schedule})", rich_help_panel=TRAINING, show_default=False),
    time_limit: Optional[float] = typer.Option(None, help="Seconds the run may take (training and validation): it stops after the last epoch that fits, and the cosine schedule ends there. (default: none)", rich_help_panel=TRAINING, show_default=False),
    compile: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the training step (compiles for a while first). (default: off)", rich_help_panel=TRAINING, show_default=False),
    out: Optional[Path] = typer.Option(None, help="Run folder to write. (default: runs/<data>-<model>)", rich_help_panel=RUN, show_default=False),
    resume: Optional[Path] = typer.Option(None, help="Continue this run folder exactly where it stopped, up to --epochs in total.", rich_help_panel=RUN, show_default=False),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run already in --out.", rich_help_panel=RUN),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or per-epoch lines.", rich_help_panel=RUN),
) -> None:
    """Train a VAE (or AE) and write its run folder: config, weights, metrics and pictures."""  # fmt: skip
    options = dict(
        image_size=image_size, color=color, val_fraction=val_fraction, test_fraction=test_fraction,
        split_seed=split_seed, arch=arch, latent_dim=latent_dim, hidden=int_list(hidden, "--hidden"),
        channels=int_list(channels, "--channels"), likelihood=likelihood, sigma=sigma, learn_sigma=learn_sigma,
        epochs=epochs, batch_size=batch_size, lr=lr, beta=beta, grad_clip=grad_clip, seed=seed,
        patience=patience, binarize=binarize, device=device, kl_warmup=kl_warmup, kl_cycles=kl_cycles,
        free_bits=free_bits, capacity=capacity, denoise=denoise, precision=precision, compile=compile,
        lr_schedule=lr_schedule, time_limit=time_limit, exclude_labels=int_list(exclude_label, "--exclude-label"),
    )  # fmt: skip
    vae = api.train(
        data, out=out, resume=resume, model=model, conditional=conditional, overwrite=overwrite,
        progress=not quiet, **options,
    )  # fmt: skip
    _summary(vae)


def _summary(vae) -> None:
    from ..checkpoint import read_metrics
    from ..distributed import is_main_process

    if not is_main_process():  # under torchrun, rank 0 speaks for all
        return

    rows = read_metrics(vae.run_dir)
    best = min(rows, key=lambda r: r["val_loss"])
    total_s = sum(r["seconds"] for r in rows)
    typer.echo(
        f"trained {rows[-1]['epoch']} epochs in {total_s:.0f}s; best validation loss {best['val_loss']:.2f} "
        f"nats/example (recon {best['val_recon']:.2f}, KL {best['val_kl']:.2f}) at epoch {best['epoch']}"
    )
    t = vae.test_metrics
    typer.echo(f"test split: loss {t['loss']:.2f}, -ELBO {t['nelbo']:.2f} nats/example (recon {t['recon']:.2f}, KL {t['kl']:.2f})")
    typer.echo(f"run folder: {vae.run_dir}  (config.json, model.safetensors, metrics.jsonl, *.png)")
