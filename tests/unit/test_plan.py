"""Patch-aware decisions with real Debian index data (bookworm and bookworm-security stanzas):
up to date, pending security update, changed inputs, changed base, failed, too old, forced."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from bakehouse import debindex, distro, plan
from bakehouse.project import Project
from bakehouse.spec import Catalog
from bakehouse.targets.local import LocalTarget
from tests.conftest import ROOT, TODAY
from tests.unit.test_debindex import indexes

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def record(**kw: object) -> dict:  # type: ignore[type-arg]
    base = {
        "version": "20261127.000000",
        "state": "published",
        "fingerprint": "fp",
        "base": {"key": "bk"},
        "created": "2026-11-27T00:00:00+00:00",
    }
    return base | kw


def facts(installed: dict[str, str] | None = None, **kw: object) -> plan.Facts:
    ix = indexes()
    pending = tuple(debindex.pending(installed or {}, ix))
    args = {
        "image": "web",
        "fingerprint": "fp",
        "base_key": "bk",
        "rebuild_on": "security",
        "max_age_days": 30,
        "last": record(),
        "pending": pending,
    } | kw
    return plan.Facts(**args)  # type: ignore[arg-type]


def current() -> dict[str, str]:
    return {name: version for name, (version, _) in indexes().candidates().items()}


def test_unchanged_image_is_up_to_date() -> None:
    d = plan.decide(facts(current()), NOW)
    assert (d.bake, d.reason) == (False, "up to date")


def test_older_openssl_is_a_pending_security_update() -> None:
    installed = current() | {"openssl": "3.0.20-1~deb12u2", "libssl3": "3.0.20-1~deb12u2"}
    d = plan.decide(facts(installed), NOW)
    assert (d.bake, d.reason, d.security) == (True, "2 pending updates (2 security)", 2)


def test_non_security_update_waits_under_security_policy() -> None:
    installed = current() | {"openssh-server": "1:9.2p1-2+deb12u9"}  # newer one is in main
    d = plan.decide(facts(installed), NOW)
    assert not d.bake and "1 pending updates" in d.reason
    assert plan.decide(facts(installed, rebuild_on="any"), NOW).bake


def test_changed_inputs_and_base() -> None:
    assert plan.decide(facts(current(), fingerprint="other"), NOW).reason == "inputs changed"
    assert plan.decide(facts(current(), base_key="new"), NOW).reason == "base image changed"


def test_patched_base_lineage_compares_the_parent() -> None:
    last = record(base={"key": "derived", "parent": {"key": "bk", "id": "base-bk"}})
    assert not plan.decide(facts(current(), last=last), NOW).bake


def test_revoked_unverified_and_revoked_base_rebake() -> None:
    revoked = record(state="revoked", revoked={"reason": "bad kernel"})
    d = plan.decide(facts(current(), last=revoked), NOW)
    assert (d.bake, d.reason) == (True, "newest version 20261127.000000 revoked: bad kernel")
    d = plan.decide(facts(current(), last=record(state="baked")), NOW)
    assert (d.bake, d.reason) == (True, "newest version 20261127.000000 was never verified")
    d = plan.decide(facts(current(), base_revoked="base bk revoked: bad"), NOW)
    assert (d.bake, d.reason) == (True, "base bk revoked: bad")


def test_a_manifest_that_cannot_be_read_is_not_up_to_date() -> None:
    """Fail closed: no package list, no claim that nothing is pending."""
    d = plan.decide(facts({}, manifest=False), NOW)
    assert d.bake and d.reason.startswith("no package manifest recorded")


def test_failed_never_old_forced() -> None:
    for fact, reason in (
        (facts(current(), last=record(state="failed")), "last bake failed (20261127.000000)"),
        (facts(current(), last=None), "never baked"),
        (facts(current(), max_age_days=0), "older than 0 days"),
        (facts(current(), forced=True), "forced"),
    ):
        d = plan.decide(fact, NOW)
        assert (d.bake, d.reason) == (True, reason)


def test_offline_is_said() -> None:
    d = plan.decide(facts(current(), offline=True), NOW)
    assert d.notes and "unreachable" in d.notes[0]


def test_diff_marks_security_upgrades() -> None:
    sec = indexes().suites["bookworm-security"]
    changes = plan.diff(
        {"openssl": "3.0.20-1~deb12u2", "gone": "1"},
        {"openssl": "3.0.22-1~deb12u2", "nginx-light": "1.22.1-9+deb12u11"},
        sec,
    )
    assert [(c.name, c.kind, c.security) for c in changes] == [
        ("gone", "removed", False),
        ("nginx-light", "added", True),
        ("openssl", "upgraded", True),
    ]
    from bakehouse import reports

    table = reports.changes_table(
        [
            {"name": c.name, "change": c.kind, "from": c.old, "to": c.new, "security": c.security}
            for c in changes
        ]
    )
    assert "| openssl | upgraded | 3.0.20-1~deb12u2 | 3.0.22-1~deb12u2 | yes |" in table


@pytest.mark.packer
def test_changed_script_changes_the_fingerprint(copy_project) -> None:  # type: ignore[no-untyped-def]
    root = copy_project()
    shutil.copytree(ROOT / "tests" / "hardening", root / "tests" / "hardening")
    target = LocalTarget(Project(root))
    spec = Catalog(root / "images", root / "packer" / "scripts").load("web", TODAY)
    before = target.inputs(spec)
    assert before == target.inputs(spec)  # stable
    script = root / "packer" / "scripts" / "harden.sh"
    script.write_text(script.read_text() + "\n# a change\n")
    after = target.inputs(spec)
    assert after.fingerprint != before.fingerprint and after.base_key == before.base_key
    suite = root / "tests" / "hardening" / "test_sshd.py"
    suite.write_text(suite.read_text() + "\n")
    assert target.inputs(spec).fingerprint not in (before.fingerprint, after.fingerprint)


@pytest.mark.e2e  # the network: with the slow tests, not the fast ones
def test_live_mirror_when_reachable(index_cache: Path) -> None:
    """The same decision against the live Debian mirror, when this machine can reach it."""
    import urllib.request

    try:
        urllib.request.urlopen("http://deb.debian.org/debian/dists/bookworm/InRelease", timeout=5)
    except OSError:
        pytest.skip("the Debian mirror is not reachable from here")
    debian = distro.FAMILIES["debian"]
    ix = debindex.IndexCache(index_cache).load(
        debian.suites(
            distro.release("bookworm"),
            debian.mirror("amd64"),
            debian.security_mirror("amd64"),
            ("main",),
            "amd64",
        )
    )
    cands = ix.candidates()
    old = {"openssl": "3.0.0-1"}  # far older than anything bookworm carries now
    (p,) = debindex.pending(old, ix)
    assert p.name == "openssl" and p.candidate == cands["openssl"][0]
    up_to_date = {"openssl": cands["openssl"][0]}
    assert debindex.pending(up_to_date, ix) == []
