"""Typed configuration. One RunConfig is saved as config.json in every run folder and is
all that is needed to rebuild the model and reload the data."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import RunFolderError

CONFIG_FORMAT = "vaekit-run/1"


@dataclass
class ModelConfig:
    kind: str = "vae"  # "vae": stochastic encoder + KL; "ae": deterministic baseline, same parts
    arch: str = "conv"  # "mlp" | "conv"
    latent_dim: int = 16
    hidden: list[int] = field(default_factory=lambda: [512, 256])  # MLP widths, encoder order
    channels: list[int] | None = None  # conv channels per stride-2 stage; None: sized from the data
    likelihood: str = "bernoulli"  # see vaekit.likelihoods.LIKELIHOODS
    sigma: float = 0.1  # Gaussian likelihood: the fixed sigma, or the initial one when learned
    learn_sigma: str = "none"  # Gaussian likelihood: "none" | "global" | "channel"
    data_shape: list[int] = field(default_factory=lambda: [1, 28, 28])  # one example: (C, H, W) or (D,)
    num_classes: int = 0  # > 0: encoder and decoder are conditioned on a one-hot label

    def __post_init__(self) -> None:
        self.data_shape = [int(s) for s in self.data_shape]
        self.hidden = [int(h) for h in self.hidden]
        if self.channels is not None:
            self.channels = [int(c) for c in self.channels]


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 128
    lr: float = 2e-3  # Adam; 2e-3 reaches a given -ELBO in fewer epochs than 1e-3 (BENCHMARKS.md)
    beta: float = 1.0  # weight of the KL term
    grad_clip: float | None = None  # max global gradient norm; None: no clipping
    seed: int = 0  # drives every random number of the run
    patience: int | None = None  # early stopping: epochs without validation improvement
    binarize: str = "none"  # "none" | "dynamic": resample binary x ~ Bernoulli(x) every batch
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "mps"
    max_bad_steps: int = 20  # stop after this many consecutive non-finite steps
    kl_warmup: int | None = None  # steps of linear KL warm-up (see vaekit.objectives)
    kl_cycles: int | None = None  # cyclical KL annealing: number of cycles over the run
    free_bits: float | None = None  # minimum nats per latent dimension in the KL term
    capacity: str | None = None  # "C:N": beta * |KL - C_t|, C_t rising to C nats over N steps
    denoise: str | None = None  # train as a denoiser: gaussian:SIGMA, saltpepper:P or mask:P
    precision: str = "fp32"  # "auto" | "fp32" | "bf16" | "fp16": autocast for the forward pass (fp16 adds a GradScaler)
    compile: bool = False  # torch.compile the training forward (pays a compile time up front)
    lr_schedule: str = "auto"  # "auto" (cosine under a time limit, else constant) | "constant" | "cosine" | "plateau" (see vaekit.schedules)
    time_limit: float | None = None  # seconds: stop after the last epoch that fits; the schedule ends there

    def __post_init__(self) -> None:
        from .schedules import check_options  # checked here, before a run folder is made

        check_options(self.lr_schedule, self.time_limit)


@dataclass
class DataConfig:
    source: str = "digits"  # registered name, image folder, IDX folder, .npy or .npz file
    image_size: int | None = None  # resize (and centre-crop) folder images to this square size
    color: str | None = None  # folder images: "gray" | "rgb"; None: as found (must agree)
    val_fraction: float = 0.1  # of the training split
    test_fraction: float = 0.1  # only for data without an official test split
    split_seed: int = 0
    exclude_labels: list[int] | None = None  # drop these classes from train/val (test keeps them)


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def to_dict(self) -> dict[str, Any]:
        return {"format": CONFIG_FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        if not isinstance(d, dict) or d.get("format") != CONFIG_FORMAT:
            raise RunFolderError(f"config is not a vaekit run config (expected format {CONFIG_FORMAT!r})")
        # runs saved before learning-rate schedules existed trained at a constant rate
        train = {"lr_schedule": "constant", **d.get("train", {})}
        return cls(
            model=_build(ModelConfig, d.get("model", {})),
            train=_build(TrainConfig, train),
            data=_build(DataConfig, d.get("data", {})),
        )


def _build(kind: type, values: dict[str, Any]):
    known = {f.name for f in fields(kind)}
    unknown = set(values) - known
    if unknown:
        raise RunFolderError(
            f"config has settings this vaekit does not know ({', '.join(sorted(unknown))}); "
            "it was written by a newer or different version"
        )
    return kind(**values)
