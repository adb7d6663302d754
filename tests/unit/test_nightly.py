"""Nightly orchestration: bakes run in parallel up to the worker count, a failure does not stop
the others, skipped images are reported, and the JSON, Markdown and JUnit reports agree.
The bake command is replaced by a short real process (a real bake takes minutes; the bake
itself is covered end to end in tests/e2e)."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bakehouse import plan, reports
from bakehouse.lifecycle import nightly
from bakehouse.project import Project
from bakehouse.targets import get
from bakehouse.targets.base import TargetOptions
from tests.conftest import ROOT, processes_with

PROJECT = Project(ROOT)


def fake_bake(image: str, target: object, channels: list[str]) -> list[str]:
    code = (
        "import sys, time; "
        f"print('[    0.0s] bake: {image} on the local target (run 20261128T031700Z-0000aa)'); "
        "time.sleep(0.5); "
        f"print('{image}: ' + ('FAILED' if '{image}' == 'worker' else 'published')); "
        f"sys.exit(1 if '{image}' == 'worker' else 0)"
    )
    return [sys.executable, "-c", code]


def test_parallel_bakes_isolate_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nightly, "bake_argv", fake_bake)
    decisions = [
        plan.Decision("web", True, "2 pending updates (2 security)", 2, 2),
        plan.Decision("worker", True, "inputs changed"),
        plan.Decision("api", True, "never baked"),
        plan.Decision("base", False, "up to date"),
    ]
    start = time.monotonic()
    outcomes = nightly.run(
        PROJECT, get("local", PROJECT), decisions, 3, tmp_path / "logs", ["latest"], lambda m: None
    )
    took = time.monotonic() - start
    assert took < 1.4, f"three 0.5 s bakes with three workers took {took:.1f}s"
    by = {o.image: o for o in outcomes}
    assert by["web"].ok and by["api"].ok and by["web"].ran
    assert by["worker"].ran and not by["worker"].ok and by["worker"].result == "worker: FAILED"
    assert not by["base"].ran
    # each bake's run, as its first line names it: the report links it to the record it made
    assert by["web"].run_id == "20261128T031700Z-0000aa" and by["base"].run_id == ""
    when = dt.datetime(2026, 11, 28, 3, 17, tzinfo=dt.UTC)
    reports.write(reports.nightly([o.to_dict() for o in outcomes], "local", when), tmp_path / "r")
    data = json.loads((tmp_path / "r" / "nightly.json").read_text())
    assert (data["kind"], data["target"], data["at"]) == ("nightly", "local", when.isoformat())
    assert [(d["image"], d["ran"], d["ok"]) for d in data["images"]] == [
        ("web", True, True),
        ("worker", True, False),
        ("api", True, True),
        ("base", False, True),
    ]
    suite = ET.parse(tmp_path / "r" / "nightly.junit.xml").getroot()
    assert suite.get("tests") == "4" and suite.get("failures") == "1"
    md = (tmp_path / "r" / "nightly.md").read_text()
    assert "| worker | bake | inputs changed | FAILED |" in md
    assert "| base | skip | up to date | skipped |" in md


def test_nightly_shows_each_images_state_as_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def bake(image: str, target: object, channels: list[str]) -> list[str]:
        code = (
            "print('[    1.0s] base: cache hit', flush=True); "
            "print('[    2.0s] packer: provision:harden.sh', flush=True)"
        )
        return [sys.executable, "-c", code]

    monkeypatch.setattr(nightly, "bake_argv", bake)
    shown: list[str] = []
    decisions = [plan.Decision(n, True, "forced") for n in ("web", "worker")]
    nightly.run(
        PROJECT, get("local", PROJECT), decisions, 1, tmp_path, [], lambda m: None, shown.append
    )
    assert shown[0] == "web: baking · worker: queued"
    assert "web: packer: provision:harden.sh · worker: queued" in shown
    assert "web: ok · worker: base: cache hit" in shown
    assert shown[-1] == "web: ok · worker: ok"


def test_one_worker_runs_one_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nightly, "bake_argv", fake_bake)
    decisions = [plan.Decision(n, True, "forced") for n in ("a", "b")]
    start = time.monotonic()
    nightly.run(PROJECT, get("local", PROJECT), decisions, 1, tmp_path, [], lambda m: None)
    assert time.monotonic() - start >= 1.0


def test_a_reader_gone_mid_nightly_does_not_orphan_the_bakes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`nightly 2>&1 | head`: when saying anything fails, the running bakes are still stopped."""
    marker = f"orphan-check-{tmp_path.name}"

    def long_bake(image: str, target: object, channels: list[str]) -> list[str]:
        return [sys.executable, "-c", f"import time; time.sleep(60)  # {marker}"]

    def running() -> list[int]:
        return processes_with(marker)

    gone: list[bool] = []

    def say(message: str) -> None:
        if gone:
            raise BrokenPipeError(32, "Broken pipe")  # every message from now on
        if "worker: baking" in message:
            deadline = time.monotonic() + 10
            while not running() and time.monotonic() < deadline:
                time.sleep(0.05)  # web's bake is running
            gone.append(True)
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(nightly, "bake_argv", long_bake)
    monkeypatch.setattr(nightly, "STOP_GRACE", 2.0)
    decisions = [plan.Decision("web", True, "forced"), plan.Decision("worker", True, "forced")]
    start = time.monotonic()
    with pytest.raises(BrokenPipeError):
        nightly.run(PROJECT, get("local", PROJECT), decisions, 2, tmp_path, [], say)
    assert gone and running() == []
    assert time.monotonic() - start < 30  # stopped at once, not when web's bake ended (60 s)


def test_progress_on_a_closed_stream_goes_quiet() -> None:
    import io

    from bakehouse.progress import Progress

    class Closed(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    progress = Progress(stream=Closed())
    progress.say("bake: started")  # no exception: the work goes on
    assert progress.quiet


def test_bake_argv_is_the_bake_task_with_the_target_and_its_flags() -> None:
    options = TargetOptions("prod", ("eu-west-1",), "192.0.2.1/32")
    argv = nightly.bake_argv("web", get("aws", PROJECT, options), ["latest"])
    assert argv[3:] == [
        "bake",
        "--image",
        "web",
        "--target",
        "aws",
        "--channel",
        "latest",
        "--profile",
        "prod",
        "--runner-cidr",
        "192.0.2.1/32",
        "--region",
        "eu-west-1",
    ]


def test_bake_argv_passes_a_wide_runner_range_on() -> None:
    options = TargetOptions(None, (), "192.0.2.0/28", wide_runner_cidr=True)
    argv = nightly.bake_argv("web", get("aws", PROJECT, options), [])
    assert argv[-3:] == ["--runner-cidr", "192.0.2.0/28", "--wide-runner-cidr"]


def test_force_must_name_an_image_of_the_run() -> None:
    from bakehouse.errors import UsageError
    from bakehouse.spec import Catalog

    web = Catalog(ROOT / "images").load("web")
    with pytest.raises(UsageError, match="--force names no image in this run: nosuch"):
        nightly.decide(PROJECT, get("local", PROJECT), [web], forced={"nosuch"})


def test_nightly_reads_the_indexes_against_the_targets_marks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nightly fetches the indexes with the target's high-water marks (the account's, on aws),
    so a fresh runner never decides on an index older than one any runner accepted."""
    from bakehouse import debindex

    target = get("local", PROJECT)
    marks = object()
    monkeypatch.setattr(type(target), "index_marks", lambda self: marks)
    seen: list[object] = []

    class Stop(Exception):
        pass

    def indexes_for(project: object, spec: object, given: object = None) -> debindex.Indexes:
        seen.append(given)
        raise Stop

    monkeypatch.setattr(nightly, "indexes_for", indexes_for)
    from bakehouse.spec import Catalog

    web = Catalog(ROOT / "images").load("web")
    with pytest.raises(Stop):
        nightly.decide(PROJECT, target, [web])
    assert seen == [marks]


def test_shards_split_the_images_into_disjoint_shares_that_cover_them_all() -> None:
    from bakehouse.errors import UsageError
    from bakehouse.lifecycle import definitions

    project = Project(ROOT)
    names = [f"fleet-{i:03d}" for i in range(10)]
    for n in (1, 3, 4, 10, 12):
        shares = [definitions.shard(project, names, f"{k}/{n}") for k in range(1, n + 1)]
        flat = [name for share in shares for name in share]
        assert sorted(flat) == names and len(set(flat)) == len(flat)
        assert max(map(len, shares)) - min(map(len, shares)) <= 1
    # the share follows the names, not the order they were given in
    assert definitions.shard(project, names[::-1], "2/3") == definitions.shard(
        project, names, "2/3"
    )
    assert definitions.shard(project, names, None) == names
    assert definitions.shard(project, None, "1/1") == definitions.select(project, None)
    for bad in ("0/4", "5/4", "4", "a/b", "-1/4", "1/0", ""):
        with pytest.raises(UsageError, match="not K/N with 1 <= K <= N") as failed:
            definitions.shard(project, names, bad)
        assert failed.value.exit_code == 2
