"""Targets are reached by name through the registry: an unknown one is a clear error (exit 2)
on every command that takes --target, and a third target is one module plus one registry
entry — every command then works for it, with nothing else changed."""

from __future__ import annotations

import io
import json
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from bakehouse import targets
from bakehouse.cli import ns, program
from tests.conftest import ROOT

TAKES_TARGET = sorted(
    name for name in ns.task_names if any(a.name == "target" for a in ns[name].get_arguments())
)


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            program.run(["bakehouse", *argv], exit=True)
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_every_command_where_it_means_something_takes_target() -> None:
    assert set(TAKES_TARGET) >= {
        "bake", "verify", "publish", "revoke", "roll", "deploy", "nightly", "prune", "gc",
        "base", "images.list", "images.history", "images.diff", "render", "validate",
    }  # fmt: skip


@pytest.mark.parametrize("task", TAKES_TARGET)
def test_an_unknown_target_is_a_usage_error(task: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    takes_image = any(a.name == "image" for a in ns[task].get_arguments())
    code, _, err = run(task, *(["--image", "web"] if takes_image else []), "--target", "gcp")
    assert code == 2, err
    assert "--target 'gcp' is not a target" in err and "targets: local, aws" in err
    assert "Traceback" not in err


def test_a_third_target_is_a_module_and_a_registry_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(targets.REGISTRY, "toy", "tests.unit.toy_target:ToyTarget")
    monkeypatch.setenv("BAKEHOUSE_STATE_DIR", str(tmp_path))
    monkeypatch.chdir(ROOT)
    code, out, err = run("bake", "--image", "web", "--target", "toy", "--json")
    assert code == 0, err
    first = json.loads(out)
    assert (first["target"], first["state"], first["channels"]) == (
        "toy",
        "published",
        ["latest", "stable"],
    )
    time.sleep(1.05)  # versions are the bake's start time, to the second
    code, out, err = run("bake", "--image", "web", "--target", "toy", "--no-publish", "--json")
    assert code == 0, err
    second = json.loads(out)["version"]
    assert run("publish", "--image", "web", "--target", "toy", "--channel", "stable")[0] == 0
    code, out, err = run(
        "revoke", "--image", "web", "--target", "toy", "--version", second, "--reason", "x"
    )
    assert code == 0 and "stable: " + second in out, out + err
    code, out, _ = run("images.history", "--image", "web", "--target", "toy", "--json")
    states = {r["version"]: r["state"] for r in json.loads(out)["images"]}
    assert states == {first["version"]: "published", second: "revoked"}
    code, out, _ = run("nightly", "--target", "toy", "--dry-run", "--json", "--image", "web")
    assert json.loads(out)["images"][0]["reason"] == f"newest version {second} revoked: x"
    code, out, _ = run("roll", "--image", "web", "--target", "toy")
    assert code == 0 and "the toy target has no fleet to roll" in out
    assert run("base", "--target", "toy")[1].strip() == "toy base"
    assert run("verify", "--image", "web", "--target", "toy")[0] == 0
    assert run("gc", "--target", "toy")[1].strip() == "nothing to collect"
    assert sys.modules["tests.unit.toy_target"]  # loaded only through the registry
