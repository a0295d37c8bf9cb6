"""Conditional VAE: trained from labelled .npz files and labelled datasets, sampled by label;
a clear error when there are no labels."""

import numpy as np
import pytest
import torch
from helpers import cli_exit_code
from sklearn.datasets import load_digits

import vaekit
from vaekit.core.sampling import sample
from vaekit.errors import DataError, VaekitError
from vaekit.evaluation import classifier

TINY = dict(arch="mlp", hidden=[64], latent_dim=4, epochs=1, progress=False, figures=False)


@pytest.fixture(scope="module")
def digits_arrays():
    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def test_conditional_from_labelled_npz(tmp_path, digits_arrays):
    x, y = digits_arrays
    path = tmp_path / "labelled.npz"
    np.savez(path, x=x, y=y + 3)  # labels 3..12: kept as the class names
    run = vaekit.train(str(path), out=tmp_path / "run", conditional=True, **TINY)
    model = run.model
    assert model.config.num_classes == 10
    assert run.info["class_names"] == [str(v) for v in range(3, 13)]
    assert vaekit.load_run(run.path).info["class_names"] == [str(v) for v in range(3, 13)]  # as saved
    # the label reaches the decoder: the same z with two labels gives two different images
    z = torch.zeros(1, 4)
    a, b = model.decode_mean(z, torch.tensor([0])), model.decode_mean(z, torch.tensor([5]))
    assert (a - b).abs().max() > 1e-4
    # "12" is the user's label 12 (class index 9); a bare index is not accepted for numeric names
    assert run.class_index("12") == 9
    with pytest.raises(VaekitError, match="unknown label '2'"):
        run.class_index("2")
    assert sample(model, 5, y=run.class_index("7"), seed=0).shape == (5, 1, 8, 8)


def test_conditional_without_labels_is_a_clear_error(tmp_path, digits_arrays, capsys):
    x, _ = digits_arrays
    path = tmp_path / "unlabelled.npz"
    np.savez(path, x=x)
    with pytest.raises(DataError, match="--conditional needs labels, and unlabelled has none"):
        vaekit.train(str(path), out=tmp_path / "run", conditional=True, **TINY)
    assert (
        cli_exit_code(
            "train", "--data", str(path), "--conditional", "--epochs", "1", "--out", str(tmp_path / "r2"), "-q"
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.strip() == "vaekit: error: --conditional needs labels, and unlabelled has none"


def test_sample_by_label_on_the_cli(tmp_path, capsys):
    run = tmp_path / "cvae"
    vaekit.train("digits", out=run, conditional=True, **TINY)
    assert cli_exit_code("sample", str(run), "--out", str(tmp_path / "s.png")) == 2
    assert "this model is conditional: pass a label in 0..9" in capsys.readouterr().err
    assert cli_exit_code("sample", str(run), "--label", "7", "-n", "9", "--out", str(tmp_path / "sevens.png")) == 0
    assert (tmp_path / "sevens.png").is_file()
    plain = tmp_path / "vae"
    vaekit.train("digits", out=plain, **TINY)
    assert cli_exit_code("sample", str(plain), "--label", "1", "--out", str(tmp_path / "x.png")) == 2
    assert "not conditional" in capsys.readouterr().err


def test_conditional_samples_are_classified_as_the_requested_label(tmp_path):
    run = vaekit.train(
        "digits", out=tmp_path / "cvae", conditional=True, **{**TINY, "hidden": [256], "latent_dim": 8, "epochs": 30}
    )
    model = run.model
    net = classifier.get_classifier(run.config.data, run.data())
    y = torch.arange(10).repeat_interleave(30)  # 30 samples of every digit
    pred = net.predict(sample(model, len(y), y=y, seed=0))
    accuracy = float((pred == y).float().mean())
    assert accuracy > 0.7  # chance: 0.1
    per_label = torch.stack([(pred[y == k] == k).float().mean() for k in range(10)])
    assert float(per_label.min()) > 0.3  # no label is ignored
