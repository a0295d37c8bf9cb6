"""Run folders: the one layer that knows what is inside one.

run       Run (config, info, weights, checkpoint, metrics, data, priors, background model,
          evaluation, caches), load_run, load
train     train_run (config + splits, in memory or not) and train (options by name)
setup     options and data -> RunConfig; what a resume may change
writer    the training callback that writes the folder     figures  the run's PNGs
checkpoint, priors, files, folder, layout: how and where things are stored
"""

from .run import Run, load, load_run
from .train import train, train_run

__all__ = ["Run", "load", "load_run", "train", "train_run"]
