"""The README's examples are run as tests, and CI runs the README's test command."""

import re
from pathlib import Path

import torch

import vaekit

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_readme_test_command():
    setup = _blocks("bash")[0].strip().splitlines()
    assert len(setup) == 2 and "vaekit train" in setup[0] and "pytest" in setup[1]
    assert setup[1] in (ROOT / ".ci" / "run").read_text()


def test_python_api_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for code in _blocks("python"):
        namespace = {}
        exec(compile(code, "README.md", "exec"), namespace)
    model = namespace["model"]
    assert namespace["images"].shape == (16, 1, 8, 8)
    assert namespace["path"].shape == (10, 1, 8, 8)
    assert namespace["grid"].shape == (2, 7, 1, 8, 8)
    run = vaekit.load_run(tmp_path / "runs" / "digits-api")  # the example's run folder
    assert isinstance(model, vaekit.VAE)
    assert model.state_dict().keys() == run.model.state_dict().keys()
    assert all(torch.equal(v, run.model.state_dict()[k]) for k, v in model.state_dict().items())
