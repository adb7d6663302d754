"""Targets are reached by name through the registry: an unknown one is a clear error (exit 2)
on every command that takes --target, and a third target is one module plus one registry
entry — every command then works for it, with nothing else changed."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from bakehouse import targets
from bakehouse.cli import ns
from tests.conftest import ROOT, run_cli

TAKES_TARGET = sorted(
    name for name in ns.task_names if any(a.name == "target" for a in ns[name].get_arguments())
)


run = run_cli


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
    assert run("base", "web", "--target", "toy")[1].strip() == "toy base"
    assert run("verify", "--image", "web", "--target", "toy")[0] == 0
    assert run("gc", "--target", "toy")[1].strip() == "nothing to collect"
    assert sys.modules["tests.unit.toy_target"]  # loaded only through the registry


@pytest.fixture
def toys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, cls in (
        ("toy", "ToyTarget"),
        ("toy-failing", "FailingToyTarget"),
        ("toy-fleet", "FleetToyTarget"),
    ):
        monkeypatch.setitem(targets.REGISTRY, name, f"tests.unit.toy_target:{cls}")
    monkeypatch.setenv("BAKEHOUSE_STATE_DIR", str(tmp_path))
    monkeypatch.chdir(ROOT)
    return tmp_path


def history(target: str) -> dict:  # type: ignore[type-arg]
    code, out, err = run("images.history", "--image", "web", "--target", target, "--json")
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def test_an_image_that_fails_verification_is_recorded_failed_and_never_published(
    toys: Path,
) -> None:
    code, out, err = run("bake", "--image", "web", "--target", "toy-failing")
    assert code == 1, out + err
    assert "failed verification: 1 control(s) failed: toy-01" in err and "not published" in err
    h = history("toy-failing")
    assert [r["state"] for r in h["images"]] == ["failed"] and h["channels"] == {}
    assert h["images"][0]["verify"] == {"ok": False, "summary": ANY_SUMMARY, "failed": ["toy-01"]}
    code, _, err = run("publish", "--image", "web", "--target", "toy-failing", "--channel", "x")
    assert code == 2 and "no verified version of web" in err


def test_a_failed_bake_names_the_folder_it_kept_and_gc_takes_old_ones(toys: Path) -> None:
    code, _, err = run("bake", "--image", "web", "--target", "toy-failing")
    assert code == 1
    (folder,) = (toys / "runs").iterdir()
    assert f"logs: {folder} (kept for this failure" in err
    assert (folder / "junit.xml").is_file()  # the suite's output
    assert "failed verification" in json.loads((folder / "failed.json").read_text())["error"]
    code, out, _ = run("gc", "--target", "toy-failing", "--json")
    assert code == 0 and json.loads(out)["leftovers"] == []  # the newest failures stay
    code, out, _ = run("gc", "--target", "toy-failing", "--keep-failed", "0", "--json")
    (row,) = json.loads(out)["leftovers"]
    assert row["kind"] == "failed run" and row["id"] == folder.name and folder.exists()
    code, out, _ = run("gc", "--target", "toy-failing", "--keep-failed", "0", "--yes")
    assert code == 0 and not folder.exists()
    code, _, err = run("gc", "--target", "toy", "--keep-failed", "-1")
    assert code == 2 and "--keep-failed -1" in err


class _AnyDict:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, dict)

    def __hash__(self) -> int:
        return 0


ANY_SUMMARY = _AnyDict()


def test_refused_before_anything_starts(toys: Path) -> None:
    """Bad input costs nothing: no run folder, no record."""
    for argv, message in (
        (["bake", "--image", "web", "--target", "toy", "--channel", "Bad_Name"], "not a channel"),
        (["bake", "--image", "web", "--target", "aws"], "--runner-cidr"),
        (
            ["bake", "--image", "web", "--target", "aws", "--runner-cidr", "203.0.113.0/33"],
            "is not an address range",
        ),
        (["bake", "--image", "web", "--target", "aws", "--region", "mars-1"], "not an AWS region"),
        (
            [
                "verify",
                "--image",
                "web",
                "--target",
                "toy",
                "--base",
                "--version",
                "20260101.000000",
            ],
            "exclude",
        ),
        (["verify", "--image", "web", "--target", "toy"], "no baked version of web"),
        (["deploy", "--image", "web", "--target", "toy", "--channel", "Bad"], "not a channel"),
    ):
        code, _, err = run(*argv)
        assert code == 2 and message in err, (argv, err)
    assert not (toys / "runs").exists() or not any((toys / "runs").iterdir())
    assert not (toys / "toy").exists()


def test_a_second_bake_of_the_same_image_is_refused_while_one_runs(toys: Path) -> None:
    from bakehouse.runs import image_lock

    with image_lock(toys, "web", "toy"):
        code, _, err = run("bake", "--image", "web", "--target", "toy")
    assert code == 2 and "image 'web' is already being baked on the toy target" in err
    assert run("bake", "--image", "web", "--target", "toy")[0] == 0  # released


@pytest.mark.parametrize(
    ("behaviour", "code", "outcome"),
    [
        ("ok", 0, "success"),
        ("failed", 1, "failed"),
        ("error", 1, "error: the refresh could not start"),
    ],
)
def test_every_roll_that_changes_something_is_recorded(
    toys: Path, monkeypatch: pytest.MonkeyPatch, behaviour: str, code: int, outcome: str
) -> None:
    from tests.unit.toy_target import FleetToyTarget

    monkeypatch.setattr(FleetToyTarget, "behaviour", behaviour)
    assert run("bake", "--image", "web", "--target", "toy-fleet", "--channel", "stable")[0] == 0
    got, _, err = run("roll", "--image", "web", "--target", "toy-fleet", "--channel", "stable")
    assert got == code, err
    (roll,) = history("toy-fleet")["rolls"]
    assert roll["outcome"] == outcome and roll["by"] and roll["channel"] == "stable"
    dry = ("roll", "--image", "web", "--target", "toy-fleet", "--channel", "stable", "--dry-run")
    assert run(*dry)[0] == code
    assert len(history("toy-fleet")["rolls"]) == 1  # a dry run records nothing


def test_an_interrupted_roll_is_recorded(toys: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.unit.toy_target import FleetToyTarget

    monkeypatch.setattr(FleetToyTarget, "behaviour", "interrupt")
    assert run("bake", "--image", "web", "--target", "toy-fleet", "--channel", "stable")[0] == 0
    code, _, _ = run("roll", "--image", "web", "--target", "toy-fleet", "--channel", "stable")
    assert code == 130
    assert [r["outcome"] for r in history("toy-fleet")["rolls"]] == ["interrupted"]


def test_under_json_an_error_is_json_too(toys: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.unit.toy_target import FleetToyTarget

    keys = {"error", "hint", "file", "line", "key", "exit", "errors", "logs"}
    code, out, err = run("images.history", "--image", "nosuch", "--target", "toy", "--json")
    shown = json.loads(out)
    assert code == 2 and err == "" and set(shown) == keys
    assert shown["file"] == "images/nosuch.yaml" and shown["exit"] == 2 and "known" in shown["hint"]
    code, out, _ = run("bake", "--image", "web", "--target", "toy-failing", "--json")
    shown = json.loads(out)
    assert code == 1 and "failed verification" in shown["error"]
    assert shown["logs"] and Path(shown["logs"]).parent == toys / "runs"
    monkeypatch.setattr(FleetToyTarget, "behaviour", "interrupt")
    assert run("bake", "--image", "web", "--target", "toy-fleet", "--channel", "stable")[0] == 0
    code, out, _ = run("roll", "web", "--target", "toy-fleet", "--channel", "stable", "--json")
    assert code == 130 and json.loads(out)["error"] == "interrupted"


def test_the_bake_step_checks_channels_itself(toys: Path) -> None:
    """Not only the command line: a pipeline calling the lifecycle directly is held to it too."""
    from bakehouse.errors import UsageError
    from bakehouse.lifecycle.bake import bake
    from bakehouse.project import find_project
    from bakehouse.spec import Catalog
    from bakehouse.targets.base import BakeRequest

    project = find_project()
    spec = Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("web")
    with pytest.raises(UsageError, match="is not a channel name"):
        bake(project, spec, targets.get("toy", project), BakeRequest(channels=("../x",)))
    assert not (toys / "catalogue").exists() or not list((toys / "catalogue").rglob("record.json"))


def test_a_roll_stopped_by_sigterm_is_recorded(toys: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cancelled CI job sends SIGTERM: the roll unwinds (on aws: rolls back, see
    tests/aws/test_roll.py) and the roll record says so; nothing kills the process midway."""
    import signal

    from tests.unit.toy_target import FleetToyTarget

    class NoHandler(Exception):
        pass

    def no_handler(signum: int, frame: object) -> None:
        raise NoHandler

    monkeypatch.setattr(FleetToyTarget, "behaviour", "sigterm")
    assert run("bake", "--image", "web", "--target", "toy-fleet", "--channel", "stable")[0] == 0
    old = signal.signal(signal.SIGTERM, no_handler)
    try:
        code, _, err = run("roll", "--image", "web", "--target", "toy-fleet", "--channel", "stable")
    finally:
        signal.signal(signal.SIGTERM, old)
    assert code == 143, err
    (roll,) = history("toy-fleet")["rolls"]
    assert roll["outcome"] == "interrupted (stopped by signal SIGTERM)"


def test_a_bake_records_its_timings_for_the_next_ones_estimates(toys: Path) -> None:
    from bakehouse.lifecycle.bake import previous_timings
    from bakehouse.project import find_project
    from bakehouse.spec import Catalog

    spec = Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("web")
    target = targets.get("toy", find_project())
    assert previous_timings(target, spec) == {}  # nothing baked: no estimate, no guess
    assert run("bake", "web", "--target", "toy")[0] == 0
    (record,) = history("toy")["images"]
    assert {"bake", "verify"} <= set(record["timings"])
    assert set(previous_timings(target, spec)) == set(record["timings"])
    assert run("bake", "web", "--target", "toy-failing")[0] == 1  # a failed one is no estimate
    assert previous_timings(targets.get("toy-failing", find_project()), spec) == {}
