"""The beta sweep: the trade-off it reports, and resumption after an interruption."""

import json

import pytest
import torch

import vaekit
from vaekit.cli import main
from vaekit.errors import VaekitError
from vaekit.runs.files import read_tensors
from vaekit.runs.layout import CONFIG_FILE, MODEL_FILE
from vaekit.workflows import sweep

TINY = dict(arch="mlp", hidden=[64], latent_dim=4, progress=False, log=None)


def test_sweep_writes_the_trade_off(tmp_path):
    out = tmp_path / "sw"
    rows = sweep.run_sweep("digits", betas=[4, 0.5], out=out, epochs=2, with_ae=True, **TINY)
    assert [r["point"] for r in rows] == ["beta-0.5", "beta-4", "ae"]
    low, high, ae = rows
    # more weight on the KL buys a lower rate at a higher distortion
    assert high["kl"] < low["kl"] and high["recon"] > low["recon"]
    assert ae["kl"] is None and ae["nelbo"] is None
    for r in (low, high):
        assert r["nelbo"] == pytest.approx(r["recon"] + r["kl"])
    for name in ("table.md", "results.json", "rate_distortion.png", "metrics_vs_beta.png", "grid.png"):
        assert (out / name).is_file()
    assert json.loads((out / "results.json").read_text()) == rows
    table = (out / "table.md").read_text()
    best = min((low, high), key=lambda r: r["nelbo"])["point"]
    assert f"* best -ELBO: {best}" in table
    lines = table.splitlines()
    col = [c.strip() for c in lines[0].split("|")].index("-ELBO")
    starred = [line.split("|")[1].strip() for line in lines[2:5] if line.split("|")[col].strip().endswith("*")]
    assert starred == [best]


def test_sweep_resumes_where_it_stopped(tmp_path, monkeypatch):
    out = tmp_path / "sw"
    # an "interrupted" sweep: beta-1 finished 1 of 2 epochs, beta-2 died before its first epoch ended.
    # The interruption is simulated by a 1-epoch run, so the rate is pinned constant: a cosine
    # schedule's length is the run's epoch count, which this stand-in changes.
    tiny = {**TINY, "lr_schedule": "constant"}
    sweep.run_sweep("digits", betas=[1], out=out, epochs=1, **tiny)
    (out / "beta-2").mkdir()
    (out / "beta-2" / CONFIG_FILE).write_text((out / "beta-1" / CONFIG_FILE).read_text())
    messages = []
    sweep.run_sweep("digits", betas=[1, 2], out=out, epochs=2, **{**tiny, "log": messages.append})
    assert "beta-1: resumed at epoch 2" in messages[0] and "beta-2: trained 2 epochs" in messages[1]
    assert [r["epoch"] for r in vaekit.load_run(out / "beta-1").metrics()] == [1, 2]
    # the resumed point equals an uninterrupted one
    ref = tmp_path / "ref"
    sweep.run_sweep("digits", betas=[1], out=ref, epochs=2, **tiny)
    a, _ = read_tensors(out / "beta-1" / MODEL_FILE)
    b, _ = read_tensors(ref / "beta-1" / MODEL_FILE)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a finished sweep trains and evaluates nothing again
    monkeypatch.setattr(sweep, "train_run", lambda *a, **k: pytest.fail("retrained a finished point"))
    monkeypatch.setattr(sweep, "evaluate_point", lambda *a, **k: pytest.fail("re-evaluated a finished point"))
    messages.clear()
    rows = sweep.run_sweep("digits", betas=[1, 2], out=out, epochs=2, **{**tiny, "log": messages.append})
    assert all("already trained" in m for m in messages) and len(rows) == 2


def test_sweep_refuses_other_settings_in_the_same_folder(tmp_path, capsys):
    out = tmp_path / "sw"
    sweep.run_sweep("digits", betas=[1], out=out, epochs=1, **TINY)
    with pytest.raises(VaekitError, match=r"holds a sweep with other settings \(latent_dim \(4 -> 8\)\)"):
        sweep.run_sweep("digits", betas=[1], out=out, epochs=1, **{**TINY, "latent_dim": 8})
    with pytest.raises(VaekitError, match="sets beta itself"):
        sweep.run_sweep("digits", betas=[1], out=tmp_path / "x", epochs=1, beta=2.0, **TINY)
    with pytest.raises(SystemExit) as e:
        main(["sweep", "--beta", "1,x", "--out", str(tmp_path / "y")])
    assert e.value.code == 2 and "comma-separated numbers" in capsys.readouterr().err


def test_sweep_cli_passes_options_to_every_point(tmp_path, capsys):
    out = tmp_path / "sw"
    args = [
        "sweep",
        "--data",
        "digits",
        "--beta",
        "0.5,2",
        "--epochs",
        "1",
        "--arch",
        "mlp",
        "--hidden",
        "32",
        "--latent-dim",
        "2",
        "--set",
        "kl_warmup=5",
        "-q",
        "--out",
        str(out),
    ]
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 0
    printed = capsys.readouterr().out
    assert "| point | beta | KL (rate) |" in printed and "best -ELBO" in printed
    for name in ("beta-0.5", "beta-2"):
        cfg = vaekit.load_run(out / name).config
        assert (cfg.train.kl_warmup, cfg.model.hidden, cfg.model.latent_dim) == (5, [32], 2)


def test_sweep_reports_sample_quality_and_active_units(tmp_path):
    out = tmp_path / "sw"
    rows = sweep.run_sweep("digits", betas=[0.5, 8], out=out, epochs=3, with_ae=True, iw_samples=5, **TINY)
    for r in rows:
        assert r["fd"] > 0 and r["fd_n"] == 180 and 0 <= r["active_units"] <= 4  # digits: 180 test examples
    vae = [r for r in rows if r["model"] == "vae"]
    assert all(r["nll"] <= r["nelbo"] + 1.0 for r in vae)  # IWAE with 5 samples: about as tight or tighter
    assert vae[1]["active_units"] <= vae[0]["active_units"]  # beta = 8 switches units off
    best = min(rows, key=lambda r: r["fd"])["point"]
    table = (out / "table.md").read_text()
    assert f"* best sample quality (lowest FD): {best}" in table and "FD floor" in table
    assert "FD (classifier features)" in table and "active units" in table
