"""Training: the loop (fit) and what it is made of. Takes a model, an objective, data and a
TrainConfig; writes nothing itself (callbacks do: vaekit.runs.writer writes the run folder).

  loop        fit and its named steps        callbacks  progress, per-epoch hooks, TensorBoard
  guard       the non-finite guard           schedules  learning rate and the run's plan
  state       checkpointable training state  validation the objective on a whole dataset
  precision   autocast and gradient scaling  devices    --device, host syncs
  distributed torchrun / DDP                 denormals  flush-to-zero on every CPU thread
  adversarial the VAE-GAN step (--adversarial) optim     Adam, gradient norm, a vetoable step
"""

from .callbacks import Callback, EveryEpoch, Progress, TensorBoard
from .devices import resolve_device
from .loop import Loop, fit
from .state import TrainingState
from .validation import evaluate_loss

__all__ = [
    "Callback",
    "EveryEpoch",
    "Loop",
    "Progress",
    "TensorBoard",
    "TrainingState",
    "evaluate_loss",
    "fit",
    "resolve_device",
]
