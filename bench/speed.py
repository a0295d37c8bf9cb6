"""Speed benchmark: the same architecture on the same data with vaekit, pythae and the classic
PyTorch example loop, interleaved epoch by epoch so that the machine's load falls on all of them alike.

    bash bench/setup.sh                                    # once: bench/.venv-peers
    bench/.venv-peers/bin/python bench/speed.py            # defaults: both cases, 10 epochs, 2 rounds
    bench/.venv-peers/bin/python bench/speed.py --cases mlp --epochs 5 --rounds 1 --write BENCHMARKS.md
    .venv/bin/python bench/speed.py --cases mlp --contenders vaekit,vaekit@cdfc92c,classic   # no peers needed

How contenders run: every contender, and the matmul probe, runs in its own fresh process
(`speed.py --child ...`) and trains on that process's main thread; nothing trains on a worker
thread (on some CPUs the same PyTorch loop runs 35-40% slower on one). The parent steps the
children over stdin/stdout, one JSON line per answer: epoch e of every contender in a rotating
order, then epoch e+1. A child pauses between epochs inside the per-epoch callback its library
already offers (vaekit's fit callbacks, pythae's TrainingCallback.on_epoch_end, the classic
loop's own loop), which runs on the main thread: it writes the epoch's seconds to stdout and
then blocks reading the parent's next command from stdin ("epoch": return and train on;
"finish": evaluate, report, and end training by raising from the callback). The pause lies
outside the training loop each library times, so the waiting is never counted.

vaekit@REV (e.g. vaekit@cdfc92c, vaekit-bf16@HEAD~1): that vaekit contender on vaekit as it was
at git revision REV, to show before and after a change in one run. The parent makes a git
worktree of REV once, bench/out/rev-REV (`git worktree add --detach`; reused afterwards, and
moved to REV's commit should REV name another one by then), and starts the child with the
worktree's src/ first on PYTHONPATH: `import vaekit` there is the old code, while the benchmark
code (bench/contenders.py, which drives both vaekit layouts through one adapter) is today's.
The child checks that it really imported the worktree's vaekit. In the table, that row's
"vaekit speed-up" is today's vaekit over the old one.

Reports per contender: images/s (median over the epochs after the first, all rounds), peak
resident memory of its process (and its growth during training), and the test -ELBO (nats
per example, Bernoulli) after the same number of epochs; for the MLP also the fraction of
the matmul roofline (the same script times a 4096x4096 float32 matmul just before).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
MARK_BEGIN, MARK_END = "<!-- speed:begin -->", "<!-- speed:end -->"


def _rss_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process, MiB (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets VmHWM to the current RSS."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


# -- the child's side of the protocol ------------------------------------------------------------------


class Stop(BaseException):
    """Raised from a contender's on_epoch callback to end its training where it stands (a
    BaseException, so that no library's `except Exception` swallows it)."""


def say(obj) -> None:
    """One answer to the parent: a JSON line on stdout."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def read_command() -> str | None:
    """The parent's next command (blocks until it comes); None when the parent closed stdin."""
    line = sys.stdin.readline()
    return line.strip() if line else None


def on_main_thread() -> None:
    """Every contender trains on its process's main thread; a callback that finds itself
    elsewhere means a library moved training to a thread, which this benchmark must not time."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("a contender's per-epoch callback ran off the main thread")


def check_vaekit_source(contender: str) -> dict:
    """For vaekit@REV: make sure `import vaekit` found the worktree's code, not this tree's."""
    import contenders as C

    _, rev = split_rev(contender)
    where = {"vaekit_api": C.vaekit_api(), "vaekit_source": C.vaekit_source()}
    if rev is not None and not Path(where["vaekit_source"]).is_relative_to(rev_path(rev).resolve()):
        raise SystemExit(f"{contender}: imported vaekit from {where['vaekit_source']}, not from {rev_path(rev)}")
    return where


def child(contender: str, case: str, epochs: int, seed: int) -> None:
    """One contender in this (fresh) process, stepped by the parent over stdin/stdout: the
    first "epoch" starts training; after each epoch the contender's callback answers
    {"epoch", "seconds"} and waits for the next command: "epoch" trains one more, "finish"
    answers the test -ELBO and memory and ends training. The parent runs the contenders' epochs
    in turn, so slow and busy spells of a shared machine fall on all of them."""
    import contenders as C
    import torch

    if contender == "matmul":
        for line in sys.stdin:
            if line.strip() == "finish":
                return
            say(
                {
                    "gflops": C.matmul_gflops(repeats=3),
                    "adam_ms": C.adam_step_ms(),
                    "step_matmuls_ms": C.step_matmuls_ms(),
                }
            )
        return
    base, _ = split_rev(contender)
    source = check_vaekit_source(contender)
    splits = C.load_splits()
    _reset_peak_rss()  # loading the data peaks higher than training; measure from here
    rss_before = _rss_mib("VmRSS")
    extra = {"output_dir": f"/tmp/pythae-bench-{os.getpid()}"} if base.startswith("pythae") else {}
    say({"ready": True, **source})
    if read_command() != "epoch":
        return

    def on_epoch(epoch: int, seconds: float, handle) -> None:
        on_main_thread()
        say({"epoch": epoch, "seconds": seconds})
        command = read_command()  # the pause: blocks until the parent wants the next epoch
        if command == "epoch":
            return
        if command == "finish":
            peak = _rss_mib("VmHWM")
            say(
                {
                    "test_nelbo": C.test_nelbo(handle, splits.test.x),
                    "n_train": len(splits.train),
                    "peak_rss_mib": peak,
                    "rss_growth_mib": peak - rss_before,
                    "threads": torch.get_num_threads(),
                    **({"vaekit_source": source["vaekit_source"]} if base.startswith("vaekit") else {}),
                }
            )
        raise Stop  # "finish", or the parent is gone

    try:
        C.CONTENDERS[base](splits, case, epochs=epochs, seed=seed, on_epoch=on_epoch, **extra)
    except Stop:
        return
    raise SystemExit(f"{contender} ended its training before the parent's last command")


# -- the parent's side ----------------------------------------------------------------------------------


def split_rev(name: str) -> tuple[str, str | None]:
    """ "vaekit@cdfc92c" -> ("vaekit", "cdfc92c"); "pythae" -> ("pythae", None)."""
    base, at, rev = name.partition("@")
    return base, (rev if at else None)


def rev_path(rev: str) -> Path:
    """Where the worktree of revision rev lives: bench/out/rev-REV."""
    return HERE / "out" / ("rev-" + re.sub(r"[^A-Za-z0-9._-]", "_", rev))


def _git(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)


def rev_worktree(rev: str) -> Path:
    """A detached git worktree of revision rev in bench/out/rev-REV: made when missing, reused
    otherwise (and moved to rev's commit if rev names another commit now, e.g. HEAD)."""
    found = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    commit = found.stdout.strip()
    if found.returncode != 0 or not commit:
        raise SystemExit(f"vaekit@{rev}: {rev!r} is not a revision of the git repository {ROOT}")
    path = rev_path(rev)
    path.parent.mkdir(parents=True, exist_ok=True)
    if (path / ".git").exists():
        if _git("rev-parse", "HEAD", cwd=path).stdout.strip() != commit:
            moved = _git("checkout", "--detach", "--quiet", commit, cwd=path)
            if moved.returncode != 0:
                raise SystemExit(f"could not move {path} to {rev} ({commit[:12]}): {moved.stderr.strip()}")
    else:
        made = _git("worktree", "add", "--detach", "--quiet", str(path), commit)
        if made.returncode != 0 and "already registered" in made.stderr:  # its folder was deleted
            made = _git("worktree", "add", "--force", "--detach", "--quiet", str(path), commit)
        if made.returncode != 0:
            raise SystemExit(f"git worktree add {path} {rev} failed: {made.stderr.strip()}")
    if not (path / "src" / "vaekit" / "__init__.py").exists():
        raise SystemExit(f"{rev} ({commit[:12]}) has no src/vaekit/__init__.py to import")
    return path


def child_env(contender: str) -> dict[str, str] | None:
    """The environment of a contender's process: for NAME@REV, REV's worktree's src/ first on
    PYTHONPATH (ahead of this tree's editable install); None (inherit) otherwise."""
    _, rev = split_rev(contender)
    if rev is None:
        return None
    src = str(rev_worktree(rev) / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}


class Child:
    """A contender process kept alive across epochs."""

    def __init__(self, args: list[str], log, script: str = __file__, env: dict[str, str] | None = None):
        cmd = [sys.executable, script, "--child", *args]
        if env is not None and env.get("PYTHONPATH") != os.environ.get("PYTHONPATH"):
            log.write(f"$ PYTHONPATH={shlex.quote(env['PYTHONPATH'])} {shlex.join(cmd)}\n")
        else:
            log.write(f"$ {shlex.join(cmd)}\n")
        log.flush()
        self.log = log
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env)

    def ask(self, command: str | None) -> dict:
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"a benchmark child died; see {self.log.name}")
        answer = json.loads(line)
        self.log.write(json.dumps(answer) + "\n")
        self.log.flush()
        return answer

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait(timeout=600)


def run_case(case: str, contenders: list[str], epochs: int, seed: int, log, t0: float) -> list[dict]:
    """All contenders of one case side by side: epoch e of each, in rotating order, then e+1."""
    kids = {name: Child([name, case, str(epochs), str(seed)], log, env=child_env(name)) for name in contenders}
    for kid in kids.values():
        kid.ask(None)  # wait until its data is loaded
    matmul = Child(["matmul", case, "0", "0"], log) if case == "mlp" else None
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    gflops: list[dict] = []
    for e in range(epochs):
        order = contenders[e % len(contenders) :] + contenders[: e % len(contenders)]
        if matmul is not None:
            gflops.append(matmul.ask("go"))
        for name in order:
            seconds[name].append(kids[name].ask("epoch")["seconds"])
        print(
            f"[{time.time() - t0:6.0f}s] {case} epoch {e + 1}: "
            + ", ".join(f"{name} {54000 / seconds[name][-1]:,.0f} img/s" for name in contenders),
            flush=True,
        )
    results = []
    for name, kid in kids.items():
        final = kid.ask("finish")
        kid.close()
        n = final["n_train"]
        results.append(
            {
                "contender": name,
                "case": case,
                "epochs": epochs,
                "seed": seed,
                "images_per_s": [n / s for s in seconds[name]],
                **final,
            }
        )
    if matmul is not None:
        matmul.proc.stdin.write("finish\n")
        matmul.close()
        results += [{"contender": "matmul", **g} for g in gflops]
    return results


def summarize(results: list[dict], contenders: list[str], cases: list[str]) -> dict:
    import contenders as C

    summary: dict = {}
    gflops = [r["gflops"] for r in results if r["contender"] == "matmul"]
    adam_ms = [r["adam_ms"] for r in results if r["contender"] == "matmul" and "adam_ms" in r]
    step_mm_ms = [r["step_matmuls_ms"] for r in results if r["contender"] == "matmul" and "step_matmuls_ms" in r]
    flops = C.mlp_train_flops_per_image()
    for case in cases:
        rows = {}
        for name in contenders:
            runs = [r for r in results if r.get("case") == case and r["contender"] == name]
            if not runs:
                continue
            speeds = [v for r in runs for v in r["images_per_s"][1:]] or [v for r in runs for v in r["images_per_s"]]
            rows[name] = {
                "images_per_s": statistics.median(speeds),
                "test_nelbo": statistics.mean(r["test_nelbo"] for r in runs),
                "test_nelbo_by_seed": {r["seed"]: r["test_nelbo"] for r in runs},
                "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
                "rss_growth_mib": max(r["rss_growth_mib"] for r in runs),
                "runs": len(runs),
                "epochs": runs[0]["epochs"],
                "threads": runs[0]["threads"],
            }
        summary[case] = rows
    if gflops:
        g = statistics.median(gflops)
        summary["roofline"] = {
            "matmul_gflops": g,
            "flops_per_image": flops,
            "roofline_images_per_s": {k: g * 1e9 / v for k, v in flops.items()},
        }
        if adam_ms:
            ms = statistics.median(adam_ms)
            summary["roofline"]["adam_step_ms"] = ms
            # per image at batch 128: matmuls at the big matmul's rate + the optimizer step alone
            summary["roofline"]["bound_images_per_s"] = 1 / (flops["exact"] / (g * 1e9) + ms / 1e3 / 128)
            if step_mm_ms:  # the step's own matmuls at their shapes, plus the update: a ceiling for any loop
                mm = statistics.median(step_mm_ms)
                summary["roofline"]["step_matmuls_ms"] = mm
                summary["roofline"]["ceiling_images_per_s"] = 128 / ((mm + ms) / 1e3)
    return summary


START_LOAD = os.getloadavg()[0]  # the 1-minute load average when the benchmark started


def machine_load() -> str:
    return (
        f"load average {START_LOAD:.1f} at the start (above 0.5 means other work shared the "
        f"cores: then only the ratios are meaningful)"
    )


def table(summary: dict, command: str, title: str = "Speed: vaekit vs pythae vs the classic PyTorch loop") -> str:
    lines = [
        f"## {title} (Fashion-MNIST, CPU)",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
        f"({machine_load()}), "
        f"torch {__import__('torch').__version__}, float32.",
        "images/s: median over the epochs after the first, over all rounds; -ELBO: test split, nats per",
        "example, Bernoulli likelihood, one posterior sample, after the same epochs; memory: peak",
        "resident set of the contender's own process (growth during training in brackets).",
        "",
    ]
    for case, rows in summary.items():
        if case == "roofline" or not rows:
            continue
        ref = rows.get("vaekit", {}).get("images_per_s")
        lines += [
            f"### {case}: {'MLP 784-400-20' if case == 'mlp' else 'conv 32/64, latent 16'}, Adam 1e-3, batch 128, "
            f"{next(iter(rows.values()))['epochs']} epochs",
            "",
            "| contender | images/s | vaekit speed-up | test -ELBO (nats) | peak RSS MiB (growth) |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, r in rows.items():
            ratio = f"{ref / r['images_per_s']:.2f}x" if ref else "-"
            if name.startswith("vaekit-"):  # vaekit's options: its own speed-up over pythae instead
                ratio = (
                    f"({r['images_per_s'] / rows['pythae']['images_per_s']:.2f}x pythae)" if "pythae" in rows else "-"
                )
            lines.append(
                f"| {name} | {r['images_per_s']:,.0f} | {ratio if name != 'vaekit' else '1.00x'} | "
                f"{r['test_nelbo']:.2f} | {r['peak_rss_mib']:.0f} ({r['rss_growth_mib']:+.0f}) |"
            )
        lines.append("")
        lines += seed_comparison(rows)
    roof = summary.get("roofline")
    import contenders as C

    C_PARAMS = C.MLP_PARAMS
    if roof and "mlp" in summary and "vaekit" in summary["mlp"]:
        v = summary["mlp"]["vaekit"]["images_per_s"]
        f = roof["flops_per_image"]
        ri = roof["roofline_images_per_s"]
        lines += [
            "### Matmul roofline (MLP)",
            "",
            f"A 4096x4096 float32 matmul runs at {roof['matmul_gflops']:.0f} GFLOP/s here (median of the rounds). "
            f"One training step costs {f['exact'] / 1e6:.2f} MFLOP of matmuls per image (forward, weight "
            f"gradients, input gradients except the data's; {f['convention_6n'] / 1e6:.2f} MFLOP by the 6N convention), "
            f"so the roofline is {ri['exact']:,.0f} images/s ({ri['convention_6n']:,.0f} by 6N). "
            f"vaekit reaches {v:,.0f} images/s: **{v / ri['exact']:.0%}** of the exact roofline "
            f"({v / ri['convention_6n']:.0%} by 6N). torch threads: {summary['mlp']['vaekit']['threads']}.",
        ]
        if "bound_images_per_s" in roof:
            b = roof["bound_images_per_s"]
            lines.append(
                f"Matmuls are not all a step must do: the fused Adam update alone takes {roof['adam_step_ms']:.2f} ms "
                f"per step here (memory traffic, 28 bytes per parameter, {C_PARAMS:,} parameters). Matmuls at the "
                f"big matmul's rate plus that update bound the MLP at {b:,.0f} images/s, of which vaekit reaches "
                f"**{v / b:.0%}**."
            )
        if "ceiling_images_per_s" in roof:
            c, mm = roof["ceiling_images_per_s"], roof["step_matmuls_ms"]
            lines.append(
                f"The step's own matmuls, timed alone at their shapes (batch 128: forward, input and weight "
                f"gradients), take {mm:.2f} ms: {f['exact'] * 128 / (mm / 1e3) / 1e9:.0f} GFLOP/s, "
                f"{f['exact'] * 128 / (mm / 1e3) / 1e9 / roof['matmul_gflops']:.0%} of the big matmul's rate. "
                f"With the Adam update added, no training loop can exceed {c:,.0f} images/s here, "
                f"**{c / ri['exact']:.0%} of the roofline**; vaekit reaches **{v / c:.0%}** of that ceiling."
            )
        vc = summary["mlp"].get("vaekit-compile", {}).get("images_per_s")
        if vc:
            lines.append(
                f"With `--compile` (also float32): {vc:,.0f} images/s, {vc / ri['exact']:.0%} "
                f"({vc / ri['convention_6n']:.0%} by 6N)."
            )
        lines.append("")
    return "\n".join(lines)


def seed_comparison(rows: dict) -> list[str]:
    """With several rounds (seed = round): each contender's test -ELBO per seed and its paired
    difference to vaekit's (mean and standard error over the seeds)."""
    mine = rows.get("vaekit", {}).get("test_nelbo_by_seed", {})
    if len(mine) < 2:
        return []
    lines = [
        f"Test -ELBO per seed ({', '.join(str(k) for k in sorted(mine))}) and the difference to vaekit, "
        "paired by seed (mean +- standard error; negative: the contender is better):",
        "",
    ]
    for name, r in rows.items():
        by_seed = r["test_nelbo_by_seed"]
        seeds = sorted(set(by_seed) & set(mine))
        text = f"- {name}: " + " / ".join(f"{by_seed[k]:.2f}" for k in sorted(by_seed))
        if name != "vaekit" and len(seeds) >= 2:
            d = [by_seed[k] - mine[k] for k in seeds]
            se = statistics.stdev(d) / math.sqrt(len(d))
            text += f"; minus vaekit: {statistics.mean(d):+.2f} +- {se:.2f} nats"
        lines.append(text)
    return lines + [""]


def write_section(path: Path, text: str, begin: str = MARK_BEGIN, end: str = MARK_END) -> None:
    block = f"{begin}\n{text}\n{end}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if begin in old and end in old:
        new = old[: old.index(begin)] + block + old[old.index(end) + len(end) + 1 :]
    else:
        new = old.rstrip("\n") + "\n\n" + block
    path.write_text(new)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", nargs=4, metavar=("CONTENDER", "CASE", "EPOCHS", "SEED"), help=argparse.SUPPRESS)
    p.add_argument("--cases", default="mlp,conv")
    p.add_argument(
        "--contenders",
        default="vaekit,pythae,classic,vaekit-bf16,vaekit-compile",
        help="comma-separated: vaekit, vaekit-bf16, vaekit-compile (vaekit with --precision bf16 / "
        "--compile), pythae, classic; NAME@REV (e.g. vaekit@cdfc92c) runs a vaekit contender "
        "on vaekit at git revision REV (worktree bench/out/rev-REV)",
    )
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--conv-epochs", type=int, default=None, help="epochs for the conv case (default: --epochs)")
    p.add_argument("--rounds", type=int, default=2, help="each contender runs this many times, alternating")
    p.add_argument("--first-seed", type=int, default=0, help="round r trains with seed first_seed + r")
    p.add_argument(
        "--also", default=None, help="a results JSON of an earlier run (other seeds) to summarize with this one"
    )
    p.add_argument("--out", default=str(HERE / "out" / "speed.json"))
    p.add_argument("--log", default=str(HERE / "out" / "speed.log"))
    p.add_argument("--write", default=None, help="write the table into this Markdown file (e.g. BENCHMARKS.md)")
    p.add_argument("--section", default="speed", help="name of the section to (re)write in that file")
    p.add_argument("--title", default="Speed: vaekit vs pythae vs the classic PyTorch loop")
    a = p.parse_args()
    if a.child:
        name, case, epochs, seed = a.child
        child(name, case, int(epochs), int(seed))
        return
    cases, contenders = a.cases.split(","), a.contenders.split(",")
    import contenders as C

    def known(name: str) -> bool:  # a registered contender; @REV only for vaekit's
        base, rev = split_rev(name)
        return base in C.CONTENDERS and (rev is None or (bool(rev) and base.startswith("vaekit")))

    unknown = [n for n in contenders if not known(n)]
    if unknown:
        raise SystemExit(
            f"unknown contenders {unknown}; choose from {', '.join(C.CONTENDERS)} "
            "(and vaekit...@REV for vaekit at a git revision)"
        )
    bad_cases = [c for c in cases if c not in C.CASES]
    if bad_cases:
        raise SystemExit(f"unknown cases {bad_cases}; choose from {', '.join(C.CASES)}")
    for path in (Path(a.out), Path(a.log)):  # a fresh clone has no bench/out
        path.parent.mkdir(parents=True, exist_ok=True)
    for name in contenders:  # make the worktrees once, before any child starts
        child_env(name)
    results: list[dict] = []
    t0 = time.time()
    with open(a.log, "a") as log:
        for rnd in range(a.rounds):
            for case in cases:
                epochs = a.conv_epochs if (case == "conv" and a.conv_epochs) else a.epochs
                order = contenders[rnd % len(contenders) :] + contenders[: rnd % len(contenders)]
                results += run_case(case, order, epochs, a.first_seed + rnd, log, t0)
                Path(a.out).write_text(json.dumps(results, indent=1))
    if a.also:
        results = json.loads(Path(a.also).read_text()) + results
    summary = summarize(results, contenders, cases)
    Path(a.out).with_suffix(".summary.json").write_text(json.dumps(summary, indent=1))
    command = "bench/.venv-peers/bin/python bench/speed.py " + shlex.join(sys.argv[1:])
    text = table(summary, command, a.title)
    print(text)
    if a.write:
        write_section(Path(a.write), text, f"<!-- {a.section}:begin -->", f"<!-- {a.section}:end -->")


if __name__ == "__main__":
    main()
