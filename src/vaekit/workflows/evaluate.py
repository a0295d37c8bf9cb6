"""`vaekit evaluate`: every metric of a run on one split, with the run's feature classifier and
its sampling prior, saved in the run (which `vaekit report` reads)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..atomic import write_json
from ..errors import VaekitError
from ..evaluation import classifier as clf
from ..evaluation.evaluate import evaluate
from ..runs import Run


def evaluate_run(
    run: Run, *, prior=None, sample_quality: bool = True, progress: bool = False, **kwargs: Any
) -> dict[str, Any]:
    """vaekit.evaluation.evaluate for the run's model and data, with its feature classifier when
    the data have labels (and sample_quality), its samples drawn from `prior` (None: the run's
    default prior, see Run.prior). kwargs: evaluate's (split, iw_samples, max_examples, ...)."""
    data = run.data()
    if prior is None and sample_quality:
        prior = run.prior()
    t0 = time.perf_counter()
    feature_classifier = None
    if sample_quality and data.has_labels:
        feature_classifier = clf.get_classifier(run.config.data, data, progress=progress)
    seconds = time.perf_counter() - t0
    res = evaluate(
        run.model,
        data,
        classifier=feature_classifier,
        progress=progress,
        prior=prior,
        binarized=run.config.train.binarize == "dynamic",
        name=str(run.path),
        **kwargs,
    )
    if feature_classifier is not None:
        res["seconds"]["classifier"] = seconds  # cached after the first time
    elif sample_quality:
        res["notes"] = [f"{data.name} has no labels, so no feature classifier and no FD"]
    return res


def save_evaluation(run: Run, res: dict[str, Any], *, also: Path | None = None) -> tuple[list[Path], str | None]:
    """Into `also` when given, and into the run (its latest evaluation, which `vaekit report`
    reads) -> (paths written, a note when the run could not take it: a read-only folder).
    VaekitError when neither could be written."""
    written = [write_json(also, res)] if also is not None else []
    try:
        written.append(run.save_evaluation(res))
    except OSError as e:
        if also is None:
            raise VaekitError(
                f"cannot save the evaluation in {run.path} ({e.strerror}); pass --out FILE to write it elsewhere"
            ) from None
        return (
            written,
            f"{run.path} is not writable ({e.strerror}), so `vaekit report` there will not see this evaluation",
        )
    return written, None
