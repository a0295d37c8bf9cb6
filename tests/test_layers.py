"""The architecture, enforced: each layer imports only the layers before it, and imports sit at
the top of their module (inside a function only for an optional dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "vaekit"
# Each layer may import the leaves and the layers before it, never one after it.
LAYERS = {"core": 0, "data": 1, "training": 2, "evaluation": 3, "runs": 4, "workflows": 5, "cli": 6, "serve": 6}
SAME_LEVEL = {("cli", "serve")}  # side by side at the top; cli's `serve` command starts the explorer
# Leaves import no layer, only the leaves before them.
LEAVES = ["errors", "config", "atomic", "plots"]
FRONT = {"__init__", "__main__"}  # the package's front door names everything
OPTIONAL = {"torch.utils.tensorboard", "constriction"}  # optional: imported where used


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def unit_of(path: Path) -> str:
    """'core', 'runs', ... for a module in a subpackage; the module's own name for a leaf."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported_units(source: str, package: tuple[str, ...]) -> list[tuple[str, int]]:
    """(unit of vaekit imported, line) for every vaekit import in `source`, a module of the
    subpackage `package` (() for a top-level module); relative imports are resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):
        targets: list[list[str]] = []
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(package[: len(package) - (node.level - 1)])
            targets = [base + node.module.split(".")] if node.module else [base + [a.name] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vaekit."):
            targets = [node.module.split(".")[1:]]
        elif isinstance(node, ast.Import):
            targets = [a.name.split(".")[1:] for a in node.names if a.name.startswith("vaekit.")]
        found += [(t[0], node.lineno) for t in targets if t]
    return found


def violations(me: str, units: list[tuple[str, int]]) -> list[str]:
    bad = []
    for unit, line in units:
        if unit == me or unit == "__version__" or me in FRONT:
            continue
        if me in LEAVES:
            ok = unit in LEAVES and LEAVES.index(unit) < LEAVES.index(me)
        elif unit in LEAVES:
            ok = True
        else:
            ok = LAYERS[unit] < LAYERS[me] or (me, unit) in SAME_LEVEL
        if not ok:
            bad.append(f"line {line}: {me} imports {unit}")
    return bad


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_only_the_layers_below_it(path):
    package = path.relative_to(PACKAGE).parts[:-1]
    bad = violations(unit_of(path), imported_units(path.read_text(), package))
    assert not bad, f"{path.relative_to(PACKAGE)} breaks the import order: " + "; ".join(bad)


def test_the_checker_catches_an_upward_import():
    assert imported_units("from ..runs import Run\nfrom . import sampling\n", ("core",)) == [("runs", 1), ("core", 2)]
    assert violations("core", [("runs", 1), ("core", 2)]) == ["line 1: core imports runs"]
    assert (
        violations("runs", imported_units("from ..training.loop import fit\nimport vaekit.core.model\n", ("runs",)))
        == []
    )
    assert violations("config", imported_units("from .plots import save_grid\n", ())) == [
        "line 1: config imports plots"
    ]
    assert violations("serve", [("cli", 3)]) == ["line 3: serve imports cli"]


def imports_inside_functions(path: Path) -> list[str]:
    found = []
    for fn in ast.walk(ast.parse(path.read_text())):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or "."] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                if not any(n == o or n.startswith(o + ".") for n in names for o in OPTIONAL):
                    found.append(f"line {node.lineno} in {fn.name}(): {', '.join(names)}")
    return found


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_sit_at_the_top_of_the_module(path):
    hidden = imports_inside_functions(path)
    assert not hidden, f"{path.relative_to(PACKAGE)} imports inside functions: " + "; ".join(hidden)


def test_the_package_has_no_import_cycle():
    """Import every module in a fresh interpreter, leaves first: a cycle would fail here even
    where the order test allows both directions (within one subpackage)."""
    import subprocess
    import sys

    names = ["vaekit." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts) for p in modules()]
    names = [n.removesuffix(".__init__") for n in names if not n.endswith("__main__")]
    code = f"import importlib\nfor n in {sorted(names, key=len)!r}:\n    importlib.import_module(n)\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
