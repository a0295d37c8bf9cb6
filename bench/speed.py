"""Speed benchmark: the same architecture on the same data with vaekit, pythae and the classic
PyTorch example loop, run alternately (one fresh process per run) so the machine's load
falls on all of them alike.

    bash bench/setup.sh                                    # once: bench/.venv-peers
    bench/.venv-peers/bin/python bench/speed.py            # defaults: both cases, 10 epochs, 2 rounds
    bench/.venv-peers/bin/python bench/speed.py --cases mlp --epochs 5 --rounds 1 --write BENCHMARKS.md

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
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
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


def child(contender: str, case: str, epochs: int, seed: int) -> None:
    """One contender in this (fresh) process, stepped by the parent over stdin/stdout: each
    "epoch" line trains one epoch and answers {"seconds": ...}; "finish" answers the test
    -ELBO and memory. The parent runs the contenders' epochs in turn, so slow and busy
    spells of a shared machine fall on all of them."""
    import torch

    import contenders as C

    def say(obj) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    if contender == "matmul":
        for line in sys.stdin:
            if line.strip() == "finish":
                return
            say({"gflops": C.matmul_gflops(repeats=3), "adam_ms": C.adam_step_ms(), "step_matmuls_ms": C.step_matmuls_ms()})
        return
    splits = C.load_splits()
    _reset_peak_rss()  # loading the data peaks higher than training; measure from here
    rss_before = _rss_mib("VmRSS")
    extra = {"output_dir": f"/tmp/pythae-bench-{os.getpid()}"} if contender.startswith("pythae") else {}
    epochs_iter = C.CONTENDERS[contender](splits, case, epochs=epochs, seed=seed, **extra)
    handle = None
    say({"ready": True})
    for line in sys.stdin:
        if line.strip() == "epoch":
            epoch, seconds, handle = next(epochs_iter)
            say({"epoch": epoch, "seconds": seconds})
        elif line.strip() == "finish":
            peak = _rss_mib("VmHWM")
            say({
                "test_nelbo": C.test_nelbo(handle, splits.test.x), "n_train": len(splits.train),
                "peak_rss_mib": peak, "rss_growth_mib": peak - rss_before, "threads": torch.get_num_threads(),
            })  # fmt: skip
            for _ in epochs_iter:  # let the contender's own loop end cleanly
                pass
            return


class Child:
    """A contender process kept alive across epochs."""

    def __init__(self, args: list[str], log, script: str = __file__):
        cmd = [sys.executable, script, "--child", *args]
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        self.log = log
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)

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
    kids = {name: Child([name, case, str(epochs), str(seed)], log) for name in contenders}
    for kid in kids.values():
        kid.ask(None)  # wait until its data is loaded
    matmul = Child(["matmul", case, "0", "0"], log) if case == "mlp" else None
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    gflops: list[dict] = []
    for e in range(epochs):
        order = contenders[e % len(contenders):] + contenders[: e % len(contenders)]
        if matmul is not None:
            gflops.append(matmul.ask("go"))
        for name in order:
            seconds[name].append(kids[name].ask("epoch")["seconds"])
        print(f"[{time.time() - t0:6.0f}s] {case} epoch {e + 1}: " + ", ".join(
            f"{name} {54000 / seconds[name][-1]:,.0f} img/s" for name in contenders), flush=True)  # fmt: skip
    results = []
    for name, kid in kids.items():
        final = kid.ask("finish")
        kid.close()
        n = final["n_train"]
        results.append({"contender": name, "case": case, "epochs": epochs, "seed": seed,
                        "images_per_s": [n / s for s in seconds[name]], **final})  # fmt: skip
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
                "runs": len(runs), "epochs": runs[0]["epochs"], "threads": runs[0]["threads"],
            }  # fmt: skip
        summary[case] = rows
    if gflops:
        g = statistics.median(gflops)
        summary["roofline"] = {
            "matmul_gflops": g, "flops_per_image": flops,
            "roofline_images_per_s": {k: g * 1e9 / v for k, v in flops.items()},
        }  # fmt: skip
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
    return (f"load average {START_LOAD:.1f} at the start (above 0.5 means other work shared the "
            f"cores: then only the ratios are meaningful)")


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
        lines += [f"### {case}: {'MLP 784-400-20' if case == 'mlp' else 'conv 32/64, latent 16'}, Adam 1e-3, batch 128, "
                  f"{next(iter(rows.values()))['epochs']} epochs", "",
                  "| contender | images/s | vaekit speed-up | test -ELBO (nats) | peak RSS MiB (growth) |",
                  "|---|---:|---:|---:|---:|"]  # fmt: skip
        for name, r in rows.items():
            ratio = f"{ref / r['images_per_s']:.2f}x" if ref else "-"
            if name.startswith("vaekit-"):  # vaekit's options: its own speed-up over pythae instead
                ratio = f"({r['images_per_s'] / rows['pythae']['images_per_s']:.2f}x pythae)" if "pythae" in rows else "-"
            lines.append(f"| {name} | {r['images_per_s']:,.0f} | {ratio if name != 'vaekit' else '1.00x'} | "
                         f"{r['test_nelbo']:.2f} | {r['peak_rss_mib']:.0f} ({r['rss_growth_mib']:+.0f}) |")  # fmt: skip
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
            )  # fmt: skip
        if "ceiling_images_per_s" in roof:
            c, mm = roof["ceiling_images_per_s"], roof["step_matmuls_ms"]
            lines.append(
                f"The step's own matmuls, timed alone at their shapes (batch 128: forward, input and weight "
                f"gradients), take {mm:.2f} ms: {f['exact'] * 128 / (mm / 1e3) / 1e9:.0f} GFLOP/s, "
                f"{f['exact'] * 128 / (mm / 1e3) / 1e9 / roof['matmul_gflops']:.0%} of the big matmul's rate. "
                f"With the Adam update added, no training loop can exceed {c:,.0f} images/s here, "
                f"**{c / ri['exact']:.0%} of the roofline**; vaekit reaches **{v / c:.0%}** of that ceiling."
            )  # fmt: skip
        vc = summary["mlp"].get("vaekit-compile", {}).get("images_per_s")
        if vc:
            lines.append(f"With `--compile` (also float32): {vc:,.0f} images/s, {vc / ri['exact']:.0%} "
                         f"({vc / ri['convention_6n']:.0%} by 6N).")  # fmt: skip
        lines.append("")
    return "\n".join(lines)


def seed_comparison(rows: dict) -> list[str]:
    """With several rounds (seed = round): each contender's test -ELBO per seed and its paired
    difference to vaekit's (mean and standard error over the seeds)."""
    mine = rows.get("vaekit", {}).get("test_nelbo_by_seed", {})
    if len(mine) < 2:
        return []
    lines = [f"Test -ELBO per seed ({', '.join(str(k) for k in sorted(mine))}) and the difference to vaekit, "
             "paired by seed (mean +- standard error; negative: the contender is better):", ""]  # fmt: skip
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
    p.add_argument("--contenders", default="vaekit,pythae,classic,vaekit-bf16,vaekit-compile",
                   help="vaekit-bf16 and vaekit-compile are vaekit with --precision bf16 / --compile")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--conv-epochs", type=int, default=None, help="epochs for the conv case (default: --epochs)")
    p.add_argument("--rounds", type=int, default=2, help="each contender runs this many times, alternating")
    p.add_argument("--first-seed", type=int, default=0, help="round r trains with seed first_seed + r")
    p.add_argument("--also", default=None, help="a results JSON of an earlier run (other seeds) to summarize with this one")
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
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    t0 = time.time()
    with open(a.log, "a") as log:
        for rnd in range(a.rounds):
            for case in cases:
                epochs = a.conv_epochs if (case == "conv" and a.conv_epochs) else a.epochs
                order = contenders[rnd % len(contenders):] + contenders[: rnd % len(contenders)]
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
