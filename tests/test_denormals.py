"""Denormal floats are flushed to zero on every thread torch computes on, not just the caller's.

Each check runs in a fresh interpreter: the mode is per-thread process state, and the point is
the intra-op pool that exists before vaekit is asked to switch the mode on."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

# a denormal times normal numbers: DAZ reads the denormal as 0, so every product is exactly 0;
# without it the products are tiny but non-zero. Rows of a matmul are split across threads.
PROBE = textwrap.dedent(
    """
    import json, sys, torch
    torch.set_num_threads(2)
    a = torch.full((256, 256), 1e-39)  # denormal in float32
    b = torch.ones(256, 256)
    big = torch.full((1 << 20,), 1e-39)  # large enough for a parallel elementwise op
    def nonzero():
        return {"matmul_rows": int((a @ b).count_nonzero(dim=1).gt(0).sum()), "mul": int((big * 3.0).count_nonzero())}
    before = nonzero()  # the pool now exists, without the mode
    {switch_on}
    print(json.dumps({"before": before, "after": nonzero(), "supported": supported}))
    """
)


def _probe(switch_on: str) -> dict:
    code = PROBE.replace("{switch_on}", switch_on)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


pytestmark = pytest.mark.skipif(not torch.set_flush_denormal(False), reason="this CPU has no flush-to-zero mode")


def test_flush_denormals_reaches_every_thread_of_the_pool():
    r = _probe("from vaekit.training.denormals import flush_denormals; supported = flush_denormals()")
    assert r["supported"]
    assert r["before"]["matmul_rows"] == 256 and r["before"]["mul"] == 1 << 20  # the probe can fail
    assert r["after"] == {"matmul_rows": 0, "mul": 0}


def test_torch_alone_leaves_the_pool_threads_as_they_were():
    """Why vaekit.training.denormals exists: torch's switch sets the calling thread only, so a pool
    created earlier keeps computing with denormals (if this starts failing, torch fixed it)."""
    r = _probe("supported = torch.set_flush_denormal(True)")
    assert r["supported"]
    assert 0 < r["after"]["matmul_rows"] < 256 or r["after"]["mul"] > 0


def test_fit_switches_the_mode_on(monkeypatch):
    import vaekit.training.loop as trainer
    from vaekit.config import DataConfig, ModelConfig, TrainConfig
    from vaekit.core.model import VAE
    from vaekit.core.objectives import Objective
    from vaekit.data import load_data

    calls = []
    monkeypatch.setattr(trainer, "flush_denormals", lambda: calls.append(1) or True)
    digits = load_data(DataConfig(source="digits"))
    model = VAE.from_config(ModelConfig(arch="mlp", hidden=[8], latent_dim=2, data_shape=digits.shape))
    trainer.fit(model, Objective(), digits, TrainConfig(epochs=1))
    assert calls == [1]
