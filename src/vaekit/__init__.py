"""vaekit: variational autoencoders you can point at your data.

    run = vaekit.train("digits", out="runs/digits", epochs=20)   # a Run: the run folder
    run = vaekit.load_run("runs/digits")
    run.model.sample(16); run.data().test; run.metrics(); run.prior()
    model = vaekit.load("runs/digits")                           # = load_run(...).model

Layers (each imports only those before it): core (the mathematics) <- data <- training <-
evaluation <- runs <- workflows <- cli / serve; errors, config, atomic and plots are leaves.
"""

__version__ = "0.1.0"

from .config import Capacity, Corruption, DataConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from .core.distributions import DiagonalGaussian, PointMass  # noqa: E402
from .core.model import VAE, ModelOutput  # noqa: E402
from .core.objectives import Objective  # noqa: E402
from .data import Dataset, DataSplits, load_data  # noqa: E402
from .errors import VaekitError  # noqa: E402
from .runs import Run, load, load_run, train, train_run  # noqa: E402
from .training import Callback, fit  # noqa: E402

__all__ = [
    "train",
    "train_run",
    "load",
    "load_run",
    "Run",
    "fit",
    "Callback",
    "Objective",
    "VAE",
    "ModelOutput",
    "DiagonalGaussian",
    "PointMass",
    "ModelConfig",
    "TrainConfig",
    "DataConfig",
    "RunConfig",
    "Capacity",
    "Corruption",
    "DataSplits",
    "Dataset",
    "load_data",
    "VaekitError",
]
