"""Patch level: nothing pending for a full-upgrade, no pending security update.

Under bakehouse the package indexes are fetched (and signature-checked) on the host and passed
in the context, so the guest downloads nothing; standalone, the guest refreshes apt itself.
A kernel whose new ABI `upgrade` keeps back shows as its metapackage being out of date.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.hardening.controls import Control, ids
from tests.hardening.facts import FactError, Facts


def _pending_from_context(
    facts: Facts, context: dict[str, Any]
) -> list[tuple[str, str, str, bool]]:
    from debian.debian_support import version_compare

    candidates = json.loads(Path(context["candidates"]).read_text())
    out = []
    for name, installed in sorted(facts.packages.items()):
        cand = candidates.get(name)
        if cand is not None and cand[0] != installed and version_compare(cand[0], installed) > 0:
            # [newest, security suite's version]; older records: [newest, newest is security]
            sec = cand[1]
            fixes = version_compare(sec, installed) > 0 if isinstance(sec, str) else bool(sec)
            out.append((name, installed, cand[0], fixes))
    return out


# Without host-fetched indexes the machine refreshes apt itself, into a folder of its own that
# goes away after: its /var/lib/apt/lists and package caches stay as the image has them (bh-sec-08
# judges those), whatever order the controls run in. The indexes stay compressed and without
# translations: /tmp is a memory file system (about 20 MB for Debian 13's).
GUEST_LISTS = "/tmp/bakehouse-apt-lists"
GUEST_APT = (
    f"-o Dir::State::Lists={GUEST_LISTS} -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= "
    "-o Acquire::GzipIndexes=true -o Acquire::Languages=none"
)


def _pending_in_guest(facts: Facts) -> list[tuple[str, str, str, bool]]:
    made = facts.run(
        f"install -d -m 0755 {GUEST_LISTS} && install -d -o _apt -m 0700 {GUEST_LISTS}/partial"
    )
    if made.rc != 0:
        pytest.fail(f"cannot check the patch level: no folder for apt's lists: {made.stderr}")
    try:
        update = facts.run(f"apt-get -q {GUEST_APT} update")
        if update.rc != 0 or "Err:" in update.stdout or "W: " in update.stderr:
            pytest.fail(
                "cannot check the patch level: `apt-get update` failed in the machine: "
                + (update.stderr or update.stdout).strip()[-300:]
            )
        simulation = facts.run(f"apt-get -s -o Debug::NoLocking=1 {GUEST_APT} full-upgrade")
    finally:
        removed = facts.run(f"rm -rf {GUEST_LISTS}")
    if removed.rc != 0:
        pytest.fail(f"could not remove {GUEST_LISTS} after the check: {removed.stderr}")
    if simulation.rc != 0:
        pytest.fail(f"`apt-get -s full-upgrade` failed: {simulation.stderr.strip()[-300:]}")
    text = str(simulation.stdout)
    out = []
    for line in text.splitlines():
        # Inst openssl [3.0.15-1~deb12u1] (3.0.16-1~deb12u1 Debian-Security:12/... [amd64])
        if line.startswith("Inst "):
            parts = line.split()
            name = parts[1]
            old = parts[2].strip("[]") if parts[2].startswith("[") else ""
            new = line.split("(", 1)[1].split()[0] if "(" in line else "?"
            out.append((name, old, new, "-Security" in line or "security" in line))
    return out


def pending_updates(facts: Facts, context: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    if context.get("candidates"):
        return _pending_from_context(facts, context)
    return _pending_in_guest(facts)


@pytest.fixture(scope="module")
def pending(facts: Facts, context: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    return pending_updates(facts, context)


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-patch-01", "Nothing pending for a full-upgrade", "bakehouse", ()),
    ],
    ids=ids,
)
def test_fully_patched(pending: list[tuple[str, str, str, bool]], control: Control) -> None:
    assert pending == [], "pending: " + ", ".join(f"{n} {o} → {c}" for n, o, c, _ in pending)


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-patch-02", "No pending security update", "bakehouse", ()),
    ],
    ids=ids,
)
def test_no_security_updates(pending: list[tuple[str, str, str, bool]], control: Control) -> None:
    security = [p for p in pending if p[3]]
    assert security == [], "security updates: " + ", ".join(
        f"{n} {o} → {c}" for n, o, c, _ in security
    )


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-patch-03", "The running kernel is the newest one installed", "bakehouse", ()),
    ],
    ids=ids,
)
def test_running_newest_kernel(facts: Facts, control: Control) -> None:
    from debian.debian_support import Version

    running = facts.must("kernel release", "uname -r").strip()
    if not running:
        raise FactError("kernel release: uname -r printed nothing")
    installed = [
        p.removeprefix("linux-image-")
        for p in facts.packages
        if p.startswith("linux-image-") and p[12:13].isdigit()
    ]
    assert installed, "no versioned kernel package installed"
    newest = max(installed, key=lambda v: Version(v.split("-cloud")[0].split("-amd64")[0]))
    assert running == newest, f"running {running}, newest installed {newest}"
