"""Sample quality under each prior and temperature, and conditional accuracy, for trained runs.

    python bench/generation.py --run runs/fmnist --cvae runs/cvae [--n 10000]

For --run: FD (classifier features) between n samples and the first n test examples, with z
drawn from N(0, I) and from every prior fitted with `vaekit fit-prior`, at temperatures 1.0,
0.8 and 0.7. For --cvae: the evaluation classifier's accuracy on n/10 samples of each label.
Prints Markdown tables and the seconds each step took.
"""

from __future__ import annotations

import argparse
import time

import torch

import vaekit
from vaekit.core.sampling import sample
from vaekit.evaluation.classifier import get_classifier
from vaekit.evaluation.sample_quality import feature_frechet_distance


def prior_table(run: str, n: int, temperatures: list[float]) -> None:
    r = vaekit.load_run(run)
    model, data = r.model, r.data()
    t0 = time.perf_counter()
    net = get_classifier(r.config.data, data)
    print(f"classifier ready in {time.perf_counter() - t0:.0f}s ({net.describe()})")
    test = data.test.x[:n]
    print(f"\nFD (classifier features), {n} samples vs {len(test)} test examples, {run}\n")
    print("| prior | " + " | ".join(f"T = {t:g}" for t in temperatures) + " | seconds |")
    print("|---|" + "---|" * (len(temperatures) + 1))
    for kind in ["standard", *r.priors.fitted()]:
        prior = r.prior(kind)
        t0 = time.perf_counter()
        fds = [
            feature_frechet_distance(net, sample(model, n, prior=prior, temperature=t, seed=0), test)
            for t in temperatures
        ]
        print(f"| {kind} | " + " | ".join(f"{v:.2f}" for v in fds) + f" | {time.perf_counter() - t0:.0f} |")


def conditional_accuracy(run: str, n: int) -> None:
    r = vaekit.load_run(run)
    model, data = r.model, r.data()
    net = get_classifier(r.config.data, data)
    k = model.config.num_classes
    per = max(1, n // k)
    t0 = time.perf_counter()
    y = torch.arange(k).repeat_interleave(per)
    x = sample(model, len(y), y=y, seed=0)
    pred = net.predict(x)
    acc = [(pred[y == c] == c).float().mean().item() for c in range(k)]
    names = data.class_names or [str(c) for c in range(k)]
    print(f"\nconditional samples classified as the requested label, {run} ({per} per label, chance {1 / k:.0%})\n")
    print("| label | " + " | ".join(names) + " | all |")
    print("|---|" + "---|" * (k + 1))
    print("| accuracy | " + " | ".join(f"{a:.0%}" for a in acc) + f" | {(pred == y).float().mean():.1%} |")
    print(
        f"\n(classifier on the real test split: {net.meta.get('test_accuracy', float('nan')):.1%}; {time.perf_counter() - t0:.0f}s)"
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run")
    p.add_argument("--cvae")
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--temperatures", default="1,0.8,0.7")
    a = p.parse_args()
    if a.run:
        prior_table(a.run, a.n, [float(t) for t in a.temperatures.split(",")])
    if a.cvae:
        conditional_accuracy(a.cvae, a.n)
