"""Options speak for themselves: every config field that is an option appears in the help of every
command that takes it, with the field's own help and default (they cannot disagree: both come from
the field), and what a user types arrives as the field's type."""

from __future__ import annotations

import re

import pytest
from helpers import run_cli

import vaekit
from vaekit.config import Capacity, Corruption, DataConfig, ModelConfig, TrainConfig, cli_fields, describe_default
from vaekit.config import option_flag as flag_of

SECTIONS = (ModelConfig, TrainConfig, DataConfig)


def help_text(capsys, *command) -> str:
    code, out, _ = run_cli([*command, "--help"], capsys)
    assert code == 0
    return re.sub(r"[\s│]+", " ", out)  # one line, without the help box's frame


@pytest.mark.parametrize("command", [["train"], ["sweep"]])
def test_every_training_option_is_listed_with_its_fields_default(capsys, command):
    text = help_text(capsys, *command)
    fixed_by_sweep = {"beta", "lmbda", "epochs", "seed", "patience", "kind", "source"}  # a list in sweep
    for section in SECTIONS:
        for f in cli_fields(section):
            if command == ["sweep"] and f.name in fixed_by_sweep:
                continue
            flag = flag_of(f)
            assert flag in text, f"{flag} is missing from `vaekit {command[0]} --help`"
            assert f"(default: {describe_default(f)})" in text, f"{flag}'s default is missing"


def test_the_sweep_says_what_train_says(capsys):
    """The disagreement this replaced: sweep's help said the learning rate defaults to 1e-3."""
    train, sweep = help_text(capsys, "train"), help_text(capsys, "sweep")
    lr = "Adam learning rate. (default: 0.002)"
    assert lr in train and lr in sweep


def test_fit_background_takes_the_run_s_training_options(capsys):
    text = help_text(capsys, "fit-background")
    assert "--epochs" in text and "--device" in text and "(default: the run's)" in text


def test_typed_options_arrive_as_their_fields_types(tmp_path, capsys):
    out = tmp_path / "r"
    code, _, err = run_cli(
        [
            "train",
            "--data",
            "digits",
            "--out",
            out,
            "--epochs",
            "1",
            "--capacity",
            "5:100",
            "--denoise",
            "mask:0.2",
            "--hidden",
            "16,8",
            "--latent-dim",
            "2",
            "--compile",
            "--no-compile",
            "-q",
        ],
        capsys,
    )
    assert code == 0, err
    cfg = vaekit.load_run(out).config
    assert cfg.train.capacity == Capacity(5.0, 100) and cfg.train.denoise == Corruption("mask", 0.2)
    assert cfg.model.hidden == [16, 8] and cfg.train.compile is False
    saved = (out / "config.json").read_text()
    assert '"capacity": {' in saved and '"nats": 5.0' in saved  # structured in the run folder, not "C:N"
