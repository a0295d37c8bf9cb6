"""The one home of "run this model for inference": eval mode and no gradients, with the
model's previous mode restored afterwards (a model in training stays in training)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch

F = TypeVar("F", bound=Callable)


@contextlib.contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def in_eval_mode(fn: F) -> F:
    """Decorate fn(model, ...) to run under `evaluating(model)`."""

    @functools.wraps(fn)
    def wrapper(model, *args, **kwargs):
        with evaluating(model):
            return fn(model, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
