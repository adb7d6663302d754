"""The benchmarks run: each compiles and imports what it uses, and the render benchmark (no VM,
no AWS) runs to its summary, so a change in the code it drives cannot leave it broken."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

BENCHMARKS = sorted((ROOT / "benchmarks").glob("[a-z]*.py"))


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_a_benchmark_imports_only_what_exists_and_prints_medians(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bakehouse"):
            module = importlib.import_module(str(node.module))
            for alias in node.names:
                if not hasattr(module, alias.name):
                    assert importlib.util.find_spec(f"{node.module}.{alias.name}"), (
                        f"{path.name}: {node.module} has no {alias.name}"
                    )
    assert "median" in path.read_text(), f"{path.name} prints no median"


@pytest.mark.slow
def test_the_render_benchmark_runs_to_its_summary() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "render.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "total, median (min–max)" in done.stdout and "invoke --list, 5 runs" in done.stdout
