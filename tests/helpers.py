"""Small data makers shared by the tests."""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vaekit.data.builtin import fashion_mnist_available


def write_images(
    folder: Path, n: int = 12, *, size=(10, 12), mode: str = "L", classes=None, seed: int = 0, prefix: str = "img"
) -> Path:
    """n random images (width, height = size) in folder, or in class sub-folders."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
        arr = rng.integers(0, 256, shape, dtype=np.uint8)
        sub = folder / classes[i % len(classes)] if classes else folder
        sub.mkdir(exist_ok=True)
        Image.fromarray(arr, mode=mode).save(sub / f"{prefix}{i:03d}.png")
    return folder


def write_idx(path: Path, arr: np.ndarray) -> Path:
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def write_idx_folder(folder: Path, n_train: int = 30, n_test: int = 10, side: int = 6) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (n_train, side, side)))
    write_idx(folder / "train-labels-idx1-ubyte.gz", rng.integers(0, 3, n_train))
    write_idx(folder / "t10k-images-idx3-ubyte", rng.integers(0, 256, (n_test, side, side)))
    write_idx(folder / "t10k-labels-idx1-ubyte", rng.integers(0, 3, n_test))
    return folder


def run_cli(args, capsys) -> tuple[int, str, str]:
    """-> (exit code, stdout, stderr) of `vaekit args` run in this process."""
    from vaekit.cli import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def cli_exit_code(*args) -> int:
    """The exit status of `vaekit args` run in this process (its output is left to pytest)."""
    from vaekit.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as e:
        return e.code or 0
    return 0


def needs_fashion_mnist():
    """Skip (saying why) where Fashion-MNIST is not installed; CI sets VAEKIT_REQUIRE_FASHION_MNIST=1
    after installing it, and then a missing data set fails the test instead of skipping it."""
    required = os.environ.get("VAEKIT_REQUIRE_FASHION_MNIST") == "1"
    return pytest.mark.skipif(
        not required and not fashion_mnist_available(),
        reason="needs Fashion-MNIST (apt-get install dataset-fashion-mnist)",
    )


# digits with 1456 training examples (an even number: N processes leave out the last len % N of an epoch)
DDP_VAL_FRACTION = 0.0997
DDP_ARGS = f"--data digits --arch mlp --hidden 32 --latent-dim 4 --val-fraction {DDP_VAL_FRACTION} -q".split()


def torchrun_train(cwd: Path, *args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    """`vaekit train DDP_ARGS args` on nproc processes under torchrun (gloo on the CPU); asserts it succeeded."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "vaekit"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*cmd, "train", *DDP_ARGS, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def write_people_csv(path: Path, n: int = 200, *, seed: int = 0, gaps: bool = True) -> Path:
    """A small mixed-type table: an id, an integer with gaps, a skewed amount, a city (3 values),
    a yes/no flag, a date, free text and a label column y; income follows age, so columns relate."""
    rng = np.random.default_rng(seed)
    lines = ["id,age,income,city,member,joined,notes,y"]
    words = np.array(["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing"])
    for i in range(n):
        age = int(rng.integers(18, 80))
        income = float(np.exp(8 + age / 20 + rng.normal(0, 0.5)))
        city = str(rng.choice(["Oslo", "Bergen", "Tromso"], p=[0.5, 0.3, 0.2]))
        member = "yes" if rng.random() < 0.3 + 0.4 * (city == "Oslo") else "no"
        joined = f"20{rng.integers(10, 23)}-0{rng.integers(1, 10)}-1{rng.integers(0, 10)}"
        notes = " ".join(rng.choice(words, 9))
        cell = "" if gaps and rng.random() < 0.05 else str(age)
        lines.append(f"{i},{cell},{income:.2f},{city},{member},{joined},{notes},{'ab'[int(age > 50)]}")
    path.write_text("\n".join(lines) + "\n")
    return path
