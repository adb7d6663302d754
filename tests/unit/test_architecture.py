"""The shape the package keeps: no import cycle, a thin command layer nothing imports, the
cloud SDK behind one package, targets only through the registry, every error class in one
module, one Packer runner."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "src" / "bakehouse"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path) -> set[str]:
    """Every bakehouse module ``path`` imports, at the top or inside functions (a cycle hidden
    in a function body is still a cycle)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("bakehouse"):
                for alias in node.names:
                    child = f"{node.module}.{alias.name}"
                    out.add(child if child in MODULES else node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("bakehouse")}
    return {m for m in out if m in MODULES}


GRAPH = {name: imports(path) - {name} for name, path in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle() -> None:
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH) or [])


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_nothing_below_the_command_layer_imports_it() -> None:
    users = sorted(n for n, deps in GRAPH.items() if "bakehouse.cli" in deps)
    assert users == ["bakehouse.__main__"], users


def test_the_command_layer_is_thin() -> None:
    source = (PACKAGE / "cli.py").read_text()
    tree = ast.parse(source)
    tasks = [
        f
        for f in tree.body
        if isinstance(f, ast.FunctionDef)
        and any(
            isinstance(d, ast.Call) and getattr(d.func, "id", "") == "command"
            for d in f.decorator_list
        )
    ]
    assert len(tasks) >= 15
    assert len(source.splitlines()) < 25 * len(tasks)  # flags, a docstring and one call each
    for fn in tasks:
        body = (fn.end_lineno or 0) - fn.lineno + 1
        assert body <= 40, f"task {fn.name} is {body} lines"
    # tasks print through the output module and decide nothing about targets
    assert 'target == "aws"' not in source and "target == 'aws'" not in source


def test_only_the_aws_package_imports_boto3() -> None:
    for name, path in MODULES.items():
        text = path.read_text()
        if "import boto3" in text or "from boto3" in text:
            assert name.startswith("bakehouse.aws."), name


def test_targets_are_reached_through_the_registry() -> None:
    """No lifecycle step, output or command imports a target's module: a new target is a
    module and a registry entry, nothing else."""
    for name, deps in GRAPH.items():
        if name.startswith(("bakehouse.lifecycle", "bakehouse.cli", "bakehouse.output")):
            concrete = {
                d
                for d in deps
                if d.startswith(("bakehouse.targets.local", "bakehouse.targets.aws"))
            }
            assert not concrete, f"{name} imports {concrete}"
    lifecycle = [p for n, p in MODULES.items() if n.startswith("bakehouse.lifecycle")]
    for path in lifecycle:
        text = path.read_text()
        assert '"aws"' not in text and '"local"' not in text, f"{path.name} names a target"


def test_every_error_class_lives_in_errors() -> None:
    for name, path in MODULES.items():
        if name == "bakehouse.errors":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                assert not any(b.endswith(("Error", "Exception")) for b in bases), (
                    f"{name}.{node.name} is an error class outside errors.py"
                )


def test_one_packer_runner() -> None:
    runners = [
        name
        for name, path in MODULES.items()
        if "build_argv(" in path.read_text() and name != "bakehouse.packer"
    ]
    assert runners == [], f"packer build started outside packer.build: {runners}"
