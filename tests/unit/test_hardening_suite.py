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
from tests.hardening.facts import FactError

@pytest.mark.parametrize("control", [
    Control("bh-x-01", "Always passes", "test ref"),
    Control("bh-x-02", "Always fails, waived", "test ref"),
    Control("bh-x-03", "Always fails, not waived", "test ref"),
    Control("bh-x-04", "Cannot read its fact, waived", "test ref"),
], ids=ids)
def test_control(control):
    if control.id == "bh-x-04":
        raise FactError("stats: no answer for /etc/passwd")
    assert control.id == "bh-x-01", "broken on purpose"
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pkg = pytester.path / "tests"
    (pkg / "hardening").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for name in (
        "__init__.py",
        "conftest.py",
        "controls.py",
        "facts.py",
        "cis.py",
        *(p.name for p in (ROOT / "tests" / "hardening").glob("cis-*.yaml")),
    ):
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
        json.dumps(
            {
                "waivers": {
                    "bh-x-02": "vendor fix due in March (expires 2027-03-31)",
                    "bh-x-04": "a waiver never hides a control that could not judge",
                }
            }
        )
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
    result.assert_outcomes(passed=1, failed=2, xfailed=1)
    result.stdout.fnmatch_lines(["*waived: vendor fix due in March*"])

    from bakehouse.suite import parse_junit

    outcomes = {
        c["id"]: (c["outcome"], c["title"], c["reference"]) for c in parse_junit(Path(junit))
    }
    assert outcomes == {
        "bh-x-01": ("passed", "Always passes", "test ref"),
        "bh-x-02": ("waived", "Always fails, waived", "test ref"),
        "bh-x-03": ("failed", "Always fails, not waived", "test ref"),
        "bh-x-04": ("error", "Cannot read its fact, waived", "test ref"),
    }
    errored = next(c for c in parse_junit(Path(junit)) if c["id"] == "bh-x-04")
    assert errored["message"] == "stats: no answer for /etc/passwd"


@pytest.mark.parametrize(
    ("code", "summary", "ok"),
    [
        (0, {"passed": 5, "failed": 0, "error": 0}, True),
        (0, {"passed": 5, "failed": 0, "error": 1}, False),  # a fact could not be read
        (0, {"passed": 5, "failed": 1, "error": 0}, False),
        (0, {"passed": 0, "failed": 0, "error": 0}, False),  # nothing judged at all
        (1, {"passed": 5, "failed": 0, "error": 0}, False),  # pytest itself reported trouble
        (0, {"passed": 5}, False),  # a summary without counts is no proof
    ],
)
def test_the_publish_gate(code: int, summary: dict[str, int], ok: bool) -> None:
    from bakehouse.suite import passes

    assert passes(code, summary) is ok


PRELINK = """
import pytest
from tests.hardening.controls import Control, ids

@pytest.mark.parametrize("control", [Control("package-10", "No prelink", "dev-sec")], ids=ids)
def test_control(control):
    pass
"""


@pytest.mark.parametrize(
    ("release", "benchmark", "reference"),
    [
        (
            "ubuntu-22.04",
            "CIS Ubuntu Linux 24.04 LTS Benchmark v1.0.0",
            "dev-sec; CIS Ubuntu 24.04 1.5.4",
        ),
    ],
)
def test_the_image_is_reported_against_its_release_table(
    suite: pytest.Pytester, release: str, benchmark: str, reference: str
) -> None:
    (suite.path / "tests" / "hardening" / "test_checks.py").write_text(PRELINK)
    ctx, junit, compliance = (suite.path / n for n in ("c.json", "j.xml", "compliance.json"))
    ctx.write_text(json.dumps({"release": release}))
    result = suite.runpytest_subprocess(
        "tests/hardening",
        "--hosts=local://",
        f"--bakehouse-context={ctx}",
        f"--bakehouse-compliance={compliance}",
        f"--junitxml={junit}",
        "-o",
        "junit_family=xunit1",
    )
    result.assert_outcomes(passed=1)
    from bakehouse.suite import parse_junit

    assert [c["reference"] for c in parse_junit(junit)] == [reference]
    assert json.loads(compliance.read_text())["benchmark"] == benchmark


def test_a_release_without_a_table_is_refused(suite: pytest.Pytester) -> None:
    ctx = suite.path / "context.json"
    ctx.write_text(json.dumps({"release": "fedora-41"}))
    result = suite.runpytest_subprocess(
        "tests/hardening", "--hosts=local://", f"--bakehouse-context={ctx}"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*0 CIS tables report release 'fedora-41'*"])
