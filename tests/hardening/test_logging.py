"""Logging and file integrity: journald is the one logging system, kept on disk and compressed;
log files readable only by their owner and group; an AIDE baseline checked daily."""

from __future__ import annotations

import pytest

from tests.hardening.controls import Control, ids
from tests.hardening.facts import Facts

BH = "bakehouse"


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-log-01", "The journal is kept on disk", BH, ("Storage", "persistent")),
        Control("bh-log-02", "The journal is compressed", BH, ("Compress", "yes")),
        Control(
            "bh-log-03", "journald does not feed a syslog daemon", BH, ("ForwardToSyslog", "no")
        ),
    ],
    ids=ids,
)
def test_journald(facts: Facts, control: Control) -> None:
    key, want = control.args
    assert facts.journald.get(key) == want, f"{key} = {facts.journald.get(key)!r}"


@pytest.mark.parametrize(
    "control", [Control("bh-log-04", "journald enabled and running", BH)], ids=ids
)
def test_journald_running(facts: Facts, control: Control) -> None:
    unit = facts.unit("systemd-journald.service")
    assert unit.get("ActiveState") == "active", unit
    assert unit.get("UnitFileState") in ("static", "enabled"), unit


@pytest.mark.parametrize(
    "control", [Control("bh-log-05", "Log files readable by owner and group only", BH)], ids=ids
)
def test_log_file_modes(facts: Facts, control: Control) -> None:
    found = facts.scans.get("logperm", [])
    assert found == [], f"{len(found)} log files open to others: {found[:10]}"


@pytest.mark.parametrize(
    "control",
    [
        Control(
            "bh-aide-01",
            "An AIDE baseline of the image, root-only",
            BH,
            ("/var/lib/aide/aide.db",),
        )
    ],
    ids=ids,
)
def test_aide_database(facts: Facts, control: Control) -> None:
    db = facts.stat(control.args[0])
    assert db is not None, "no AIDE database: the baseline was not made at bake time"
    assert db.size > 0 and db.user == "root" and db.mode & 0o077 == 0, db


@pytest.mark.parametrize(
    "control",
    [Control("bh-aide-02", "AIDE checks the image daily", BH, ("dailyaidecheck.timer",))],
    ids=ids,
)
def test_aide_timer(facts: Facts, control: Control) -> None:
    unit = facts.unit(control.args[0])
    assert unit.get("UnitFileState") == "enabled", unit
    assert unit.get("ActiveState") == "active", unit
