"""The hardening suite as a verifier: tests/hardening run with pytest-testinfra against a machine
some target booted or launched, its JUnit turned into per-control results.

How the suite reaches the machine is a :class:`Connection`: paramiko through a generated
ssh_config (:func:`over_ssh`), or SSM Run Command for an AWS instance without SSH
(:func:`over_ssm`). Package indexes are checked on the host and passed in, so the machine
downloads nothing. A suite that did not run is an error, never a pass.
"""

from __future__ import annotations

import json
import sys
import time
import xml.etree.ElementTree as ET  # nosec B405
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bakehouse import proc
from bakehouse.debindex import Indexes
from bakehouse.errors import VerifyError
from bakehouse.progress import Progress, SuiteWatch
from bakehouse.spec import ImageSpec

SUITE = Path("tests") / "hardening"


@dataclass
class Verified:
    ok: bool
    controls: list[dict[str, Any]]
    boot_seconds: float
    suite_seconds: float
    junit: Path
    log: Path
    summary: dict[str, int] = field(default_factory=dict)
    evidence: list[Path] = field(default_factory=list)  # more files worth keeping (console)
    # the suite's CIS compliance per recommendation and per section (empty if not written)
    compliance: dict[str, Any] = field(default_factory=dict)

    def failed_ids(self) -> list[str]:
        """Controls that block publishing: failed, or not judged because a fact was unreadable."""
        return [c["id"] for c in self.controls if c["outcome"] in ("failed", "error")]


def context(spec: ImageSpec | None, verify_key: str, candidates: Path | None) -> dict[str, Any]:
    return {
        "image": spec.name if spec else None,
        # the release the image is of: the suite reports against that release's CIS table
        "release": spec.base.local.release.id if spec else None,
        "role_checks": list(spec.hardening.role_checks) if spec else [],
        "waivers": {
            w.id: f"{w.reason} (expires {w.expires.isoformat()})" for w in spec.hardening.waivers
        }
        if spec
        else {},
        "verify_key": verify_key,
        "candidates": str(candidates) if candidates else None,
    }


PREFETCH = 3  # facts read at once over SSH (benchmarks/hardening.py: 1 against 3)


@dataclass(frozen=True)
class Connection:
    """How the suite reaches the machine it judges: a name for messages and pytest options."""

    via: str
    options: tuple[str, ...]


def over_ssh(ssh_config: Path) -> Connection:
    """paramiko through a generated ssh_config whose host is ``bakehouse-vm``; sudo to root;
    the facts read three at a time, each on its own channel."""
    return Connection(
        "SSH",
        (
            "--hosts=paramiko://bakehouse-vm",
            f"--ssh-config={ssh_config}",
            "--sudo",
            f"--bakehouse-prefetch={PREFETCH}",
        ),
    )


def over_ssm(instance_id: str, region: str) -> Connection:
    """SSM Run Command (commands run as root): bakehouse's testinfra backend."""
    return Connection(
        "SSM", ("-p", "bakehouse.testinfra_ssm", f"--hosts=ssm://{instance_id}@{region}")
    )


def pytest_argv(
    root: Path, connection: Connection, ctx: Path, junit: Path, facts: Path, compliance: Path
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        str(root / SUITE),
        *connection.options,
        f"--bakehouse-context={ctx}",
        f"--junitxml={junit}",
        f"--bakehouse-facts={facts}",
        f"--bakehouse-compliance={compliance}",
        "-o",
        "junit_family=xunit1",
        "-p",
        "no:cacheprovider",
        "-v",  # a line per control as it is judged: the progress shown, and the log
        "-rfE",
        "--no-header",
        f"--rootdir={root}",
    ]


def parse_junit(path: Path) -> list[dict[str, Any]]:
    """Per-control outcomes from the JUnit file: passed, failed, error (what the control judges
    could not be read), waived or skipped (not applicable)."""
    # our own pytest run wrote this file
    tree = ET.parse(path)  # noqa: S314  # nosec B314
    controls = []
    for case in tree.iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        outcome, message = "passed", ""
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        skipped = case.find("skipped")
        if failure is not None:
            outcome = "error" if "error" in props else "failed"
            message = (props.get("error") or failure.get("message") or "").strip()
        elif skipped is not None:
            message = (skipped.get("message") or "").strip()
            outcome = "waived" if "waived:" in message else "skipped"
        controls.append(
            {
                "id": props.get("control") or case.get("name", "?"),
                "title": props.get("title", ""),
                "reference": props.get("reference", ""),
                "test": case.get("name"),
                "outcome": outcome,
                "message": message[:500],
            }
        )
    return controls


def write_candidates(indexes: Indexes, path: Path) -> Path:
    """{package: [newest version, the security suite's version or null]}: the suite judges an
    update as a security one when the security version is newer than what is installed."""
    security = indexes.security_versions()
    path.write_text(
        json.dumps({k: [v, security.get(k)] for k, (v, _) in indexes.candidates().items()})
    )
    return path


def run_suite(
    root: Path,
    folder: Path,
    connection: Connection,
    ctx: Path,
    progress: Progress,
    boot_seconds: float,
    suite_timeout: float = 1800,
    env: dict[str, str] | None = None,
) -> Verified:
    """tests/hardening against the machine ``connection`` reaches; JUnit -> results."""
    junit = folder / "junit.xml"
    facts = folder / "facts.json"
    compliance = folder / "compliance.json"
    log = folder / "verify.log"
    progress.say(f"verify: running tests/hardening over {connection.via}")
    start = time.monotonic()
    code = proc.stream(
        pytest_argv(root, connection, ctx, junit, facts, compliance),
        log=log,
        cwd=root,
        timeout=suite_timeout,
        env=env,
        on_line=SuiteWatch(progress),
    )
    suite_seconds = time.monotonic() - start
    if not junit.is_file():
        raise VerifyError(f"the hardening suite did not run (exit {code})", f"see {log}")
    controls = parse_junit(junit)
    summary = {
        k: sum(1 for c in controls if c["outcome"] == k)
        for k in ("passed", "failed", "error", "waived", "skipped")
    }
    ok = passes(code, summary)
    evidence = [p for p in (facts, compliance) if p.is_file()]
    try:
        cis = json.loads(compliance.read_text()) if compliance.is_file() else {}
    except ValueError as exc:
        raise VerifyError(
            f"the suite's compliance summary is unreadable: {exc}", f"see {log}"
        ) from None
    return Verified(ok, controls, boot_seconds, suite_seconds, junit, log, summary, evidence, cis)


def passes(code: int, summary: dict[str, int]) -> bool:
    """The publish gate: the suite exited 0, something passed, nothing failed, and nothing
    went unjudged (a control whose fact could not be read is never a pass)."""
    return (
        code == 0
        and summary.get("failed", 1) == 0
        and summary.get("error", 1) == 0
        and summary.get("passed", 0) > 0
    )


def summary_of(verified: Verified | None, error: BaseException | None = None) -> dict[str, Any]:
    """What a record keeps of a verification (or of one that did not finish)."""
    out: dict[str, Any] = {
        "ok": bool(verified and verified.ok and error is None),
        "summary": verified.summary if verified else {},
        "failed": verified.failed_ids() if verified else [],
    }
    if verified is not None and verified.compliance:
        out["compliance"] = {
            "benchmark": verified.compliance.get("benchmark"),
            "profile": verified.compliance.get("profile"),
            "sections": verified.compliance.get("sections", []),
        }
    if error is not None:
        out["error"] = str(error) or type(error).__name__
    return out
