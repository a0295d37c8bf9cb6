"""Time to quality: each contender, with its own recommended settings for Fashion-MNIST, gets
the same wall-clock budget (all it does in its epochs: training, its own validation; not our test
evaluation), and we report the best test -ELBO it reached and the test NLL of its final model.

    bench/.venv-peers/bin/python bench/quality.py --budget 300 --write BENCHMARKS.md

Contenders (one process each, training on its main thread; the one that has used the least of
its budget trains next, paused in between inside its own per-epoch callback, as in speed.py):
  vaekit          `vaekit train --data fashion-mnist --time-limit BUDGET`: vaekit's defaults (for
                  28x28 images the MLP 512-256, latent 16; Adam 2e-3, batch 128, fp32; under the
                  time limit the default schedule is the cosine ending with the budget), told the budget
  pythae          its README's VAE recipe for 28x28 images (see contenders.train_pythae_readme),
                  with the Bernoulli (bce) reconstruction loss
  classic         PyTorch's VAE example: MLP 784-400-20, Adam 1e-3, batch 128
  (more in recipes(): vaekit-conv, vaekit-bf16, vaekit-constant, vaekit-before, ... for exploring defaults)
  NAME@REV        a vaekit recipe on vaekit at git revision REV (worktree bench/out/rev-REV, see speed.py),
                  e.g. vaekit@cdfc92c; it runs that revision's own defaults
Measures, the same evaluator for all: the test -ELBO after every epoch (nats per example, Bernoulli
likelihood, one posterior sample, fixed noise; an upper bound on the NLL), and at the end the
test NLL of each final model by vaekit.metrics.iwae_log_likelihood (k importance samples on the
first --iw-examples test images, the same images and noise for everyone; see
contenders.HandleAsModel).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from speed import (  # noqa: E402
    Child,
    Stop,
    check_vaekit_source,
    child_env,
    machine_load,
    on_main_thread,
    read_command,
    say,
    split_rev,
    write_section,
)


def recipes(budget: float):
    """name -> (train(splits, epochs=, seed=, ...) -> epoch iterator, recipe text for the table).
    vaekit's rows run its defaults (lr, schedule, epochs) and are told the budget through
    `time_limit`, as a user with a budget would: the cosine schedule then ends when the time does."""
    import contenders as C

    T = C.vaekit_train_defaults()

    def vaekit(case="defaults", **options):
        def train(s, *, epochs, **k):
            return C.train_vaekit(
                s,
                case,
                epochs=T.epochs,
                lr=T.lr,
                batch_size=T.batch_size,
                **{"time_limit": budget, "lr_schedule": T.lr_schedule, **options},
                **k,
            )

        return train

    schedule = "cosine" if T.lr_schedule == "auto" else T.lr_schedule  # vaekit's "auto" under a time limit
    defaults = f"Adam {T.lr:g}, {schedule} schedule, batch {T.batch_size}, {T.precision}"
    return {
        "vaekit": (vaekit(), f"defaults (for 28x28: MLP 512-256, latent 16; {defaults}), `--time-limit {budget:g}`"),
        "vaekit-notl": (vaekit(time_limit=None), "defaults, not told the budget (a constant rate for 30 epochs)"),
        "vaekit-constant": (
            vaekit(lr_schedule="constant", time_limit=None),
            "defaults, but a constant rate and no time limit",
        ),
        "vaekit-bf16": (vaekit(precision="bf16"), "the same as vaekit + `--precision bf16`"),
        "vaekit-conv": (vaekit("conv"), "`--arch conv` (32/64, latent 16: the default of before), `--time-limit`"),
        "vaekit-conv-bf16": (vaekit("conv", precision="bf16"), "`--arch conv --precision bf16`, `--time-limit`"),
        # the defaults of before: conv, constant rate, no time limit
        "vaekit-before": (
            vaekit("conv", lr_schedule="constant", time_limit=None),
            "the defaults before this change: conv 32/64, constant rate",
        ),
        "pythae": (
            lambda s, **k: C.train_pythae_readme(s, **k),
            "README recipe: MLP 512, latent 10, AdamW 1e-3, batch 200, plateau LR; bce",
        ),
        "classic": (
            lambda s, **k: C.train_classic(s, "mlp", lr=1e-3, batch_size=128, **k),
            "PyTorch example: MLP 400, latent 20, Adam 1e-3, batch 128",
        ),
    }


def child(name: str, max_epochs: int, seed: int, budget: float, iw_samples: int, iw_examples: int) -> None:
    """Stepped by the parent: "epoch" -> one epoch, answering its wall time and the test -ELBO
    ({"done": true} when the contender has ended its run by itself). The contender trains on
    this process's main thread and waits for the next command inside its per-epoch callback."""
    import contenders as C

    base, _ = split_rev(name)
    source = check_vaekit_source(name)
    splits = C.load_splits()
    extra = {"output_dir": f"/tmp/pythae-quality-{os.getpid()}"} if base.startswith("pythae") else {}
    train = recipes(budget)[base][0]
    say({"ready": True, **source})
    last: dict = {"handle": None}
    if read_command() == "epoch":
        t0 = time.perf_counter()

        def on_epoch(epoch: int, _seconds: float, handle) -> None:
            nonlocal t0
            on_main_thread()
            wall = time.perf_counter() - t0  # all the contender did in this epoch, its validation included
            last["handle"] = handle
            say({"epoch": epoch, "wall": wall, "test_nelbo": C.test_nelbo(handle, splits.test.x)})
            if read_command() != "epoch":  # the parent closed our stdin: stop here, score the final model
                raise Stop
            t0 = time.perf_counter()

        try:
            train(splits, epochs=max_epochs, seed=seed, on_epoch=on_epoch, **extra)
            say({"done": True})  # ended its run by itself with an "epoch" asked for (vaekit's time limit)
            while read_command() == "epoch":
                say({"done": True})
        except Stop:
            pass
    handle = last["handle"]
    if handle is not None and iw_samples > 0:  # the parent closed our stdin: score the final model
        x = splits.test.x[:iw_examples]
        say({"iwae_nll": C.test_iwae_nll(handle, x, k=iw_samples), "iw_samples": iw_samples, "iw_examples": len(x)})
    os._exit(0)  # leave the contenders' loops where they stand


def table(results: dict, final: dict, budget: float, command: str, recipe: dict) -> str:
    import platform

    best = {n: min(r["test_nelbo"] for r in rows) if rows else float("nan") for n, rows in results.items()}
    nll = {n: final.get(n, {}).get("iwae_nll", float("nan")) for n in results}
    ref = "vaekit" if "vaekit" in results else None
    some = next(iter(final.values()), {})
    iw = f"k = {some['iw_samples']}, first {some['iw_examples']:,} test images" if some else "not run"
    lines = [
        f"## Time to quality: best test -ELBO and NLL within {budget:.0f} s of training (Fashion-MNIST, CPU)",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {machine_load()}; "
        f"torch threads as the machine sets them. Each contender trains with its own recommended "
        f"settings until its cumulative wall-clock (all it does in its epochs, its own validation included; "
        f"our test evaluation excluded) passes the budget; the contender with the least budget used trains next. "
        f"vaekit is told the budget (`--time-limit`) and ends its run inside it, the others overrun it by "
        f"part of their last epoch. -ELBO: test split, nats per example, Bernoulli likelihood, one posterior "
        f"sample, best over the epochs. NLL: the final model's -log p(x) by vaekit.metrics.iwae_log_likelihood "
        f"({iw}; the same images and noise for every contender), nats per example.",
        "",
        "| contender | recipe | epochs in budget | seconds used | best test -ELBO | vs vaekit | final test NLL (IWAE) | vs vaekit |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rows in results.items():
        used = sum(r["wall"] for r in rows)
        d_elbo = f"{best[name] - best[ref]:+.2f}" if ref and name != ref else "-"
        d_nll = f"{nll[name] - nll[ref]:+.2f}" if ref and name != ref else "-"
        lines.append(
            f"| {name} | {recipe.get(name, '')} | {len(rows)} | {used:.0f} | {best[name]:.2f} | {d_elbo} "
            f"| {nll[name]:.2f} | {d_nll} |"
        )
    lines.append("")
    lines.append(
        "Per-epoch test -ELBO (cumulative seconds): "
        + "; ".join(
            f"{name}: " + ", ".join(f"{r['test_nelbo']:.1f} ({r['cum']:.0f}s)" for r in rows)
            for name, rows in results.items()
        )
        + "."
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    p.add_argument("--budget", type=float, default=300.0, help="seconds of training per contender")
    p.add_argument("--contenders", default="vaekit,pythae,classic")
    p.add_argument("--max-epochs", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iw-samples", type=int, default=100, help="importance samples of the final NLL (0: skip it)")
    p.add_argument("--iw-examples", type=int, default=2000, help="test images the final NLL is computed on")
    p.add_argument("--out", default=str(HERE / "out" / "quality.json"))
    p.add_argument("--log", default=str(HERE / "out" / "quality.log"))
    p.add_argument("--write", default=None)
    p.add_argument("--section", default="quality", help="BENCHMARKS.md section marker name")
    a = p.parse_args()
    if a.child:
        name, max_epochs, seed, budget, iw_samples, iw_examples = a.child
        child(name, int(max_epochs), int(seed), float(budget), int(iw_samples), int(iw_examples))
        return
    names = a.contenders.split(",")
    recipe = {n: text for n, (_, text) in recipes(a.budget).items()}

    def known(name: str) -> bool:  # a recipe; @REV only for vaekit's
        base, rev = split_rev(name)
        return base in recipe and (rev is None or (bool(rev) and base.startswith("vaekit")))

    unknown = [n for n in names if not known(n)]
    if unknown:
        raise SystemExit(
            f"unknown contenders {unknown}; choose from {', '.join(recipe)} "
            "(and vaekit...@REV for a vaekit recipe at a git revision)"
        )
    for n in names:
        base, rev = split_rev(n)
        if rev is not None:
            recipe[n] = f"{recipe[base]}; vaekit at {rev}, that revision's defaults"
    for path in (Path(a.out), Path(a.log)):  # a fresh clone has no bench/out
        path.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {n: [] for n in names}
    final: dict[str, dict] = {}
    t0 = time.time()
    with open(a.log, "a") as log:
        args = [str(a.max_epochs), str(a.seed), str(a.budget), str(a.iw_samples), str(a.iw_examples)]
        kids = {n: Child([n, *args], log, script=__file__, env=child_env(n)) for n in names}
        for kid in kids.values():
            kid.ask(None)
        used = {n: 0.0 for n in names}
        done: set[str] = set()
        # always step the contender that has used the least of its budget: they move through their
        # budgets together, so a busy or quiet spell of the machine falls on all of them alike
        while True:
            left = [n for n in names if n not in done and used[n] < a.budget and len(results[n]) < a.max_epochs]
            if not left:
                break
            n = min(left, key=lambda k: used[k])
            r = kids[n].ask("epoch")
            if r.get("done"):  # ended its run by itself (vaekit's time limit)
                done.add(n)
                continue
            used[n] += r["wall"]
            results[n].append({**r, "cum": used[n]})
            print(
                f"[{time.time() - t0:6.0f}s] {n} epoch {r['epoch']}: {r['wall']:.0f}s, "
                f"test -ELBO {r['test_nelbo']:.2f} (total {used[n]:.0f}s)",
                flush=True,
            )
            Path(a.out).write_text(json.dumps({"epochs": results, "final": final}, indent=1))
        for n, kid in kids.items():  # one at a time: each scores its final model when its input closes
            kid.proc.stdin.close()
            if a.iw_samples > 0 and results[n]:
                final[n] = kid.ask(None)
                print(f"[{time.time() - t0:6.0f}s] {n} final test NLL {final[n]['iwae_nll']:.2f}", flush=True)
            kid.close()
        Path(a.out).write_text(json.dumps({"epochs": results, "final": final}, indent=1))
    command = "bench/.venv-peers/bin/python bench/quality.py " + shlex.join(sys.argv[1:])
    text = table(results, final, a.budget, command, recipe)
    print(text)
    if a.write:
        write_section(Path(a.write), text, f"<!-- {a.section}:begin -->", f"<!-- {a.section}:end -->")


if __name__ == "__main__":
    main()
