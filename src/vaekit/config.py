"""Typed settings. Every field is declared once, with `setting(...)`: its type (the annotation),
default, help text and validation. Validation runs when a config is built (`__post_init__`), so
a config that exists is a valid one; the CLI options of `vaekit train`, `vaekit sweep` and the
other training commands are generated from these fields (vaekit.cli.options), so help text and
defaults cannot disagree.

One RunConfig is saved as config.json in every run folder and is all that is needed to rebuild
the model and reload the data. Structured values (Capacity, Corruption) are written as JSON
objects; folders written before they existed ("C:N" and "kind:level" strings) still load.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import RunFolderError, VaekitError

CONFIG_FORMAT = "vaekit-run/2"
READABLE_FORMATS = ("vaekit-run/1", CONFIG_FORMAT)  # /1: before structured capacity and denoise
MAX_SEED = 2**63 - 1  # torch.manual_seed takes 64-bit seeds
MAX_IMAGE_SIZE = 4096  # a larger --image-size is a typo, not a plan (4096^2 RGB is 200 MB per image)

Check = Callable[[Any], "str | None"]  # value -> what is wrong with it, or None


# -- checks: each returns what is wrong, phrased to follow the option's name -------------------------


def at_least(low: float) -> Check:
    return lambda v: None if v >= low else f"must be at least {low:g}"


def positive(v: float) -> str | None:
    return None if v > 0 else "must be positive"


def non_negative(v: float) -> str | None:
    return None if v >= 0 else "must be zero or positive"


def open_fraction(v: float) -> str | None:
    return None if 0 < v < 1 else "must lie strictly between 0 and 1"


def at_most(high: float) -> Check:
    return lambda v: None if v <= high else f"must be at most {high:g}"


def all_of(*checks: Check) -> Check:
    def check(v):
        return next((p for p in (c(v) for c in checks) if p), None)

    return check


# -- structured values ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Capacity:
    """beta * |KL - C_t|, C_t rising linearly from 0 to `nats` over `steps` steps (Burgess et al. 2018)."""

    nats: float
    steps: int

    def __post_init__(self) -> None:
        if isinstance(self.nats, bool) or not isinstance(self.nats, (int, float)) or not math.isfinite(self.nats):
            raise VaekitError(f"needs a finite number of nats, not {self.nats!r}")
        if self.nats < 0 or not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 1:
            raise VaekitError("needs NATS >= 0 and a whole number of STEPS >= 1")

    @classmethod
    def parse(cls, text: str) -> Capacity:
        """ "25:10000" -> Capacity(25.0, 10000)."""
        try:
            c, n = str(text).split(":")
            return cls(float(c), int(n))
        except ValueError:
            raise VaekitError(f"takes NATS:STEPS such as 25:10000, not {text!r}") from None

    def __str__(self) -> str:
        return f"{self.nats:g}:{self.steps}"


CORRUPTIONS = ("gaussian", "saltpepper", "mask", "uniform")


@dataclass(frozen=True)
class Corruption:
    """How inputs are corrupted (vaekit.data.corruption applies it): gaussian:SIGMA (additive noise),
    saltpepper:P, mask:P (zeroed), uniform:P (replaced by a uniform draw), each value with probability P."""

    kind: str
    level: float

    def __post_init__(self) -> None:
        if self.kind not in CORRUPTIONS:
            raise VaekitError(
                f"has an unknown kind {self.kind!r}; use gaussian:SIGMA, saltpepper:P, mask:P or uniform:P"
            )
        if isinstance(self.level, bool) or not isinstance(self.level, (int, float)) or not math.isfinite(self.level):
            raise VaekitError(f"needs a finite level, not {self.level!r}")
        if not self.level > 0 or (self.kind != "gaussian" and self.level > 1):
            raise VaekitError(f"needs a level > 0 (and <= 1 for a probability), not {self.level:g}")

    @classmethod
    def parse(cls, text: str) -> Corruption:
        """ "gaussian:0.3" -> Corruption("gaussian", 0.3)."""
        kind, _, level = str(text).partition(":")
        try:
            value = float(level)
        except ValueError:
            raise VaekitError(f"takes KIND:LEVEL such as gaussian:0.3, not {text!r}") from None
        return cls(kind, value)

    @property
    def is_probability(self) -> bool:
        return self.kind != "gaussian"

    def __str__(self) -> str:
        return f"{self.kind}:{self.level:g}"


STRUCTURED = {Capacity: Capacity.parse, Corruption: Corruption.parse}


# -- the declaration helper -----------------------------------------------------------------------------


def setting(
    default: Any = None,
    *,
    help: str,
    check: Check | None = None,
    choices: tuple[str, ...] | None = None,
    factory: Callable[[], Any] | None = None,
    cli: bool = True,
    flag: str | None = None,
    default_text: str | None = None,
    resumable: bool = False,
) -> Any:
    """A config field. help: one sentence for --help; check: extra validation beyond the type;
    choices: the allowed strings; cli=False: not a command-line option (facts about the data);
    flag: the option's name when it is not --field-name; default_text: how --help states the
    default when it depends on the data; resumable: may change when a run is resumed."""
    meta = {
        "help": help,
        "check": check,
        "choices": choices,
        "cli": cli,
        "flag": flag,
        "default_text": default_text,
        "resumable": resumable,
    }
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def option_flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def describe_default(f: dataclasses.Field) -> str:
    """The default as --help states it."""
    if f.metadata.get("default_text"):
        return f.metadata["default_text"]
    value = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
    if value is None:
        return "off"
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


# -- validation ---------------------------------------------------------------------------------------------


def _base_type(hint: Any) -> tuple[Any, bool]:
    """list[int] | None -> (list[int], True)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return hint, False


def field_type(cls: type, name: str) -> tuple[Any, bool]:
    """(base type, optional) of a config field."""
    return _base_type(typing.get_type_hints(cls)[name])


def _number(value: Any, kind: type, where: str) -> Any:
    if isinstance(value, bool):
        raise VaekitError(f"{where} must be a number, not {value!r}")
    if kind is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise VaekitError(f"{where} must be a whole number, not {value!r}")
        if abs(value) > MAX_SEED:
            raise VaekitError(f"{where} must be a whole number below 2^63, not {value}")
        return value
    if not isinstance(value, (int, float)):
        raise VaekitError(f"{where} must be a number, not {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise VaekitError(f"{where} must be a finite number, not {value}")
    return value


def coerce(value: Any, kind: Any, where: str) -> Any:
    """value as the field's type (ints from JSON floats, structured values from their text), or
    VaekitError naming the option."""
    if kind in (int, float):
        return _number(value, kind, where)
    if kind is bool:
        if not isinstance(value, bool):
            raise VaekitError(f"{where} must be true or false, not {value!r}")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise VaekitError(f"{where} must be text, not {value!r}")
        return value
    if kind in STRUCTURED:
        return structured(value, kind, where)
    if typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind)
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise VaekitError(f"{where} must be a list, not {value!r}")
        return [coerce(v, item, where) for v in value]
    raise TypeError(f"config fields of type {kind!r} are not supported")


def structured(value: Any, kind: type, where: str) -> Any:
    """A Capacity or Corruption from itself, its text ("25:10000") or its JSON object."""
    if isinstance(value, kind):
        return value
    try:
        if isinstance(value, str):
            return STRUCTURED[kind](value)
        if isinstance(value, dict):
            return kind(**value)
    except TypeError:
        raise VaekitError(f"{where} has the wrong fields: {value!r}") from None
    except VaekitError as e:
        raise VaekitError(f"{where} {e}") from None
    raise VaekitError(f"{where} cannot be read from {value!r}")


def validate_fields(obj: Any) -> None:
    """Coerce and check every field of a config dataclass in place (the one place options are
    validated); raise VaekitError with one sentence naming the option."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        where = option_flag(f)
        kind, optional = field_type(type(obj), f.name)
        if value is None:
            if not optional:
                raise VaekitError(f"{where} needs a value")
            continue
        value = coerce(value, kind, where)
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise VaekitError(f"unknown {where} {value!r}; choose {', '.join(choices)}")
        check = f.metadata.get("check")
        if check is not None:
            items = value if isinstance(value, list) else [value]
            problem = next((p for p in map(check, items) if p), None)
            if problem:
                shown = ",".join(map(str, value)) if isinstance(value, list) else value
                raise VaekitError(f"{where} {problem}, not {shown}")
        object.__setattr__(obj, f.name, value)


# -- the settings ---------------------------------------------------------------------------------------------

LIKELIHOOD_NAMES = (  # vaekit.core.likelihoods
    "bernoulli",
    "gaussian",
    "discretized-logistic",
    "discretized-gaussian",
    "discretized-logistic-mixture",
    "tabular",
)
MATRIX_MODES = ("table", "raw")
ARCHES = ("auto", "mlp", "conv")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LR_SCHEDULES = ("auto", "constant", "cosine", "plateau")
LOGGERS = ("none", "tensorboard")
DEFAULT_EPOCHS = 30  # without --epochs and without --time-limit
MODEL_KINDS = ("vae", "ae", "codec", "hvae")


def codec_sigma(lmbda: float, channels: int) -> float:
    """The Gaussian likelihood's sigma under which a codec's -ELBO in nats per image is CompressAI's
    loss, bits per pixel + lmbda * 255^2 * MSE, times pixels * ln 2 (plus a constant):
    1 / (2 sigma^2) = lmbda * 255^2 * ln 2 / channels (MSE averages over channels, bpp does not)."""
    return math.sqrt(channels / (2 * lmbda * 255**2 * math.log(2)))


@dataclass
class ModelConfig:
    kind: str = setting(
        "vae",
        help="vae, ae for the deterministic autoencoder baseline, codec for a lossy learned image codec "
        "(quantized latents with a learned entropy model, Balle et al. 2017; see --lmbda), or hvae for a "
        "hierarchical VAE on images (top-down latent groups with residual cells, as NVAE and VDVAE; see --groups).",
        choices=MODEL_KINDS,
        flag="--model",
    )
    arch: str = setting(
        "auto",
        choices=ARCHES,
        help="Encoder and decoder: mlp or conv.",
        default_text="auto: mlp for vectors, and for small images of up to 1024 values such as 28x28 "
        "grey under the Bernoulli likelihood; conv for other images",
    )
    latent_dim: int = setting(16, help="Size of the latent code z.", check=all_of(at_least(1), at_most(65536)))
    hidden: list[int] = setting(
        factory=lambda: [512, 256],
        help="MLP hidden widths, comma-separated, encoder order.",
        check=all_of(at_least(1), at_most(1_000_000)),
    )
    channels: list[int] | None = setting(
        help="Conv channels per stride-2 stage, comma-separated.",
        check=all_of(at_least(1), at_most(65536)),
        default_text="sized from the images, e.g. 32,64 for 28x28",
    )
    groups: list[int] | None = setting(
        help="Hierarchical VAE: latent groups per resolution, top-down from the 1x1 top group (always 1) to "
        "full size, comma-separated (28x28 images have the resolutions 1x1, 7x7, 14x14, 28x28).",
        check=all_of(at_least(0), at_most(64)),
        default_text="1 at 1x1, 2 at every other resolution",
    )
    widths: list[int] | None = setting(
        help="Hierarchical VAE: channels of the residual cells per resolution, top-down, comma-separated.",
        check=all_of(at_least(8), at_most(4096)),
        default_text="64 at up to 8 pixels across, 32 above",
    )
    group_channels: int = setting(
        8,
        help="Hierarchical VAE: latent channels of each group below the top (the top group has --latent-dim).",
        check=all_of(at_least(1), at_most(1024)),
    )
    cells: int = setting(
        1,
        help="Hierarchical VAE: residual cells per resolution in the bottom-up path.",
        check=all_of(at_least(1), at_most(64)),
    )
    likelihood: str = setting(
        "bernoulli",
        choices=LIKELIHOOD_NAMES,
        help="p(x|z): bernoulli, gaussian, discretized-logistic, discretized-gaussian or "
        "discretized-logistic-mixture (8-bit data: gives NLL in bits/dim), or tabular (one head per table column).",
        default_text="tabular for tables; bernoulli for data in [0, 1], discretized-logistic-mixture "
        "for an hvae's; else gaussian",
    )
    mixtures: int = setting(
        10,
        help="Number of logistic components per value of the discretized logistic mixture likelihood.",
        check=all_of(at_least(1), at_most(64)),
    )
    sigma: float = setting(
        0.1,
        help="Gaussian likelihood: fixed sigma, or initial sigma when learned (a codec's follows from --lmbda).",
        check=positive,
    )
    learn_sigma: str = setting(
        "none",
        choices=("none", "global", "channel"),
        help="Gaussian likelihood: none (fixed), global or channel.",
        default_text="none; global for data outside [0, 1]",
    )
    lmbda: float = setting(
        0.01,
        help="Codec (--model codec): the rate-distortion trade-off, as in CompressAI: loss = bits per pixel "
        "+ lmbda * 255^2 * MSE; larger gives sharper images and larger files.",
        check=all_of(positive, at_most(1e6)),
    )
    data_shape: list[int] = setting(
        factory=lambda: [1, 28, 28], cli=False, check=at_least(1), help="One example: (C, H, W) or (D,)."
    )
    num_classes: int = setting(
        0, cli=False, check=at_least(0), help="> 0: encoder and decoder are conditioned on a one-hot label."
    )
    heads: list[str] | None = setting(
        cli=False,
        help="Tabular likelihood: one head per table column, in order (gaussian, bernoulli, categorical:K).",
    )

    def __post_init__(self) -> None:
        validate_fields(self)
        if (self.likelihood == "tabular") != bool(self.heads):
            raise VaekitError("the tabular likelihood is for tables (CSV, TSV, Parquet or a 2-D matrix), and only it")
        if len(self.data_shape) not in (1, 3):
            raise VaekitError(f"data_shape must be (C, H, W) or (D,), not {tuple(self.data_shape)}")
        if not self.hidden:
            raise VaekitError("--hidden needs at least one width")
        if self.channels is not None and not self.channels:
            raise VaekitError("--channels needs at least one stage")
        if self.kind == "codec":
            if len(self.data_shape) != 3:
                raise VaekitError("a codec compresses images (C, H, W), and these data are feature vectors")
            if self.likelihood != "gaussian" or self.learn_sigma != "none":
                raise VaekitError(
                    "a codec measures distortion as squared error: it takes the gaussian likelihood "
                    "with a fixed sigma, set by --lmbda"
                )
            self.sigma = codec_sigma(self.lmbda, self.data_shape[0])


@dataclass
class TrainConfig:
    epochs: int | None = setting(
        help="Epochs in total (with --resume: the new total).",
        check=at_least(1),
        resumable=True,
        default_text=f"{DEFAULT_EPOCHS}; with --time-limit, as many as the time allows",
    )
    batch_size: int = setting(128, help="Examples per step (per process under torchrun).", check=at_least(1))
    lr: float = setting(2e-3, help="Adam learning rate.", check=positive)
    beta: float = setting(1.0, help="Weight of the KL term: loss = recon + beta * KL.", check=non_negative)
    grad_clip: float | None = setting(help="Clip the global gradient norm to this.", check=positive)
    skip_norm: float | None = setting(
        help="Skip every update whose gradient norm (before clipping) exceeds this, as a non-finite one is "
        "skipped: VDVAE's stabiliser for deep hierarchies, whose rare huge gradients clipping only shrinks.",
        check=positive,
    )
    seed: int = setting(0, help="Seed for every random number of the run.", check=at_least(0))
    patience: int | None = setting(
        help="Stop after this many epochs without validation improvement.", check=at_least(1), resumable=True
    )
    binarize: str = setting(
        "none",
        choices=("none", "dynamic"),
        help="none, or dynamic: resample binary pixels x ~ Bernoulli(x) each batch.",
    )
    device: str = setting("auto", choices=DEVICES, resumable=True, help="auto, cpu, cuda or mps.")
    max_bad_steps: int = setting(
        20, cli=False, check=at_least(1), help="Stop after this many consecutive non-finite steps."
    )
    kl_warmup: int | None = setting(help="Raise the KL weight linearly from 0 to beta over N steps.", check=at_least(1))
    kl_cycles: int | None = setting(
        help="Cyclical KL annealing with M cycles over the run (Fu et al. 2019).", check=at_least(1)
    )
    free_bits: float | None = setting(
        help="Each latent dimension's KL counts as at least L nats (Kingma et al. 2016).", check=non_negative
    )
    capacity: Capacity | None = setting(
        help="C:N, loss = recon + beta * |KL - C_t| with C_t rising to C nats over N steps (Burgess et al. 2018)."
    )
    denoise: Corruption | None = setting(
        help="Train as a denoiser: gaussian:SIGMA, saltpepper:P or mask:P corrupt the input; the target stays clean."
    )
    precision: str = setting(
        "fp32",
        choices=PRECISIONS,
        resumable=True,
        help="auto (bf16 where the device computes it natively: AMX/AVX512-BF16 CPUs, Ampere+ "
        "GPUs; else fp32), fp32, bf16 or fp16 (autocast; fp16 adds a gradient scaler).",
    )
    compile: bool = setting(False, resumable=True, help="torch.compile the training step (compiles for a while first).")
    lr_schedule: str = setting(
        "auto",
        choices=LR_SCHEDULES,
        help="Learning rate over the run: cosine (falls to 0 by the last epoch), constant, "
        "plateau (halved after 3 epochs without a better validation loss), or auto: cosine "
        "with --time-limit, constant otherwise.",
    )
    time_limit: float | None = setting(
        resumable=True,
        check=positive,
        help="Seconds the run may take (training and validation). Without --epochs it trains until the time is "
        "spent, with the learning-rate and KL schedules planned on the time; with --epochs it stops after the last "
        "epoch that fits.",
    )
    log: str = setting(
        "none",
        choices=LOGGERS,
        resumable=True,
        help="Also log metrics to: none, or tensorboard (RUN/tensorboard/; needs the tensorboard package).",
    )
    adversarial: bool = setting(
        False,
        help="VAE-GAN: after --adversarial-start steps, train the decoder against a patch discriminator on its "
        "reconstructions and samples, with the discriminator's features as a learned similarity (images only).",
    )
    adversarial_start: int = setting(
        2000,
        check=at_least(0),
        help="--adversarial: optimizer steps of plain VAE training before the discriminator starts.",
    )
    adversarial_weight: float = setting(
        0.5,
        check=non_negative,
        help="--adversarial: the adversarial term's gradient at the decoder's last layer, as a multiple of the "
        "reconstruction terms' (the adaptive weight of Esser et al. 2021).",
    )
    feature_weight: float = setting(
        1.0,
        check=non_negative,
        help="--adversarial: weight of the discriminator-feature distance between an image and its reconstruction "
        "(Larsen et al. 2016), beside the likelihood's nats.",
    )

    def __post_init__(self) -> None:
        validate_fields(self)
        if self.kl_warmup is not None and self.kl_cycles is not None:
            raise VaekitError("choose one of --kl-warmup and --kl-cycles")
        if self.adversarial and self.precision == "fp16":
            raise VaekitError(
                "--adversarial trains in fp32 or bf16, not fp16 (one gradient scaler cannot serve two optimizers)"
            )

    @property
    def max_epochs(self) -> int | None:
        """The epoch count the run stops at: --epochs, else the default unless a time limit bounds the run."""
        if self.epochs is not None:
            return self.epochs
        return None if self.time_limit is not None else DEFAULT_EPOCHS


@dataclass
class DataConfig:
    source: str = setting(
        "digits",
        flag="--data",
        help="Built-in dataset (digits, fashion-mnist), image folder, IDX folder, .npy/.npz file, "
        "or a table (.csv, .tsv, .parquet).",
    )
    image_size: int | None = setting(
        help="Resize and centre-crop folder images to N x N.",
        check=all_of(at_least(1), at_most(MAX_IMAGE_SIZE)),
        default_text="keep sizes; they must agree",
    )
    color: str | None = setting(
        choices=("gray", "rgb"), help="Convert folder images to gray or rgb.", default_text="as found; must agree"
    )
    val_fraction: float = setting(
        0.1, help="Fraction of the training split held out for validation.", check=open_fraction
    )
    test_fraction: float = setting(0.1, help="Test fraction for data with no official test split.", check=open_fraction)
    split_seed: int = setting(0, help="Seed of the train/validation/test split.", check=at_least(0))
    exclude_labels: list[int] | None = setting(
        flag="--exclude-label",
        help="Drop these classes (comma-separated) from training and validation; the test split keeps them.",
    )
    categorical: list[str] | None = setting(
        help="Table columns (comma-separated) to model as categories, whatever their values look like.",
        default_text="inferred: text with few distinct values",
    )
    numeric: list[str] | None = setting(
        help="Table columns (comma-separated) to model as numbers.",
        default_text="inferred: numbers with more than two distinct values",
    )
    ignore: list[str] | None = setting(
        help="Table columns (comma-separated) to leave out.",
        default_text="identifier-like, free-text, empty and constant columns",
    )
    label: str | None = setting(
        help="Table column of class labels: not a feature; the classes of --conditional and of anomaly reports.",
    )
    matrix: str = setting(
        "table",
        choices=MATRIX_MODES,
        help="A 2-D .npy/.npz matrix: table (typed, transformed columns, the tabular likelihood) or raw "
        "(one vector of floats for --likelihood gaussian or bernoulli).",
        default_text="table; raw when --likelihood names another likelihood",
    )

    def __post_init__(self) -> None:
        validate_fields(self)
        named = [n for names in (self.categorical, self.numeric, self.ignore) for n in names or []]
        twice = sorted({n for n in named if named.count(n) > 1} | ({self.label} & set(named)))
        if twice:
            raise VaekitError(
                f"column {twice[0]!r} is named by more than one of --categorical, --numeric, --ignore and --label"
            )

    @property
    def column_options(self) -> dict[str, list[str]]:
        """The column overrides a table is read with, by kind."""
        return {"categorical": self.categorical or [], "numeric": self.numeric or [], "ignore": self.ignore or []}


SECTIONS: dict[str, type] = {"model": ModelConfig, "train": TrainConfig, "data": DataConfig}


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        if self.train.binarize == "dynamic" and self.model.likelihood != "bernoulli":
            raise VaekitError("--binarize dynamic needs the Bernoulli likelihood")
        if self.train.adversarial and len(self.model.data_shape) != 3:
            raise VaekitError("--adversarial needs images (a patch discriminator judges pictures), not vectors")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)  # Capacity and Corruption become {"nats", "steps"}, {"kind", "level"}
        return {"format": CONFIG_FORMAT, **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """A config.json's content -> RunConfig; RunFolderError for anything that is not one."""
        if not isinstance(d, dict) or d.get("format") not in READABLE_FORMATS:
            raise RunFolderError(f"config is not a vaekit run config (expected format {CONFIG_FORMAT!r})")
        sections = {name: d.get(name, {}) for name in SECTIONS}
        bad = [name for name, values in sections.items() if not isinstance(values, dict)]
        if bad:
            raise RunFolderError(f"config section {bad[0]!r} is not a JSON object")
        # runs saved before learning-rate schedules existed trained at a constant rate
        sections["train"] = {"lr_schedule": "constant", **sections["train"]}
        try:
            return cls(**{name: build_section(SECTIONS[name], values) for name, values in sections.items()})
        except VaekitError as e:
            raise RunFolderError(f"config has an invalid setting: {e}") from None


def build_section(kind: type, values: dict[str, Any]):
    known = {f.name for f in fields(kind)}
    unknown = set(values) - known
    if unknown:
        raise RunFolderError(
            f"config has settings this vaekit does not know ({', '.join(sorted(unknown))}); "
            "it was written by a newer or different version"
        )
    return kind(**values)


def cli_fields(kind: type) -> list[dataclasses.Field]:
    """The fields of a config section that are command-line options."""
    return [f for f in fields(kind) if f.metadata.get("cli", True)]


def resumable_options() -> set[str]:
    return {f.name for kind in SECTIONS.values() for f in fields(kind) if f.metadata.get("resumable")}


def option_sections() -> dict[str, str]:
    """option name -> its config section, for every option that `vaekit.train` accepts."""
    return {f.name: sec for sec, kind in SECTIONS.items() for f in cli_fields(kind) if f.name not in ("kind", "source")}
