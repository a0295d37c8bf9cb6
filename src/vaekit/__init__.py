"""vaekit: variational autoencoders you can point at your data."""

__version__ = "0.1.0"

from .api import load, load_run_data, train  # noqa: E402
from .config import DataConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from .data import DataSplits, Dataset, load_data  # noqa: E402
from .distributions import DiagonalGaussian, PointMass  # noqa: E402
from .errors import VaekitError  # noqa: E402
from .model import VAE, ModelOutput  # noqa: E402
from .trainer import fit  # noqa: E402

__all__ = [
    "train", "load", "load_run_data", "fit", "VAE", "ModelOutput", "DiagonalGaussian", "PointMass",
    "ModelConfig", "TrainConfig", "DataConfig", "RunConfig", "DataSplits", "Dataset", "load_data",
    "VaekitError",
]  # fmt: skip
