"""Run: the one owner of a run folder. Nothing outside vaekit.runs knows a file name inside one.

config.json              RunConfig (model, train, data) + facts about the data ("info"); its
                         "format" field is vaekit's marker that the folder is a run
model.safetensors        weights of the best validation epoch (what `run.model` is)
checkpoint.safetensors   the last epoch: weights, optimizer, RNG and loop state (exact resume)
metrics.jsonl            one JSON line per epoch
*.png                    the pictures every run ends with (figures.py)
priors/                  fitted sampling priors (priors.py)
background/              the likelihood-ratio background model: itself a run folder
evaluation.json          the latest `vaekit evaluate`, which `vaekit report` reads
report.html              `vaekit report`
tensorboard/             event files with --log tensorboard
cache/                   results computed from the weights and kept (keyed by their hash)

  run = vaekit.load_run("runs/fmnist")
  run.model, run.config, run.data().test, run.metrics(), run.prior("gmm"), run.background()
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from ..config import RunConfig
from ..core.build import build_model
from ..core.flow import VelocityField
from ..core.model import VAE
from ..core.priors import FlowPrior, GaussianMixturePrior, SecondStagePrior, StandardNormal
from ..data import DataSplits, Examples, TableSchema, load_data, read_examples
from ..errors import RunFolderError, VaekitError, not_a_run
from ..training.devices import resolve_device
from ..training.state import TrainingState
from .checkpoint import load_checkpoint, save_checkpoint
from .files import atomic_write, read_json, read_tensors, write_json, write_tensors
from .folder import check_out_folder, clear_run
from .layout import (
    BACKGROUND_DIR,
    CACHE_DIR,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    EVALUATION_FILE,
    FIGURES,
    METRICS_FILE,
    MODEL_FILE,
    REPORT_FILE,
    TABLE_FILE,
    TENSORBOARD_DIR,
)
from .priors import PriorStore


class Run:
    """A run folder: its config and facts, weights, checkpoint, metrics, priors, background
    model, evaluation and caches. Build it with Run.open (vaekit.load_run) or Run.create."""

    def __init__(self, path: str | Path, config: RunConfig, info: dict[str, Any], *, device: str = "cpu"):
        self.path = Path(path)
        self.config = config
        self.info = info
        self.device = device
        self.test_metrics: dict[str, float] | None = None  # set by train_run: the test split's loss
        self._model: VAE | None = None
        self._data: DataSplits | None = None
        self._table: TableSchema | None = None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    # -- opening and creating ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, *, device: str = "cpu") -> Run:
        """The run in `path`; RunFolderError when it is not one."""
        path = Path(path)
        if not path.exists():
            raise RunFolderError(f"no such run folder: {path}")
        if not path.is_dir():
            raise RunFolderError(f"{path} is a file, not a run folder")
        config, info = read_config(path)
        return cls(path, config, info, device=device)

    @classmethod
    def create(cls, path: str | Path, config: RunConfig, info: dict[str, Any], *, overwrite: bool = False) -> Run:
        """A new run in `path`: a missing or empty folder, or (overwrite) an old run, whose
        vaekit files are removed first (a user's own files beside them stay). Writes config.json.
        Call it holding the folder's lock (FolderLock)."""
        path = Path(path)
        if check_out_folder(path, overwrite=overwrite):
            clear_run(path)
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path, config, info)
        run.write_config()
        return run

    def write_config(self) -> None:
        write_json(self.path / CONFIG_FILE, {**self.config.to_dict(), "info": self.info})

    # -- the model ---------------------------------------------------------------------------------------
    @property
    def model(self) -> VAE:
        """The best validation weights, in eval mode, on the run's device (loaded once)."""
        if self._model is None:
            self._model = self.load_model("best", device=self.device)
        return self._model

    def load_model(self, which: str = "best", *, device: str = "cpu") -> VAE:
        """A fresh model: which="best" (model.safetensors) or "last" (the checkpoint)."""
        if which == "best":
            state, _ = read_tensors(self.path / MODEL_FILE)
        elif which == "last":
            state = self.load_checkpoint().model
        else:
            raise VaekitError(f"which must be best or last, not {which!r}")
        try:
            model = build_model(self.config.model)
            model.load_state_dict(state)
        except (RuntimeError, VaekitError, TypeError, ValueError) as e:
            raise RunFolderError(
                f"the weights in {self.path} do not match its config: {str(e).splitlines()[0]}"
            ) from None
        return model.to(resolve_device(device)).eval()

    def save_best(self, model: torch.nn.Module, meta: dict[str, Any]) -> None:
        write_tensors(self.path / MODEL_FILE, model.state_dict(), {"meta": json.dumps(meta)})
        self._model = None

    def has_weights(self) -> bool:
        return (self.path / MODEL_FILE).is_file()

    def weights_digest(self) -> str:
        """sha256 of model.safetensors: what a fitted prior or a cached result belongs to."""
        path = self.path / MODEL_FILE
        if not path.is_file():
            raise RunFolderError(f"{self.path} has no {MODEL_FILE} (training has not finished an epoch there)")
        return hashlib.sha256(path.read_bytes()).hexdigest()

    # -- training state ---------------------------------------------------------------------------------
    def has_checkpoint(self) -> bool:
        return (self.path / CHECKPOINT_FILE).is_file()

    def save_checkpoint(self, state: TrainingState) -> None:
        save_checkpoint(self.path / CHECKPOINT_FILE, state)

    def load_checkpoint(self) -> TrainingState:
        return load_checkpoint(self.path / CHECKPOINT_FILE)

    def trained_epochs(self) -> int:
        """Epochs in the checkpoint (0 when none finished)."""
        return self.load_checkpoint().epoch if self.has_checkpoint() else 0

    # -- metrics ------------------------------------------------------------------------------------------
    def metrics(self) -> list[dict[str, Any]]:
        """One dict per epoch, from metrics.jsonl. (It is written atomically; a last line torn by
        a crash of an older vaekit is skipped.) RunFolderError for any other damage."""
        path = self.path / METRICS_FILE
        if not path.is_file():
            return []
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise not_a_run(path, f"its metrics are unreadable ({e})") from None
        rows = []
        for i, line in enumerate(lines, 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                if i == len(lines):
                    break  # torn
                raise not_a_run(path, f"line {i} of its metrics is not JSON") from None
            if not (isinstance(row, dict) and isinstance(row.get("epoch"), int)):
                raise not_a_run(
                    path, f"line {i} of its metrics is not an epoch's metrics (a JSON object with an epoch)"
                )
            rows.append(row)
        return rows

    def kept_row(self) -> dict[str, Any] | None:
        """The metrics of the epoch whose weights model.safetensors holds: the best validation
        loss; under --adversarial once the discriminator has trained, the last epoch (see
        vaekit.training.adversarial). None before the first epoch."""
        rows = self.metrics()
        if not rows:
            return None
        if any(r.get("adv_d_loss") is not None for r in rows):
            return rows[-1]
        return min(rows, key=lambda r: r["val_loss"])

    def append_metrics(self, row: dict[str, Any]) -> None:
        """One more line, the whole file written anew atomically (a kill never tears a line)."""
        self._write_metrics([*self.metrics(), row])

    def _write_metrics(self, rows: list[dict[str, Any]]) -> None:
        atomic_write(self.path / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in rows))

    def truncate_metrics(self, last_epoch: int) -> None:
        """Keep the lines up to last_epoch (a resumed run rewrites what came after its checkpoint)."""
        self._write_metrics([r for r in self.metrics() if r["epoch"] <= last_epoch])

    # -- data ---------------------------------------------------------------------------------------------
    def data(self) -> DataSplits:
        """The data the run was trained on, split exactly as in training (loaded once)."""
        if self.info.get("data_in_memory"):
            raise VaekitError(
                f"{self.path} was trained on data handed over in memory ({self.config.data.source}); "
                "it cannot be read again from its config"
            )
        if self._data is None:
            self._data = load_data(self.config.data, table=self.table())
        return self._data

    def examples(self, spec: str) -> Examples:
        """What a user hands this run's model (a table's rows through its saved columns; see
        vaekit.data.read_examples), checked against the data it was trained on."""
        return read_examples(spec, data_shape=self.config.model.data_shape, like=self.config.data, table=self.table())

    # -- a table's columns -------------------------------------------------------------------------------
    @property
    def table_path(self) -> Path:
        return self.path / TABLE_FILE

    def table(self) -> TableSchema | None:
        """The columns of a run trained on a table (kinds, categories, fitted transforms), or None."""
        if self._table is None and self.config.model.likelihood == "tabular":
            if not self.table_path.is_file():
                raise RunFolderError(f"{self.path} was trained on a table but has no {TABLE_FILE}")
            d = read_json(self.table_path, "the table's description")
            try:
                self._table = TableSchema.from_json(d)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise not_a_run(self.table_path, f"its table description is damaged ({e})") from None
            if self._table.heads != self.config.model.heads:
                raise not_a_run(self.table_path, "its columns do not match the model's")
        return self._table

    def save_table(self, schema: TableSchema) -> None:
        write_json(self.table_path, schema.to_json())
        self._table = schema

    @property
    def class_names(self) -> list[str] | None:
        return self.info.get("class_names")

    def class_index(self, label: str | int) -> int:
        """A label as a user writes it -> the model's class index. Where the classes have names
        ("Sneaker") a name or an index 0..K-1 works; where the names are the data's own integer
        labels (3..12 in an .npz), only those values do, so "7" always means the user's label 7."""
        k = self.config.model.num_classes
        if k == 0:
            raise VaekitError("this model is not conditional; it takes no --label")
        names = [str(n) for n in self.class_names or []]
        text = str(label).strip()
        if text in names:
            return names.index(text)
        numeric_names = bool(names) and all(n.lstrip("-").isdigit() for n in names)
        if not numeric_names and text.lstrip("-").isdigit() and 0 <= int(text) < k:
            return int(text)
        if numeric_names:
            known = ", ".join(names)
        else:
            known = ", ".join(f"{i}: {n}" for i, n in enumerate(names)) if names else f"0..{k - 1}"
        raise VaekitError(f"unknown label {text!r}; this model's classes are {known}")

    # -- priors -------------------------------------------------------------------------------------------
    @property
    def priors(self) -> PriorStore:
        return PriorStore(self.path, self.weights_digest)

    def prior(self, kind: str | None = None):
        """The prior to draw samples from: "standard", "gmm", "vae" or "diffusion"; None: the run's default
        (the prior fitted last, or N(0, I) when none was). RunFolderError when the asked-for prior
        was not fitted or was fitted to other weights."""
        store = self.priors
        kind = store.default_kind() if kind is None else kind
        if kind == "standard":  # what the model was trained with: N(0, I), or a codec's learned prior
            return (
                self.model.prior if self.config.model.kind == "codec" else StandardNormal(self.config.model.latent_dim)
            )
        t = store.tensors(kind)
        try:
            if kind == "gmm":
                prior = GaussianMixturePrior(t["weights"], t["means"], t["scale_tril"])
            elif kind == "vae":
                stage_two = Run.open(store.stage_two_path(), device=str(self.model.device)).model
                prior = SecondStagePrior(stage_two, t["shift"], t["scale"])
            else:
                prior = self._flow_prior(store.info(kind), t)
        except KeyError as e:
            raise RunFolderError(f"the {kind} prior in {self.path} lacks its {e} tensor") from None
        if prior.latent_dim != self.config.model.latent_dim:
            raise RunFolderError(
                f"the {kind} prior in {self.path} has {prior.latent_dim} dimensions, "
                f"the model {self.config.model.latent_dim}"
            )
        return prior

    def _flow_prior(self, info: dict[str, Any], t: dict[str, torch.Tensor]) -> FlowPrior:
        """The latent diffusion prior from its description (sizes, steps) and tensors."""
        try:
            net = VelocityField(t["shift"].shape[0], hidden=int(info["hidden"]), depth=int(info["depth"]))
            net.load_state_dict({k[len("net.") :]: v for k, v in t.items() if k.startswith("net.")})
            steps = int(info["steps"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise RunFolderError(f"the diffusion prior in {self.path} is damaged: {str(e).splitlines()[0]}") from None
        return FlowPrior(net.to(self.model.device), t["shift"], t["scale"], steps=steps)

    # -- the background model ------------------------------------------------------------------------------
    @property
    def background_path(self) -> Path:
        return self.path / BACKGROUND_DIR

    def background(self) -> Run | None:
        """The likelihood-ratio background model (`vaekit fit-background`), or None."""
        if not (self.background_path / CONFIG_FILE).is_file():
            return None
        bg = Run.open(self.background_path, device=self.device)
        if bg.config.model.data_shape != self.config.model.data_shape or bg.config.model.kind != self.config.model.kind:
            raise RunFolderError(f"{self.background_path} does not match its run (another data shape or model kind)")
        return bg

    # -- evaluation, report, figures, logs, caches ---------------------------------------------------------------
    @property
    def evaluation_path(self) -> Path:
        return self.path / EVALUATION_FILE

    def evaluation(self) -> dict[str, Any] | None:
        """The latest saved `vaekit evaluate` result, or None."""
        if not self.evaluation_path.is_file():
            return None
        return read_json(self.evaluation_path, "an evaluation")

    def save_evaluation(self, result: dict[str, Any]) -> Path:
        return write_json(self.evaluation_path, result)

    @property
    def report_path(self) -> Path:
        return self.path / REPORT_FILE

    def outputs_complete(self) -> bool:
        """Whether the run has everything its training ends with (best weights and the PNGs)."""
        return self.has_weights() and all(self.figure_path(name).is_file() for name in FIGURES)

    def figure_path(self, name: str) -> Path:
        if name not in FIGURES:
            raise ValueError(f"unknown run figure {name!r}")
        return self.path / f"{name}.png"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / TENSORBOARD_DIR

    def cached(self, name: str, key: dict[str, Any]) -> Any | None:
        """A result saved with save_cache under this name and key (which includes the weights'
        hash, so it goes stale with them); None when absent, stale or unreadable."""
        path = self.path / CACHE_DIR / f"{name}.json"
        try:
            saved = json.loads(path.read_text())
            return saved["value"] if saved.get("key") == {**key, "weights_sha256": self.weights_digest()} else None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
            return None

    def save_cache(self, name: str, key: dict[str, Any], value: Any) -> None:
        write_json(
            self.path / CACHE_DIR / f"{name}.json",
            {"key": {**key, "weights_sha256": self.weights_digest()}, "value": value},
        )


def read_config(path: Path) -> tuple[RunConfig, dict[str, Any]]:
    """(config, info) of a run folder; RunFolderError for anything that is not a vaekit run."""
    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise RunFolderError(f"{path} is not a vaekit run folder (it has no {CONFIG_FILE})")
    d = read_json(file, "the run's config")
    try:
        config = RunConfig.from_dict(d)
    except RunFolderError as e:
        raise not_a_run(file, str(e)) from None
    info = d.get("info", {})
    if not isinstance(info, dict):
        raise not_a_run(file, "its info is not a JSON object")
    return config, info


def load_run(path: str | Path, *, device: str = "cpu") -> Run:
    """The run folder at `path` (see Run)."""
    return Run.open(path, device=device)


def load(path: str | Path, *, which: str = "best", device: str = "cpu") -> VAE:
    """A trained model from a run folder, in eval mode: a shortcut for load_run(path).model
    (which="last": the checkpoint's weights)."""
    return Run.open(path, device=device).load_model(which, device=device)
