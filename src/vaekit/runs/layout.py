"""The names of everything vaekit writes into a run folder, in one place (see run.py for what
each holds). --overwrite removes exactly these and nothing else."""

from __future__ import annotations

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
CHECKPOINT_FILE = "checkpoint.safetensors"
METRICS_FILE = "metrics.jsonl"
EVALUATION_FILE = "evaluation.json"
REPORT_FILE = "report.html"
LOCK_FILE = ".vaekit.lock"
FIGURES = ("reconstructions", "samples", "loss_curves", "latent_scatter")
LEGACY_FILES = ("sweep_eval.json",)  # written by vaekit before the run layer

PRIOR_DIR = "priors"
PRIOR_FILES = {"default.json", "gmm.json", "gmm.safetensors", "vae.json", "vae.safetensors", "vae-codes.npz"}
STAGE_TWO_DIR = "vae"  # inside priors/: the second-stage VAE's own run folder
BACKGROUND_DIR = "background"  # a run folder
TENSORBOARD_DIR = "tensorboard"
CACHE_DIR = "cache"

OWN_FILES = {
    CONFIG_FILE,
    MODEL_FILE,
    CHECKPOINT_FILE,
    METRICS_FILE,
    EVALUATION_FILE,
    REPORT_FILE,
    LOCK_FILE,
    *(f"{name}.png" for name in FIGURES),
    *LEGACY_FILES,
}


def is_event_file(name: str) -> bool:
    return name.startswith("events.out.tfevents.")
