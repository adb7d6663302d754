"""The hardening suite's own machinery, run for real with pytest (pytester): it refuses to run
without --hosts, reports waived controls as waived (not hidden, not failed), and tags every
control with its id, title and reference in the JUnit file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytest_plugins = ["pytester"]

CHECKS = """
import pytest
from tests.hardening.controls import Control, ids

@pytest.mark.parametrize("control", [
    Control("bh-x-01", "Always passes", "test ref"),
    Control("bh-x-02", "Always fails, waived", "test ref"),
    Control("bh-x-03", "Always fails, not waived", "test ref"),
], ids=ids)
def test_control(control):
    assert control.id == "bh-x-01", "broken on purpose"
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pkg = pytester.path / "tests"
    (pkg / "hardening").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for name in ("__init__.py", "conftest.py", "controls.py", "facts.py"):
        (pkg / "hardening" / name).write_text((ROOT / "tests" / "hardening" / name).read_text())
    (pkg / "hardening" / "test_checks.py").write_text(CHECKS)
    return pytester


def test_refuses_without_hosts(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess("tests/hardening", "-p", "testinfra")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*refusing to run against the local machine*"])


def test_waivers_are_reported_not_hidden(suite: pytest.Pytester) -> None:
    ctx = suite.path / "context.json"
    ctx.write_text(
        json.dumps({"waivers": {"bh-x-02": "vendor fix due in March (expires 2027-03-31)"}})
    )
    junit = suite.path / "junit.xml"
    result = suite.runpytest_subprocess(
        "tests/hardening",
        "--hosts=local://",
        f"--bakehouse-context={ctx}",
        f"--junitxml={junit}",
        "-o",
        "junit_family=xunit1",
        "-rxX",
    )
    result.assert_outcomes(passed=1, failed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*waived: vendor fix due in March*"])

    from bakehouse.suite import parse_junit

    outcomes = {
        c["id"]: (c["outcome"], c["title"], c["reference"]) for c in parse_junit(Path(junit))
    }
    assert outcomes == {
        "bh-x-01": ("passed", "Always passes", "test ref"),
        "bh-x-02": ("waived", "Always fails, waived", "test ref"),
        "bh-x-03": ("failed", "Always fails, not waived", "test ref"),
    }
