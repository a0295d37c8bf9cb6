"""From what a user asks for to a RunConfig: options (the fields of ModelConfig, TrainConfig and
DataConfig, by name) and the data decide the settings that depend on the data (likelihood, arch,
channels, labels); resuming checks that nothing that built the run would change."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from .. import __version__
from ..config import SECTIONS, DataConfig, ModelConfig, RunConfig, TrainConfig, option_sections, resumable_options
from ..core.likelihoods import LIKELIHOODS
from ..core.nets import auto_channels, default_arch
from ..data import DataSplits
from ..errors import DataError, VaekitError


def split_options(options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{name: value} -> {section: {name: value}}; VaekitError for an unknown name."""
    valid = option_sections()
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise VaekitError(f"unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}")
    out: dict[str, dict[str, Any]] = {sec: {} for sec in SECTIONS}
    for k, v in options.items():
        out[valid[k]][k] = v
    return out


def default_likelihood(kind: str, in_unit: bool) -> str:
    """The hierarchical VAE's images get the discretized logistic mixture (a mass over the 256
    levels, as NVAE and VDVAE use); other data in [0, 1] the Bernoulli; the rest (and a codec,
    whose distortion is squared error) the Gaussian."""
    if not in_unit or kind == "codec":
        return "gaussian"
    return "discretized-logistic-mixture" if kind == "hvae" else "bernoulli"


def model_config(data: DataSplits, kind: str, conditional: bool, given: dict[str, Any]) -> ModelConfig:
    """The model for these data: the given options, and the data's defaults for the rest."""
    given = dict(given)
    if data.table is not None:
        return _table_model(data, kind, conditional, given)
    lo, hi = data.value_range()
    in_unit = lo >= 0.0 and hi <= 1.0
    if given.get("likelihood") in (None, "auto"):
        given["likelihood"] = default_likelihood(kind, in_unit)
        if not in_unit and kind != "codec" and "learn_sigma" not in given:
            given["learn_sigma"] = "global"
    likelihood = given["likelihood"]
    support = getattr(LIKELIHOODS.get(likelihood), "support", None)
    if support is not None and (lo < support[0] or hi > support[1]):
        hint = (
            "cannot be Bernoulli probabilities"
            if likelihood == "bernoulli"
            else f"lie outside [{support[0]:g}, {support[1]:g}] where the {likelihood} likelihood lives"
        )
        raise DataError(
            f"{data.name} has values in [{lo:.3g}, {hi:.3g}], which {hint}; "
            "use --likelihood gaussian or rescale the data to [0, 1]"
        )
    if given.get("arch") in (None, "auto"):
        given["arch"] = default_arch(data.shape, likelihood)
    if conditional and not data.has_labels:
        raise DataError(f"--conditional needs labels, and {data.name} has none")
    if given["arch"] == "conv" and given.get("channels") is None and len(data.shape) == 3:
        given["channels"] = auto_channels(data.shape[1], data.shape[2])
    return ModelConfig(kind=kind, data_shape=data.shape, num_classes=data.num_classes if conditional else 0, **given)


# A table's default network: measured on the ADBench tables (BENCHMARKS.md, "Tables")
TABLE_HIDDEN = [256, 256]
TABLE_LATENT = 8


def _table_model(data: DataSplits, kind: str, conditional: bool, given: dict[str, Any]) -> ModelConfig:
    """A table is modelled by the tabular likelihood, one head per column, with an MLP."""
    if given.get("likelihood") not in (None, "auto", "tabular"):
        raise DataError(
            f"{data.name} is a table, modelled by the tabular likelihood; --likelihood "
            f"{given['likelihood']} is for images or (with --matrix raw) plain vectors"
        )
    if given.get("arch") == "conv":
        raise DataError(f"{data.name} is a table; the conv architecture is for images (use --arch mlp)")
    if conditional and not data.has_labels:
        raise DataError(f"--conditional needs labels (--label COLUMN), and {data.name} has none")
    given.update(likelihood="tabular", arch="mlp", heads=data.table.heads)
    given.setdefault("hidden", TABLE_HIDDEN)
    given.setdefault("latent_dim", TABLE_LATENT)
    return ModelConfig(kind=kind, data_shape=data.shape, num_classes=data.num_classes if conditional else 0, **given)


def new_config(
    data_cfg: DataConfig, splits: DataSplits, *, kind: str, conditional: bool, options: dict[str, dict[str, Any]]
) -> RunConfig:
    """options: split_options' result (its data section is already in data_cfg)."""
    model = model_config(splits, kind, conditional, options["model"])
    return RunConfig(model=model, train=TrainConfig(**options["train"]), data=data_cfg)


def data_info(data: DataSplits, *, in_memory: bool = False) -> dict[str, Any]:
    """The facts about the data a run folder records beside its config."""
    return {
        "data_name": data.name,
        "is_image": data.is_image,
        "class_names": data.class_names,
        "n_train": len(data.train),
        "n_val": len(data.val),
        "n_test": len(data.test),
        "official_test": data.official_test,
        "vaekit_version": __version__,
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        **({"data_in_memory": True} if in_memory else {}),
    }


def resumed_config(
    config: RunConfig,
    *,
    data: str | None,
    kind: str | None,
    conditional: bool | None,
    options: dict[str, Any],
    where: str,
) -> RunConfig:
    """The run's config with the resumable options changed (epochs, patience, device, precision,
    compile, time limit, log); VaekitError naming anything else that would change."""
    sections = split_options(options)
    changed, updates = [], {sec: {} for sec in SECTIONS}
    if data is not None and data != config.data.source:
        changed.append(f"data ({config.data.source} -> {data})")
    if kind is not None and kind != config.model.kind:
        changed.append(f"model ({config.model.kind} -> {kind})")
    if conditional is not None and conditional != (config.model.num_classes > 0):
        changed.append("conditional")
    resumable = resumable_options()
    for sec, values in sections.items():
        current = getattr(config, sec)
        for k, v in values.items():
            if k in resumable:
                updates[sec][k] = v
                continue
            if v is None or v == "auto":
                continue
            asked = getattr(dataclasses.replace(current, **{k: v}), k)  # validated and typed like the saved value
            if asked != getattr(current, k):
                changed.append(f"{k} ({_shown(getattr(current, k))} -> {_shown(asked)})")
    if changed:
        raise VaekitError(
            f"--resume {where} cannot change how the run was built: {', '.join(changed)}; start a new run instead"
        )
    return RunConfig(
        model=config.model,
        train=dataclasses.replace(config.train, **updates["train"]),
        data=dataclasses.replace(config.data, **updates["data"]),
    )


def _shown(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def config_changes(old: RunConfig, new: RunConfig) -> list[str]:
    """The settings (other than the resumable ones) in which `new` differs from `old`, as
    "name (old -> new)"."""
    resumable = resumable_options()
    changes = []
    for sec in SECTIONS:
        before, after = getattr(old, sec), getattr(new, sec)
        for f in dataclasses.fields(before):
            a, b = getattr(before, f.name), getattr(after, f.name)
            if f.name not in resumable and a != b:
                changes.append(f"{f.name} ({_shown(a)} -> {_shown(b)})")
    return changes
