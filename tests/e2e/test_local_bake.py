"""End to end on the local target, for real: mmdebstrap, Packer's qemu builder, qemu, SSH,
testinfra. Slow (minutes); selected with `-m e2e`, run by CI through the README's test command.

One state folder is shared by the whole session so the base image is built once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from bakehouse.suite import parse_junit
from tests.browser import visit
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e
INVOKE = str(Path(sys.executable).parent / "invoke")


def env(state: Path) -> dict[str, str]:
    return {**os.environ, "BAKEHOUSE_STATE_DIR": str(state)}


def run(state: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [INVOKE, *args],
        cwd=ROOT,
        env=env(state),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Bake:
    """A bake running in the background, its progress lines readable as they come."""

    def __init__(self, state: Path, *args: str):
        self.proc = subprocess.Popen(
            [INVOKE, "bake", "--image", "web", *args],
            cwd=ROOT,
            env=env(state),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []

    def wait_for(self, marker: str, timeout: float = 900) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if marker in line:
                return
        raise AssertionError(f"never saw {marker!r}; output:\n{''.join(self.lines[-30:])}")

    def finish(self, timeout: float = 300) -> int:
        out, _ = self.proc.communicate(timeout=timeout)
        self.lines.append(out or "")
        return self.proc.returncode


def processes_under(folder: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(folder) in cmd:
                found.append(f"{entry.name}: {cmd[:150]}")
    return found


def catalogue_listing(state: Path) -> list[str]:
    images = state / "catalogue" / "local" / "images"
    return sorted(str(p.relative_to(state)) for p in images.rglob("*")) if images.exists() else []


@pytest.fixture
def no_leftovers(state: Path) -> Iterator[None]:
    before = catalogue_listing(state)
    yield
    runs = state / "runs"
    assert processes_under(state) == []
    # a stopped run keeps its folder for the logs: what failed, no disks, no private keys
    for folder in runs.iterdir() if runs.exists() else []:
        assert (folder / "failed.json").is_file(), list(folder.iterdir())
        kept = [p for p in folder.rglob("*") if p.is_file()]
        assert not [p for p in kept if p.suffix in (".qcow2", ".raw", ".img")], kept
        assert not [p for p in kept if p.name.startswith("id_") and p.suffix != ".pub"], kept
    assert catalogue_listing(state) == before, "the catalogue changed"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_during_provisioning_leaves_nothing(
    state: Path, sig: signal.Signals, no_leftovers: None
) -> None:
    bake = Bake(state)
    bake.wait_for("packer: provision:")
    assert processes_under(state), "expected packer and qemu to be running"
    bake.proc.send_signal(sig)
    code = bake.finish()
    assert code in (130, 143), "".join(bake.lines[-20:])
    assert "Traceback" not in "".join(bake.lines)


def test_second_bake_of_the_same_image_is_refused(state: Path, no_leftovers: None) -> None:
    first = Bake(state)
    first.wait_for("bake: packer build")
    second = run(state, "bake", "--image", "web", timeout=120)
    assert second.returncode == 2
    assert "is already being baked" in second.stderr
    first.proc.send_signal(signal.SIGINT)
    assert first.finish() == 130


def test_kill_9_then_gc_removes_what_was_left(state: Path) -> None:
    bake = Bake(state)
    bake.wait_for("packer: provision:")
    bake.proc.kill()
    bake.proc.wait()
    time.sleep(1)
    left = processes_under(state)
    assert left, "packer and qemu run on in their own session after a kill -9"
    dry = run(state, "gc", "--json", timeout=60)
    assert dry.returncode == 0
    found = json.loads(dry.stdout)
    assert not found["removed"] and len(found["leftovers"]) == 1
    assert found["leftovers"][0]["kind"] == "run" and found["leftovers"][0]["processes"]
    assert processes_under(state), "a dry run must not remove anything"
    done = run(state, "gc", "--yes", timeout=120)
    assert done.returncode == 0, done.stderr
    time.sleep(1)
    assert processes_under(state) == []
    killed = found["leftovers"][0]["id"]
    assert not (state / "runs" / killed).exists()
    # what stays is only the earlier tests' stopped runs, kept for their logs
    assert all((p / "failed.json").is_file() for p in (state / "runs").iterdir())


def test_unhardened_base_fails_verify_with_control_ids(state: Path) -> None:
    """The negative proof: the base image, before patching and hardening, fails every control
    the bake is responsible for (harden.sh's, by id; the web role's; cleanup's), and no other."""
    from bakehouse.spec import Catalog
    from tests.unit.test_controls_fail import fixed_by_the_bake

    result = run(state, "verify", "--image", "web", "--base", "--json")
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    failed = {c["id"] for c in data["controls"] if c["outcome"] in ("failed", "error")}
    fixed = fixed_by_the_bake(Catalog(ROOT / "images").load("web").base.local.suite)
    assert failed == fixed, (sorted(failed - fixed), sorted(fixed - failed))
    errors = {c["id"] for c in data["controls"] if c["outcome"] == "error"}
    assert errors == {"bh-web-04"}  # no nginx on the base whose configuration could be read


def test_bake_web_end_to_end(state: Path) -> None:
    """The README's first command: bake, verify and publish the web image."""
    result = subprocess.run(
        ["./run", "invoke", "bake", "--image", "web"],
        cwd=ROOT,
        env=env(state),
        capture_output=True,
        text=True,
        timeout=3000,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = sorted((state / "catalogue" / "local" / "images" / "web").glob("*/record.json"))
    record = json.loads(records[-1].read_text())
    folder = records[-1].parent
    assert record["state"] == "published"
    assert set(record["channels"]) == {"latest", "stable"}
    from tests.unit.replay import checks
    from tests.unit.test_controls_fail import NOT_ON_WEB

    summary = record["verify"]["summary"]
    assert record["verify"]["ok"] and summary["failed"] == summary["error"] == 0
    # every control of the suite that applies to web passed
    assert summary["passed"] == len(checks()) - len(NOT_ON_WEB)
    assert summary["skipped"] == len(NOT_ON_WEB)
    sections = {s["section"]: s for s in record["verify"]["compliance"]["sections"]}
    assert sum(s["passed"] for s in sections.values()) > 170
    assert all(s["failed"] == 0 for s in sections.values())
    assert "| 5 Access Control |" in (folder / "report.md").read_text()
    assert record["base"]["id"].startswith("base-")
    for role in ("disk", "data", "kernel", "initrd", "manifest", "sbom"):
        assert (folder / record["artifacts"][role]["file"]).is_file()
    timings = json.loads((folder / "report.json").read_text())["timings"]
    assert timings["verify:boot-to-ssh"] > 0 and timings["verify:suite"] > 0, timings
    sbom_text = (folder / "sbom.cdx.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(sbom_text) is None
    sbom = json.loads(sbom_text)
    names = {c["name"] for c in sbom["components"]}
    assert {"nginx-light", "openssh-server", "auditd"} <= names
    assert len(sbom["components"]) == record["packages"]
    junit = (folder / "verify" / "junit.xml").read_text()
    assert 'name="control" value="sshd-06"' in junit
    facts = json.loads((folder / "verify" / "facts.json").read_text())
    assert any(command.startswith("sshd -T") for command in facts)  # what was judged is kept
    channels = json.loads((state / "catalogue" / "local" / "channels.json").read_text())
    assert channels["web"]["stable"]["current"] == record["version"]
    history = run(state, "images.history", "--image", "web")
    assert record["version"] in history.stdout
    # the report site of this catalogue, every page opened in the browser
    site = state / "site"
    written = run(state, "report", "--out", str(site))
    assert written.returncode == 0 and "could not read" not in written.stdout, written.stderr
    version_page = f"local/web/{record['version']}/index.html"
    pages = visit(site, {"index.html": "e2e-overview.png", version_page: "e2e-version.png"})
    for rel, page in pages.items():
        assert (page.errors, page.broken) == ([], []), rel
        assert page.size < 300 * 1024 and page.load_ms < 1000, (rel, page.size, page.load_ms)
    assert pages["local/web/index.html"].svgs >= 1
    evidence = parse_junit(folder / "verify" / "junit.xml")
    assert sorted(pages[version_page].controls) == sorted(c["id"] for c in evidence)


def test_a_guest_kernel_that_dies_stops_the_wait_for_ssh_at_once(
    state: Path, tmp_path: Path
) -> None:
    """The published web image's own kernel, told to run an init that exits: the kernel panics,
    qemu stops (panic=-1, -no-reboot) and the error names the panic in seconds, not after the
    SSH timeout."""
    from bakehouse import sshkeys, vm
    from bakehouse.errors import VmError
    from bakehouse.progress import Progress

    quiet = Progress(quiet=True)
    record_file = sorted((state / "catalogue" / "local" / "images" / "web").glob("*/record.json"))
    folder = record_file[-1].parent
    artifacts = json.loads(record_file[-1].read_text())["artifacts"]
    cfg = vm.VmConfig(
        name="bakehouse-panic",
        disk=folder / artifacts["disk"]["file"],
        kernel=folder / artifacts["kernel"]["file"],
        initrd=folder / artifacts["initrd"]["file"],
        append=f"{vm.KERNEL_ARGS} rdinit=/bin/false",
        serial_log=tmp_path / "console.log",
    )
    key = sshkeys.write_key(tmp_path, "bakehouse-panic")
    start = time.monotonic()
    log = tmp_path / "qemu.log"
    with pytest.raises(VmError) as failed, vm.boot(cfg, key.private, "root", 600, quiet, log):
        pass
    assert time.monotonic() - start < 120
    message = failed.value.message
    assert "stopped before SSH came up" in message and "its kernel died" in message, message
    assert "Kernel panic - not syncing: Attempted to kill init!" in message, message


def test_hardening_suite_over_the_ssm_protocol_matches_ssh(
    state: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """verify_via: ssm's command protocol on a real image: the published web image booted again,
    the suite run through bakehouse's SSM backend with SSH playing the agent (tests/e2e/
    ssm_relay.py), every control's outcome equal to the SSH verify of the bake."""
    import datetime as dt

    from bakehouse import suite
    from bakehouse.lifecycle.verify import verify
    from bakehouse.progress import Progress
    from bakehouse.project import Project
    from bakehouse.spec import Catalog
    from bakehouse.targets.local import LocalTarget

    monkeypatch.setenv("BAKEHOUSE_STATE_DIR", str(state))
    stats = tmp_path / "relay.json"
    monkeypatch.setenv("BAKEHOUSE_SSM_RELAY_STATS", str(stats))
    records = sorted((state / "catalogue" / "local" / "images" / "web").glob("*/record.json"))
    assert records, "runs after test_bake_web_end_to_end"
    over_ssh = {
        c["id"]: c["outcome"]
        for c in suite.parse_junit(records[-1].parent / "verify" / "junit.xml")
    }

    def relay(ssh_config: Path) -> suite.Connection:
        return suite.Connection(
            "SSM (agent played over SSH)",
            (
                "-p",
                "tests.e2e.ssm_relay",
                f"--hosts=ssm-relay://i-00000000000000000@local?ssh_config={ssh_config}",
            ),
        )

    spec = Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("web", dt.date.today())

    class Relayed(LocalTarget):
        connection = staticmethod(relay)

    result = verify(Project(ROOT), Relayed(Project(ROOT)), spec, progress=Progress()).verified
    over_ssm = {c["id"]: c["outcome"] for c in result.controls}
    assert result.ok and result.summary["passed"] >= 120
    assert over_ssm == over_ssh
    counts = json.loads(stats.read_text())
    assert counts["invocations"] >= 15  # every fact and check went through the wrapper
