"""Fault injection: what a hostile or unlucky user does to vaekit, and what must happen.

Every case ends in one sentence on stderr and exit status 2 (or a 4xx from the explorer); no file
that vaekit did not write is ever deleted; no image decoder outside vaekit's allow-list is ever
reached. The README's reliability table counts these cases (`CASES` below is the inventory).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_cli, write_images
from PIL import Image

import vaekit
from vaekit.data.images import ALLOWED_FORMATS
from vaekit.runs.folder import FolderLock

TINY = ["--arch", "mlp", "--hidden", "16", "--latent-dim", "2", "-q"]
TINY_API = dict(arch="mlp", hidden=[16], latent_dim=2, progress=False)


def one_sentence_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, f"exit status {code}, stderr: {err[-2000:]}"
    assert err.startswith("vaekit: error: ") and err.count("\n") == 1, f"not one sentence: {err[-2000:]}"
    assert "Traceback" not in err
    for f in fragments:
        assert f in err, f"{f!r} not in {err!r}"


def snapshot(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file below folder (what must survive)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("faults") / "run"
    vaekit.train("digits", out=path, epochs=2, **TINY_API)
    return path


# -- data loss: --overwrite, the lock ----------------------------------------------------------------


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "main.py").write_text("print('mine')\n")
    (project / "config.json").write_text(json.dumps({"learning_rate": 0.1}))  # the user's, not ours
    (project / "notes.txt").write_text("important\n")
    before = snapshot(project)
    code, _, err = run_cli(
        ["train", "--data", "digits", "--epochs", "1", "--out", project, "--overwrite", *TINY], capsys
    )
    one_sentence_error(code, err, "not a vaekit run", "nothing was changed")
    assert snapshot(project) == before


def test_overwrite_of_the_current_folder_deletes_nothing(tmp_path, capsys, monkeypatch):
    (tmp_path / "thesis.tex").write_text("chapter 1\n")
    (tmp_path / "config.json").write_text("{}")
    before = snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["train", "--data", "digits", "--epochs", "1", "--out", ".", "--overwrite", *TINY], capsys)
    one_sentence_error(code, err, "not a vaekit run")
    assert snapshot(tmp_path) == before


def test_overwrite_of_a_run_keeps_what_the_user_added(tmp_path, capsys):
    run = tmp_path / "run"
    assert run_cli(["train", "--data", "digits", "--epochs", "1", "--out", run, *TINY], capsys)[0] == 0
    (run / "notes.md").write_text("what I saw\n")
    (run / "analysis").mkdir()
    (run / "analysis" / "plot.py").write_text("...\n")
    (run / "priors").mkdir()
    (run / "priors" / "mine.txt").write_text("keep me\n")
    outside = tmp_path / "precious.bin"
    outside.write_bytes(b"not vaekit's")
    (run / "samples.png").unlink()
    (run / "samples.png").symlink_to(outside)  # a link named like our file: never followed
    old_config = json.loads((run / "config.json").read_text())
    code, _, err = run_cli(["train", "--data", "digits", "--epochs", "2", "--out", run, "--overwrite", *TINY], capsys)
    assert code == 0, err
    assert (run / "notes.md").read_text() == "what I saw\n" and (run / "analysis" / "plot.py").is_file()
    assert (run / "priors" / "mine.txt").read_text() == "keep me\n"
    assert outside.read_bytes() == b"not vaekit's"
    new = vaekit.load_run(run)
    assert [r["epoch"] for r in new.metrics()] == [1, 2] and new.config.train.epochs == 2 != old_config["train"][
        "epochs"
    ]


def test_a_second_process_on_the_same_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    with FolderLock(out):  # as a training process holds it
        code, _, err = run_cli(["train", "--data", "digits", "--epochs", "1", "--out", out, *TINY], capsys)
    one_sentence_error(code, err, "another vaekit process")
    assert not (out / "config.json").exists()


def test_two_real_trainings_on_one_folder_do_not_interleave(tmp_path):
    """A long training holds the folder; a second `vaekit train --overwrite` on it is refused while
    it runs; the first one's metrics stay one run's rows, in order."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "vaekit", "train", "--data", "digits", "--out", str(out), *TINY]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two processes on a busy machine: no thread oversubscription
    first = subprocess.Popen(
        [*cmd, "--epochs", "100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # a suite started in the background inherits an ignored SIGINT, and Python keeps it ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.time() + 120
        while not (out / "metrics.jsonl").exists() and time.time() < deadline:
            time.sleep(0.1)
        second = subprocess.run(
            [*cmd, "--epochs", "1", "--overwrite"], capture_output=True, text=True, timeout=300, env=env
        )
        assert first.poll() is None, "the first training ended before the second one started"
    finally:
        first.send_signal(signal.SIGINT)  # Ctrl-C: it stops with its last complete checkpoint
        first.wait(timeout=300)  # it finishes its epoch and writes its outputs: slow on a loaded machine
    assert second.returncode == 2 and "another vaekit process" in second.stderr, second.stderr[-2000:]
    assert second.stderr.count("\n") == 1
    run = vaekit.load_run(out)
    epochs = [r["epoch"] for r in run.metrics()]
    assert epochs == list(range(1, len(epochs) + 1)) and run.trained_epochs() == epochs[-1]


# -- code execution: only allowed image decoders -----------------------------------------------------------

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nnewpath 0 0 moveto 8 8 lineto stroke\nshowpage\n"


@pytest.fixture
def decoders_outside_the_allow_list_explode(monkeypatch):
    """Any Pillow plugin not in the allow-list raises if it is ever asked to open a file."""
    from PIL import Image as PILImage

    PILImage.init()
    for fmt, (factory, _accept) in list(PILImage.OPEN.items()):
        if fmt not in ALLOWED_FORMATS:
            monkeypatch.setattr(factory, "_open", lambda self, fmt=fmt: pytest.fail(f"the {fmt} decoder was reached"))


def test_an_eps_file_named_png_never_reaches_ghostscript(tmp_path, capsys, decoders_outside_the_allow_list_explode):
    folder = write_images(tmp_path / "imgs", n=12, size=(8, 8))
    (folder / "evil.png").write_bytes(EPS)
    code, _, err = run_cli(["train", "--data", folder, "--epochs", "1", "--out", tmp_path / "r", *TINY], capsys)
    one_sentence_error(code, err, "evil.png", "not an image vaekit reads")


@pytest.mark.parametrize("fmt", ["ICO", "PCX", "DDS", "EPS"])
def test_formats_outside_the_allow_list_are_refused_in_one_sentence(
    tiny_run, tmp_path, capsys, fmt, decoders_outside_the_allow_list_explode
):
    path = tmp_path / f"x.{fmt.lower()}"
    if fmt == "EPS":
        path.write_bytes(EPS)
    else:
        Image.new("L" if fmt != "DDS" else "RGBA", (8, 8)).save(path.with_suffix(".tmp"), format=fmt)
        path.with_suffix(".tmp").rename(path)
    png_named = tmp_path / "really.png"
    png_named.write_bytes(path.read_bytes())
    code, _, err = run_cli(["interpolate", tiny_run, "--a", png_named, "--b", "0", "--out", tmp_path / "i.png"], capsys)
    one_sentence_error(code, err, "not an image vaekit reads")


def test_the_explorer_answers_415_to_a_foreign_format(tiny_run, decoders_outside_the_allow_list_explode):
    from fastapi.testclient import TestClient

    from vaekit.serve.app import create_app
    from vaekit.serve.explorer import Explorer

    client = TestClient(create_app(Explorer.from_run(tiny_run, map_points=50)))
    for body in (EPS, _encoded("ICO"), _encoded("PCX")):
        r = client.post("/api/upload", content=body, headers={"content-type": "application/octet-stream"})
        assert r.status_code == 415 and "not an image vaekit reads" in r.json()["detail"]


def _encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, format=fmt)
    return buf.getvalue()


# -- images: bombs, 16-bit ------------------------------------------------------------------------------


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG whose header claims width x height grey pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("command", ["train", "score", "interpolate", "denoise"])
def test_a_decompression_bomb_is_one_sentence(tiny_run, tmp_path, capsys, command):
    folder = tmp_path / "imgs"
    write_images(folder, n=12, size=(8, 8))
    bomb = folder / "bomb.png"
    bomb.write_bytes(bomb_png())
    args = {
        "train": ["train", "--data", folder, "--epochs", "1", "--out", tmp_path / "r", *TINY],
        "score": ["score", tiny_run, "--data", bomb, "--out", tmp_path / "s.csv", "-q"],
        "interpolate": ["interpolate", tiny_run, "--a", bomb, "--b", "0", "--out", tmp_path / "i.png"],
        "denoise": ["denoise", tiny_run, "--input", bomb, "--out", tmp_path / "clean"],
    }[command]
    code, _, err = run_cli(args, capsys)
    one_sentence_error(code, err, "900,000,000 pixels; the limit is")


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    from vaekit.data.images import load_image

    arr = np.array([[0, 257 * 64], [257 * 128, 65535]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    x = load_image(tmp_path / "deep.png", [1, 2, 2])
    assert torch.allclose(x[0], torch.tensor([[0, 64], [128, 255]]) / 255.0)


# -- arrays -----------------------------------------------------------------------------------------------


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _damaged_arrays(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = _npz(tmp_path / "good.npz", x=np.random.rand(20, 5))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:200])
    corrupt = tmp_path / "corrupt.npz"
    raw = bytearray(_npz(tmp_path / "c.npz", x=np.random.rand(20, 5)).read_bytes())
    raw[120:160] = b"\xff" * 40  # inside the member's data
    corrupt.write_bytes(bytes(raw))
    obj = tmp_path / "object.npy"
    np.save(obj, np.array([{"a": 1}] * 20, dtype=object), allow_pickle=True)
    return {
        "zero-length axis": (_npz(tmp_path / "empty.npz", x=np.zeros((20, 0))), "no values"),
        "truncated npz": (truncated, "cannot read arrays"),
        "corrupted member": (corrupt, "cannot read arrays"),
        "object array": (obj, "cannot read arrays"),
        "complex array": (_npz(tmp_path / "complex.npz", x=np.random.rand(20, 5) * 1j), "complex"),
    }


@pytest.mark.parametrize(
    "case", ["zero-length axis", "truncated npz", "corrupted member", "object array", "complex array"]
)
def test_damaged_arrays_are_one_sentence(tmp_path, capsys, case):
    path, fragment = _damaged_arrays(tmp_path)[case]
    code, _, err = run_cli(["train", "--data", path, "--epochs", "1", "--out", tmp_path / "r", *TINY], capsys)
    one_sentence_error(code, err, fragment)


def test_data_whose_every_step_diverges_ends_in_the_reason(tmp_path, capsys):
    x = np.full((40, 6), 4.6e18, dtype=np.float32) * np.random.default_rng(0).random((40, 6), dtype=np.float32)
    path = _npz(tmp_path / "huge.npz", x=x)
    argv = ["train", "--data", path, "--matrix", "raw", "--epochs", "3", "--out", tmp_path / "r", *TINY]
    code, _, err = run_cli(argv, capsys)  # as plain vectors: as a table the columns are standardised
    one_sentence_error(code, err, "training diverged at step", "non-finite")


def test_a_one_example_test_split_and_a_one_dimensional_code_still_draw(tmp_path):
    path = _npz(
        tmp_path / "tiny.npz",
        x=np.random.rand(12, 1, 8, 8).astype(np.float32),
        x_test=np.random.rand(1, 1, 8, 8).astype(np.float32),
    )
    run = vaekit.train(str(path), out=tmp_path / "r", epochs=1, arch="mlp", hidden=[8], latent_dim=1, progress=False)
    assert run.figure_path("latent_scatter").stat().st_size > 1000
    assert run.figure_path("samples").is_file()


# -- options ------------------------------------------------------------------------------------------------

BAD_OPTIONS = [
    (["--lr", "inf"], "--lr must be a finite number"),
    (["--beta", "nan"], "--beta must be a finite number"),
    (["--free-bits", "nan"], "--free-bits must be a finite number"),
    (["--capacity", "nan:100"], "--capacity needs a finite number"),
    (["--denoise", "gaussian:nan"], "--denoise needs a finite level"),
    (["--patience", "0"], "--patience must be at least 1"),
    (["--grad-clip", "-1"], "--grad-clip must be positive"),
    (["--grad-clip", "0"], "--grad-clip must be positive"),
    (["--hidden", "0,0"], "--hidden must be at least 1"),
    (["--color", "purple"], "unknown --color"),
    (["--val-fraction", "-1"], "--val-fraction must lie strictly between 0 and 1"),
    (["--val-fraction", "1.5"], "--val-fraction must lie strictly between 0 and 1"),
    (["--latent-dim", "-3"], "--latent-dim must be at least 1"),
    (["--latent-dim", "0"], "--latent-dim must be at least 1"),
    (["--sigma", "0"], "--sigma must be positive"),
    (["--channels", "0"], "--channels must be at least 1"),
    (["--image-size", "-5"], "--image-size must be at least 1"),
    (["--image-size", "100000"], "--image-size must be at most 4096"),
    (["--seed", "1" * 30], "--seed must be a whole number below 2^63"),
    (["--epochs", "0"], "--epochs must be at least 1"),
]


@pytest.mark.parametrize("args,message", BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_bad_training_options_are_one_sentence(tmp_path, capsys, args, message):
    out = tmp_path / "r"
    code, _, err = run_cli(["train", "--data", "digits", "--out", out, *args, "-q"], capsys)
    one_sentence_error(code, err, message)
    assert not out.exists()  # refused before a run folder was made


BAD_COMMANDS = [
    (["sample", "RUN", "--temperature", "nan"], "temperature must be a positive finite number"),
    (["sample", "RUN", "--out", "OUT/s.txt"], "must name a .png file"),
    (["reconstruct", "RUN", "-n", "-4"], "-n must be at least 1"),
    (["serve", "RUN", "--max-upload-mb", "inf"], "--max-upload-mb must lie between"),
    (["serve", "RUN", "--max-upload-mb", "1e-9"], "--max-upload-mb must lie between"),
    (["train", "--resume", "RUN", "--out", "OUT/x"], "--resume continues a run in its own folder"),
]


@pytest.mark.parametrize("args,message", BAD_COMMANDS, ids=[" ".join(a) for a, _ in BAD_COMMANDS])
def test_bad_command_options_are_one_sentence(tiny_run, tmp_path, capsys, args, message):
    args = [str(tiny_run) if a == "RUN" else a.replace("OUT", str(tmp_path)) for a in args]
    one_sentence_error(*run_cli(args, capsys)[::2], message)


# -- damaged run folders ----------------------------------------------------------------------------------------


def _damage(run: Path, how: str) -> None:
    if how == "safetensors metadata not JSON":
        data = bytearray((run / "model.safetensors").read_bytes())
        n = int.from_bytes(data[:8], "little")
        header = data[8 : 8 + n].replace(b'"meta"', b'"mxta"', 1)
        header = (
            header.replace(b'{"__metadata__"', b'[ "__metadata__"', 1)
            if b"__metadata__" in header
            else b"[" + header[1:]
        )
        (run / "model.safetensors").write_bytes(bytes(data[:8]) + bytes(header) + bytes(data[8 + n :]))
    elif how == "checkpoint with a wrong optimizer state":
        _rewrite_checkpoint_meta(run, "optim_groups", "[1, 2, 3]")
    elif how == "checkpoint with a wrong RNG state":
        from safetensors.torch import load_file, save_file

        path = run / "checkpoint.safetensors"
        tensors = load_file(str(path))
        tensors["rng.data"] = torch.zeros(3, dtype=torch.uint8)
        meta = _meta(path)
        save_file(tensors, str(path), metadata=meta)
    elif how == "metrics line that is not an object":
        with open(run / "metrics.jsonl", "a") as f:
            f.write("[1, 2, 3]\n")
            f.write(json.dumps({"epoch": 99}) + "\n")
    elif how == "info that is a list":
        cfg = json.loads((run / "config.json").read_text())
        cfg["info"] = [1, 2]
        (run / "config.json").write_text(json.dumps(cfg))
    elif how == "config that is not JSON":
        (run / "config.json").write_text("{not json")


def _meta(path: Path) -> dict[str, str]:
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n])["__metadata__"]


def _rewrite_checkpoint_meta(run: Path, key: str, value: str) -> None:
    from safetensors.torch import load_file, save_file

    path = run / "checkpoint.safetensors"
    meta = _meta(path)
    meta[key] = value
    save_file(load_file(str(path)), str(path), metadata=meta)


DAMAGE = [
    "safetensors metadata not JSON",
    "checkpoint with a wrong optimizer state",
    "checkpoint with a wrong RNG state",
    "metrics line that is not an object",
    "info that is a list",
    "config that is not JSON",
]
# which command reads the damaged part
READER = {
    "safetensors metadata not JSON": ["sample", "RUN", "--out", "OUT/s.png"],
    "checkpoint with a wrong optimizer state": ["train", "--resume", "RUN", "--epochs", "4", "-q"],
    "checkpoint with a wrong RNG state": ["train", "--resume", "RUN", "--epochs", "4", "-q"],
    "metrics line that is not an object": ["report", "RUN", "--out", "OUT/r.html", "-k", "2", "-q"],
    "info that is a list": ["sample", "RUN", "--out", "OUT/s.png"],
    "config that is not JSON": ["evaluate", "RUN", "-k", "2", "--no-sample-quality", "-q"],
}


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_run_folder_is_one_sentence(tiny_run, tmp_path, capsys, how):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    _damage(run, how)
    args = [str(run) if a == "RUN" else a.replace("OUT", str(tmp_path)) for a in READER[how]]
    code, _, err = run_cli(args, capsys)
    one_sentence_error(code, err)
    assert "not a vaekit run" in err or "damaged" in err, err


def test_the_explorer_answers_4xx_for_damaged_metrics(tiny_run, tmp_path):
    import shutil

    from fastapi.testclient import TestClient

    from vaekit.serve.app import create_app
    from vaekit.serve.explorer import Explorer

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    client = TestClient(create_app(Explorer.from_run(run, map_points=50)))
    _damage(run, "metrics line that is not an object")
    r = client.get("/api/run")
    assert 400 <= r.status_code < 500 and "not a vaekit run" in r.json()["detail"]


# -- the file system: full, limited, read-only --------------------------------------------------------------


def test_a_file_size_limit_is_one_sentence_and_keeps_the_last_checkpoint(tmp_path):
    """ulimit -f: the checkpoint no longer fits; the error names the file and the run stays loadable."""
    run = tmp_path / "r"
    base = [
        sys.executable,
        "-m",
        "vaekit",
        "train",
        "--data",
        "digits",
        "--out",
        str(run),
        "--arch",
        "mlp",
        "--hidden",
        "64",
        "--latent-dim",
        "2",
        "-q",
    ]
    assert subprocess.run([*base, "--epochs", "1"], capture_output=True, timeout=300).returncode == 0
    size = (run / "checkpoint.safetensors").stat().st_size
    before = snapshot(run)
    limit = size // 2
    script = (
        f"import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
        "from vaekit.cli import main; main(sys.argv[1:])"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *base[3:], "--resume", str(run), "--epochs", "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr[-2000:]
    assert "File too large" in done.stderr and str(run) in done.stderr
    after = snapshot(run)
    assert after["checkpoint.safetensors"] == before["checkpoint.safetensors"]  # the old one, whole
    assert vaekit.load_run(run).load_checkpoint().epoch == 1
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]  # no half-written leftovers


@pytest.mark.parametrize("errno_name", ["EROFS", "ENOSPC"])
def test_a_read_only_or_full_disk_during_evaluate_is_one_sentence(tiny_run, tmp_path, capsys, monkeypatch, errno_name):
    import errno

    import vaekit.atomic as atomic

    real = atomic.tempfile.mkstemp

    def refuse(*args, dir=None, **kwargs):
        if Path(dir).resolve() == Path(tiny_run).resolve():
            raise OSError(getattr(errno, errno_name), os.strerror(getattr(errno, errno_name)), str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    code, _, err = run_cli(["evaluate", tiny_run, "-k", "2", "--no-sample-quality", "-q"], capsys)
    one_sentence_error(code, err, "cannot save the evaluation", "--out")
    code, out, err = run_cli(
        ["evaluate", tiny_run, "-k", "2", "--no-sample-quality", "-q", "--out", tmp_path / "e.json"], capsys
    )
    assert code == 0 and (tmp_path / "e.json").is_file() and "not writable" in out
    code, _, err = run_cli(
        ["report", tiny_run, "--metrics", tmp_path / "e.json", "--out", tmp_path / "r.html", "-q"], capsys
    )
    assert code == 0 and (tmp_path / "r.html").stat().st_size > 10_000


# -- finishing a run that was killed after its last epoch ------------------------------------------------------


def test_resume_finishes_a_run_killed_while_drawing_its_pictures(tmp_path, capsys):
    run = tmp_path / "r"
    vaekit.train("digits", out=run, epochs=2, figures=False, **TINY_API)  # as if killed before the PNGs
    assert not (run / "samples.png").exists()
    code, out, err = run_cli(["train", "--resume", run, "-q"], capsys)
    assert code == 0, err
    assert all(
        (run / f"{name}.png").is_file() for name in ("samples", "reconstructions", "loss_curves", "latent_scatter")
    )
    assert [r["epoch"] for r in vaekit.load_run(run).metrics()] == [1, 2]  # nothing trained again
    code, _, err = run_cli(["train", "--resume", run, "-q"], capsys)
    one_sentence_error(code, err, "already trained 2 epochs")


# The README's reliability table, row by row: how many of the tests above each row stands for.
CASES = {
    "overwrite": 3,
    "lock": 2,
    "decoders": 1 + 4 + 1,
    "images": 4 + 1,
    "arrays": 5 + 1 + 1,
    "options": len(BAD_OPTIONS) + len(BAD_COMMANDS),
    "damaged runs": len(DAMAGE) + 1,
    "file system": 1 + 2,
    "finish": 1,
}


def test_the_readme_table_counts_these_cases(request):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme[readme.index("## Reliability") :].split("\n\n")[2]
    rows = [line.split("|")[2:5] for line in table.splitlines()[2:]]
    assert [int(r[0]) for r in rows] == list(CASES.values())
    assert all(int(r[0]) == int(r[1]) == int(r[2]) for r in rows)  # every case: one sentence, nothing lost
    here = [item for item in request.session.items if item.module is request.module]
    if len(here) > len(CASES):  # the whole module was collected: its tests are the cases
        assert len(here) - 1 == sum(CASES.values())
