"""One builder for every model kind: a ModelConfig -> the model it describes."""

from __future__ import annotations

from ..config import ModelConfig
from .hvae import HierarchicalVAE
from .model import VAE


def build_model(config: ModelConfig) -> VAE:
    """vae, ae, codec: the flat VAE class; hvae: the hierarchical VAE (a subclass)."""
    if config.kind == "hvae":
        return HierarchicalVAE.from_config(config)
    return VAE.from_config(config)
