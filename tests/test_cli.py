"""The `vaekit` command end to end on tiny data, and one-sentence errors for bad input."""

import subprocess
import sys

import numpy as np
import pytest
from helpers import run_cli, write_images
from PIL import Image

from vaekit.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli") / "run"
    try:
        main(["train", "--data", "digits", "--epochs", "2", "--latent-dim", "3", "--out", str(folder), "--quiet"])
    except SystemExit as e:
        assert not e.code
    return folder


def test_train_prints_a_summary_in_nats(tmp_path, capsys):
    code, out, _ = run_cli(
        ["train", "--epochs", "1", "--arch", "mlp", "--hidden", "16", "--out", tmp_path / "r", "-q"], capsys
    )
    assert code == 0
    assert "nats/example" in out and str(tmp_path / "r") in out


def test_sample_writes_a_grid(run, tmp_path, capsys):
    code, out, _ = run_cli(["sample", run, "-n", "9", "--seed", "1", "--out", tmp_path / "s.png"], capsys)
    assert code == 0
    img = np.asarray(Image.open(tmp_path / "s.png"))
    assert img.shape[0] == img.shape[1] >= 3 * 48  # 3 x 3 tiles
    assert img.std() > 0  # not a blank canvas
    run_cli(["sample", run, "-n", "9", "--seed", "1", "--out", tmp_path / "s2.png"], capsys)
    run_cli(["sample", run, "-n", "9", "--seed", "2", "--out", tmp_path / "s3.png"], capsys)
    same = np.asarray(Image.open(tmp_path / "s2.png"))
    other = np.asarray(Image.open(tmp_path / "s3.png"))
    assert np.array_equal(img, same) and not np.array_equal(img, other)


def test_reconstruct_interpolate_traverse(run, tmp_path, capsys):
    assert run_cli(["reconstruct", run, "-n", "16", "--out", tmp_path / "r.png"], capsys)[0] == 0
    w, h = Image.open(tmp_path / "r.png").size
    assert h > w / 8 * 3  # 4 rows of 8: originals above reconstructions
    assert (
        run_cli(
            [
                "interpolate",
                run,
                "--a",
                "3",
                "--b",
                "17",
                "--steps",
                "5",
                "--method",
                "slerp",
                "--out",
                tmp_path / "i.png",
            ],
            capsys,
        )[0]
        == 0
    )
    assert Image.open(tmp_path / "i.png").size[0] > 4 * Image.open(tmp_path / "i.png").size[1]
    img_path = write_images(tmp_path / "imgs", 1, size=(8, 8))
    png = next(img_path.iterdir())
    assert run_cli(["interpolate", run, "--a", png, "--b", "0", "--out", tmp_path / "i2.png"], capsys)[0] == 0
    assert (
        run_cli(
            ["traverse", run, "--dims", "0,2", "--range", "2", "--steps", "4", "--out", tmp_path / "t.png"], capsys
        )[0]
        == 0
    )
    w, h = Image.open(tmp_path / "t.png").size
    assert w > 1.5 * h  # 2 rows of 4


def test_encode_writes_every_example(run, tmp_path, capsys):
    assert run_cli(["encode", run, "--out", tmp_path / "z.npz"], capsys)[0] == 0
    z = np.load(tmp_path / "z.npz")
    assert z["mu"].shape == (1797, 3) and z["logvar"].shape == (1797, 3) and z["y"].shape == (1797,)
    assert set(z["split"].tolist()) == {"train", "val", "test"}


def test_help_lists_every_option_with_its_default(capsys):
    code, out, _ = run_cli(["train", "--help"], capsys)
    assert code == 0
    for opt in ["--latent-dim", "--beta", "--likelihood", "--resume", "--kl-warmup", "--free-bits", "--denoise"]:
        assert opt in out
    assert "(default: 16)" in out and "(default: 1)" in out  # --latent-dim, --beta


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--data", "/no/such/dir"], "no such file or folder"),
        (["train", "--likelihood", "poisson", "--epochs", "1"], "unknown --likelihood 'poisson'"),
        (["train", "--hidden", "a,b"], "comma-separated integers"),
        (["sample", "/no/such/run"], "no such run folder"),
        (["interpolate", "RUN", "--a", "99999", "--b", "1"], "out of range"),
        (["traverse", "RUN", "--dims", "7"], "do not exist"),
        (["sample", "RUN", "--label", "3"], "not conditional"),
        (["train", "--resume", "RUN", "--epochs", "4", "--latent-dim", "5"], "cannot change how the run was built"),
        (["train", "--resume", "RUN", "--epochs", "2"], "already trained 2 epochs"),
        (["train", "--out", "RUN", "--epochs", "1"], "already holds a run"),
    ],
)
def test_user_errors_are_one_sentence_and_exit_2(run, tmp_path, capsys, args, message):
    args = [str(run) if a == "RUN" else a for a in args]
    code, _, err = run_cli(
        args
        + (["--out", tmp_path / "x"] if args[0] == "train" and "--out" not in args and "--resume" not in args else []),
        capsys,
    )
    assert code == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_data_errors(tmp_path, capsys):
    np.save(tmp_path / "nan.npy", np.full((20, 3), np.nan))
    np.save(tmp_path / "wide.npy", np.linspace(-2, 2, 60).reshape(20, 3))
    (tmp_path / "empty").mkdir()
    cases = [
        (tmp_path / "nan.npy", "non-finite"),
        (tmp_path / "empty", "holds no images"),
        (tmp_path / "wide.npy", "has values in [-2, 2], which cannot be Bernoulli probabilities"),
    ]
    for data, message in cases:
        extra = (
            ["--likelihood", "bernoulli"] if "wide" in str(data) else ["--matrix", "raw"] if "nan" in str(data) else []
        )
        code, _, err = run_cli(["train", "--data", data, "--out", tmp_path / "o", "--epochs", "1", *extra], capsys)
        assert code == 2 and message in err, err
    (tmp_path / "notrun").mkdir()
    code, _, err = run_cli(["sample", tmp_path / "notrun"], capsys)
    assert code == 2 and "not a vaekit run folder" in err
    (tmp_path / "notrun" / "config.json").write_text('{"format": "something-else/9"}')
    code, _, err = run_cli(["sample", tmp_path / "notrun"], capsys)
    assert code == 2 and "not a vaekit run config" in err


def test_python_dash_m_vaekit_runs_end_to_end(tmp_path):
    """The installed entry point in a real subprocess: exit status and stderr as a user sees them."""
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "vaekit",
            "train",
            "--epochs",
            "1",
            "--arch",
            "mlp",
            "--hidden",
            "8",
            "--out",
            str(tmp_path / "r"),
            "-q",
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "vaekit", "sample", str(tmp_path / "nothing")], capture_output=True, text=True
    )
    assert bad.returncode == 2 and bad.stderr.startswith("vaekit: error:") and "Traceback" not in bad.stderr
