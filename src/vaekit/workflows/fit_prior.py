"""Fit a prior on the aggregate posterior of a trained run (see vaekit.core.priors for why,
vaekit.runs.priors for how it is stored).

    from vaekit.workflows.fit_prior import fit_prior
    info = fit_prior("runs/fmnist", kind="gmm", components=10)
    run = vaekit.load_run("runs/fmnist")
    x = run.model.sample(64)                             # N(0, I)
    x = run.model.sample(64, prior=run.prior())          # the fitted mixture (the run's default)

Kinds: gmm (a Gaussian mixture, EM), vae (a second-stage VAE, Dai & Wipf 2019) and diffusion
(a latent diffusion model: flow matching on the codes, sampled by a deterministic ODE in --steps
Heun steps; its fit checkpoints every epoch and an interrupted fit resumes where it stopped).

The codes come from the training split: posterior means (fit_on="mean"; the only choice for
an AE, whose codes are points) or one draw z ~ q(z|x) per example (fit_on="sample", the
aggregate posterior itself). Each fit also scores the validation split's codes under the
fitted prior and under N(0, I), so the gain is a number and not only a picture.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.mixture import GaussianMixture
from torch import Tensor
from tqdm import trange

from ..config import DataConfig, RunConfig, TrainConfig
from ..core import flow, priors
from ..core.model import VAE
from ..core.objectives import Objective
from ..core.sampling import encode_dataset
from ..data import Dataset, DataSplits
from ..errors import VaekitError
from ..runs import Run, load_run, train_run
from ..runs.priors import PriorStore
from ..runs.setup import data_info, model_config
from ..training.devices import resolve_device
from ..training.state import TrainingState
from ..training.validation import evaluate_loss

COVARIANCE_TYPES = ("full", "diag", "tied", "spherical")
FIT_ON = ("mean", "sample")
STAGE2_SCALE_MIN = 1e-3  # a code dimension that never varies is not blown up by standardizing
FITTED = ("gmm", "vae", "diffusion")
EPOCHS = {"vae": 30, "diffusion": 50}  # defaults per kind
HIDDEN = {"vae": [256, 256], "diffusion": [256, 256, 256]}
DIFFUSION_STEPS = 25  # Heun steps of the sampler (50 network evaluations per sample)
# Adam, the rate falling to 0 along a cosine; on Fashion-MNIST's codes (16-d) batch 1024 at 2e-3
# reached the FD of batch 256 at 1e-3 in 60% of the time
DIFFUSION_BATCH, DIFFUSION_LR = 1024, 2e-3
LOG_DENSITY_CODES = 500  # validation codes whose log-density the ODE estimates (D gradients per step)


def aggregate_codes(model: VAE, dataset, *, fit_on: str = "mean", seed: int = 0) -> Tensor:
    """Codes of every example of a Dataset, (N, D): posterior means, or one z ~ q(z|x) each."""
    if fit_on not in FIT_ON:
        raise VaekitError(f"unknown --fit-on {fit_on!r}; choose mean or sample")
    enc = encode_dataset(model, dataset)
    mu = enc["mu"].double()
    if fit_on == "mean" or not model.stochastic:
        return mu
    gen = torch.Generator().manual_seed(seed)
    return mu + torch.exp(0.5 * enc["logvar"].double()) * torch.randn(mu.shape, generator=gen, dtype=mu.dtype)


def _full_covariances(gm, dim: int) -> np.ndarray:
    """scikit-learn's covariances_ in any covariance_type -> (K, D, D)."""
    cov, k = gm.covariances_, gm.n_components
    if gm.covariance_type == "full":
        return cov
    if gm.covariance_type == "tied":
        return np.broadcast_to(cov, (k, dim, dim)).copy()
    if gm.covariance_type == "diag":
        return np.stack([np.diag(c) for c in cov])
    return np.stack([np.eye(dim) * c for c in cov])  # spherical


def fit_gmm(
    codes: Tensor, *, components: int = 10, covariance: str = "full", seed: int = 0
) -> priors.GaussianMixturePrior:
    """A Gaussian mixture fitted by EM (scikit-learn) on codes (N, D)."""
    if covariance not in COVARIANCE_TYPES:
        raise VaekitError(f"unknown --covariance {covariance!r}; choose one of {', '.join(COVARIANCE_TYPES)}")
    if components < 1:
        raise VaekitError("--components must be at least 1")
    if components > len(codes):
        raise VaekitError(f"--components {components} is more than the {len(codes)} codes to fit")
    x = codes.double().numpy()
    # reg_covar keeps a component on a collapsed (never-varying) code dimension invertible
    gm = GaussianMixture(components, covariance_type=covariance, random_state=seed, reg_covar=1e-6, max_iter=500)
    gm.fit(x)
    chol = np.linalg.cholesky(_full_covariances(gm, x.shape[1]))
    return priors.GaussianMixturePrior(
        torch.from_numpy(gm.weights_.copy()).double(),
        torch.from_numpy(gm.means_.copy()).double(),
        torch.from_numpy(chol).double(),
    )


def fit_prior(
    run_dir: str | Path,
    *,
    kind: str = "gmm",
    fit_on: str = "mean",
    components: int = 10,
    covariance: str = "full",
    epochs: int | None = None,
    hidden: list[int] | None = None,
    steps: int = DIFFUSION_STEPS,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Fit a prior of `kind` ("gmm", "vae" or "diffusion") on the codes of the run's training
    split, store it in the run folder as the run's default sampling prior, and return its
    description (also written to priors/<kind>.json), including the validation codes' mean
    log-density under it and under N(0, I) in nats per example. GMM: components, covariance.
    Second-stage VAE: epochs (default 30) and hidden widths of its MLP (Dai & Wipf use a small
    MLP of the same latent size; default 256,256). Diffusion: epochs (default 50), hidden (one
    width per residual block, default 256,256,256) and the sampler's Heun steps."""
    if kind not in FITTED:
        raise VaekitError(f"unknown prior kind {kind!r}; choose gmm, vae or diffusion")
    t0 = time.perf_counter()
    run = load_run(run_dir, device=device)
    model, data = run.model, run.data()
    codes = aggregate_codes(model, data.train, fit_on=fit_on, seed=seed)  # (N, D)
    val_codes = aggregate_codes(model, data.val, fit_on=fit_on, seed=seed + 1)  # (N_val, D)
    standard = priors.StandardNormal(model.latent_dim)
    meta: dict[str, Any] = {"fit_on": fit_on, "n_codes": len(codes), "latent_dim": model.latent_dim, "seed": seed}
    epochs = EPOCHS.get(kind) if epochs is None else epochs
    hidden = hidden or HIDDEN.get(kind)
    if kind == "gmm":
        prior = fit_gmm(codes, components=components, covariance=covariance, seed=seed)
        tensors = prior.tensors()
        meta.update(components=components, covariance=covariance)
        val_logp = float(prior.log_prob(val_codes).mean())
    elif kind == "vae":
        tensors, stage2_meta, val_logp = _fit_second_stage(
            run, codes, val_codes, epochs=epochs, hidden=hidden, seed=seed, device=device, progress=progress
        )
        meta.update(stage2_meta)
    else:
        val_codes = val_codes[:LOG_DENSITY_CODES]  # the ODE's log-density takes D gradients per step
        settings = {**meta, **diffusion_settings(epochs=epochs, hidden=hidden, seed=seed)}
        prior = fit_diffusion(codes, settings, run.priors, steps=steps, device=device, progress=progress)
        tensors = prior.tensors()
        how = f"probability-flow ODE, {steps} Heun steps, on the first {len(val_codes)} validation codes"
        meta.update(settings, steps=steps, val_log_density_is=how)
        val_logp = float(prior.log_prob(val_codes).mean())
    meta.update(
        val_log_density=val_logp,
        val_log_density_standard=float(standard.log_prob(val_codes).mean()),
        seconds=time.perf_counter() - t0,
    )
    run.priors.write(kind, tensors, meta)
    if kind == "diffusion":
        run.priors.clear_progress(kind)
    return {"kind": kind, **meta}


def diffusion_settings(
    *, epochs: int, hidden: list[int], seed: int, batch_size: int = DIFFUSION_BATCH, lr: float = DIFFUSION_LR
) -> dict[str, Any]:
    """How a diffusion prior is fitted (what a resumed fit must agree with), checked."""
    if epochs < 1:
        raise VaekitError("--epochs must be at least 1")
    if not hidden or len(set(hidden)) != 1 or hidden[0] < 1:
        raise VaekitError(
            "--hidden for a diffusion prior gives one width per residual block, all equal (e.g. 256,256,256)"
        )
    return {
        "epochs": epochs,
        "hidden": hidden[0],
        "depth": len(hidden),
        "batch_size": DIFFUSION_BATCH,
        "lr": DIFFUSION_LR,
        "seed": seed,
    }


def fit_diffusion(
    codes: Tensor,
    settings: dict[str, Any],
    store: PriorStore | None,
    *,
    steps: int,
    device: str = "cpu",
    progress: bool = False,
) -> priors.FlowPrior:
    """Flow matching (vaekit.core.flow) on standardized codes (N, D) for settings["epochs"]
    epochs of Adam with a cosine rate; after every epoch the fit's state goes to `store` (when
    given) and a fit with the same settings on the same weights resumes from it, to the same
    weights as an uninterrupted fit."""
    if not 1 <= steps <= 1000:
        raise VaekitError(f"--steps must be between 1 and 1000, not {steps}")
    dev = resolve_device(device)
    shift, scale = codes.mean(0).float(), codes.std(0).clamp_min(STAGE2_SCALE_MIN).float()
    x = ((codes.float() - shift) / scale).to(dev)  # (N, D)
    torch.manual_seed(settings["seed"])
    net = flow.VelocityField(x.shape[1], hidden=settings["hidden"], depth=settings["depth"]).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=settings["lr"])
    gen = torch.Generator(device=dev).manual_seed(settings["seed"])
    digest = store.digest() if store is not None else None
    start = _resume_diffusion(store, settings, digest, net, opt, gen)
    batch, epochs = settings["batch_size"], settings["epochs"]
    per_epoch = math.ceil(len(x) / batch)
    for epoch in trange(start, epochs, desc="diffusion prior", unit="epoch", disable=not progress, leave=False):
        perm = torch.randperm(len(x), generator=gen, device=dev)
        total = torch.zeros((), device=dev)
        for i in range(per_epoch):
            idx = perm[i * batch : (i + 1) * batch]
            x0 = torch.randn(len(idx), x.shape[1], generator=gen, device=dev)
            t = torch.rand(len(idx), generator=gen, device=dev)
            for group in opt.param_groups:  # cosine from lr to 0 over the fit
                group["lr"] = (
                    settings["lr"] * 0.5 * (1 + math.cos(math.pi * (epoch * per_epoch + i) / (epochs * per_epoch)))
                )
            loss = flow.flow_matching_loss(net, x[idx], x0, t)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        if not math.isfinite(float(total)):
            raise VaekitError(f"fitting the diffusion prior diverged in epoch {epoch + 1} (a non-finite loss)")
        if store is not None:
            rng = {"data": gen.get_state(), "torch": torch.get_rng_state()}
            loop = {"epoch": epoch + 1, "settings": settings, "weights_sha256": digest}
            store.save_progress("diffusion", TrainingState(net.state_dict(), opt.state_dict(), rng, loop))
    return priors.FlowPrior(net.eval(), shift, scale, steps=steps)


def _resume_diffusion(store, settings, digest, net, opt, gen) -> int:
    """The epoch an interrupted fit with these settings on these weights stopped after (its
    state restored into net, opt and gen), else 0."""
    state = None if store is None else store.progress("diffusion")
    if state is None or state.loop.get("settings") != settings or state.loop.get("weights_sha256") != digest:
        return 0
    net.load_state_dict(state.model)
    opt.load_state_dict(state.optimizer)
    gen.set_state(state.rng["data"])
    return min(state.epoch, settings["epochs"])


def _fit_second_stage(
    run: Run,
    codes: Tensor,
    val_codes: Tensor,
    *,
    epochs: int,
    hidden: list[int],
    seed: int,
    device: str,
    progress: bool,
) -> tuple[dict[str, Tensor], dict[str, Any], float]:
    """Train the second-stage VAE as an ordinary vaekit run (MLP, Gaussian likelihood with a
    learned sigma, as Dai & Wipf prescribe; one sigma per code dimension, since collapsed and
    active dimensions differ) on standardized codes, handed over in memory; the run's validation
    codes are its validation and test split. Returns its tensors, description and the validation
    codes' mean log-density bound (-ELBO in z space)."""
    shift = codes.mean(0)
    scale = codes.std(0).clamp_min(STAGE2_SCALE_MIN)
    standardize = lambda c: Dataset(((c - shift) / scale).float())  # noqa: E731
    val = standardize(val_codes)
    splits = DataSplits(standardize(codes), val, val, name=f"codes of {run.path}", is_image=False)
    train_cfg = TrainConfig(epochs=epochs, seed=seed, device=device, batch_size=256)
    config = RunConfig(
        model=model_config(
            splits,
            "vae",
            False,
            {
                "arch": "mlp",
                "hidden": hidden,
                "latent_dim": codes.shape[1],
                "likelihood": "gaussian",
                "learn_sigma": "channel",
                "sigma": 1.0,
            },
        ),
        train=train_cfg,
        data=DataConfig(source=f"codes of {run.path} (in memory)"),
    )
    stage2 = train_run(
        config,
        splits,
        run.priors.stage_two_path(),
        overwrite=True,
        progress=progress,
        figures=False,
        info={**data_info(splits, in_memory=True), "stage_two_of": str(run.path)},
    ).model
    nelbo = evaluate_loss(stage2, val.to(stage2.device), Objective(beta=1.0), seed=seed, clip=None)["nelbo"]
    # change of variables z = shift + scale * z': log p(z) = log p(z') - sum_d log scale_d
    val_logp = -nelbo - float(scale.log().sum())
    meta = {
        "hidden": hidden,
        "epochs": epochs,
        "stage2_sigma": float(stage2.likelihood.sigma().detach().mean()),
        "val_log_density_is": "ELBO (a lower bound)",
    }
    return {"shift": shift.float(), "scale": scale.float()}, meta, val_logp
