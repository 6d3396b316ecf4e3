"""The engine's layout: imports run one way (no circle, counting imports inside functions too), the engine
names no plugin, and ``import ssvh_bench`` stays light."""

from __future__ import annotations

import pytest

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "ssvh_bench"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def engine_imports() -> dict[str, set[str]]:
    """module -> the engine modules it imports anywhere in its body (``TYPE_CHECKING`` blocks excluded)."""
    modules = {module_name(path): path for path in ENGINE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        tree = ast.parse(path.read_text())
        skipped = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and ast.unparse(block.test) == "TYPE_CHECKING" for node in ast.walk(block)}
        for node in ast.walk(tree):
            if id(node) in skipped or not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
                candidates = [stem] + [f"{stem}.{alias.name}" for alias in node.names]
            else:
                candidates = [alias.name for alias in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            targets |= {c for c in candidates if c in modules and c != name}
        graph[name] = targets
    return graph


def test_engine_imports_have_no_circle():
    graph = engine_imports()
    # a package's __init__ re-exporting its submodules is not a dependency of those submodules on it
    graph = {name: {t for t in targets if not name.startswith(t + ".")} for name, targets in graph.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert "ssvh_bench.runner" in graph and "ssvh_bench.api" in graph["ssvh_bench.cli.reproduce"]


def test_the_engine_names_no_plugin():
    plugins = {path.stem for folder in ("methods", "datasets") for path in (ROOT / folder).glob("*.py")} - {"__init__"}
    for path in ENGINE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(("ssvh_bench.methods", "ssvh_bench.datasets")):
                raise AssertionError(f"{path} imports a plugin: {node.module}")
            if isinstance(node, ast.ImportFrom) and node.level and node.module in ("methods", "datasets"):
                raise AssertionError(f"{path} imports a plugin package")
    assert "conmh" in plugins


@pytest.mark.slow
def test_importing_the_package_and_the_cli_loads_no_heavy_library():
    code = ("import sys, ssvh_bench, ssvh_bench.cli; "
            "print(','.join(m for m in ('torch', 'pandas', 'sklearn', 'matplotlib') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""


@pytest.mark.slow
def test_display_and_run_ids_of_deep_methods_are_read_without_torch():
    code = ("import sys; from ssvh_bench.display import display_name, method_style; "
            "from ssvh_bench.config import make_specs; "
            "assert display_name('conmh') == 'ConMH' and method_style('bth')['linestyle'] == '-'; "
            "make_specs(['conmh', 'bth'], 'synthetic', [64], [0], {}, {}); print('torch' in sys.modules)")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "False"


def test_every_package_folder_is_installed():
    """A folder missing from pyproject's ``packages`` works in an editable install and is absent from a wheel."""
    import tomllib

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {prefix: ROOT / folder for prefix, folder in setuptools["package-dir"].items()}
    found = {module_name(init.parent / "__init__.py") for init in ENGINE.rglob("__init__.py")}
    found |= {prefix for prefix, folder in folders.items() if (folder / "__init__.py").exists()}
    assert found == set(setuptools["packages"])
