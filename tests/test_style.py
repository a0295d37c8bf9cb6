"""Lint and format, as part of the suite (so the README's test command is also CI's style check):
ruff, configured in pyproject.toml, over the package, the tests and the benchmarks."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["src", "tests", "bench"]


def _ruff() -> list[str]:
    exe = Path(sys.executable).with_name("ruff")
    if exe.is_file():
        return [str(exe)]
    if shutil.which("ruff"):
        return ["ruff"]
    pytest.skip("ruff is not installed (pip install -e '.[test]' installs it)")


def test_ruff_finds_nothing_to_fix():
    done = subprocess.run([*_ruff(), "check", *PATHS], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:]


def test_the_code_is_formatted():
    done = subprocess.run([*_ruff(), "format", "--check", *PATHS], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, "run `ruff format src tests bench`:\n" + done.stdout[-4000:]


def test_no_formatter_skip_markers_remain():
    marked = [
        f"{p.relative_to(ROOT)}:{i}"
        for path in PATHS
        for p in (ROOT / path).rglob("*.py")
        if not any(part == "out" or part.startswith(".venv") for part in p.relative_to(ROOT).parts)
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if "# fmt: " + "skip" in line or "# fmt: " + "off" in line
    ]
    assert not marked, f"formatter-skip markers: {marked}"
