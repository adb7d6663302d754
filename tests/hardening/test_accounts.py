"""Accounts and login: no empty passwords, root alone at uid 0, ageing, umask, system shells."""

from __future__ import annotations

import re

import pytest

from tests.hardening.controls import Control, ids
from tests.hardening.facts import FactError, Facts

LB = "dev-sec linux-baseline"
NOLOGIN = {"/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false"}


def _login_defs(facts: Facts) -> dict[str, str]:
    out = {}
    for line in facts.files.get("/etc/login.defs", "").splitlines():
        parts = line.split()
        if len(parts) >= 2 and not parts[0].startswith("#"):
            out[parts[0]] = parts[1]
    return out


def _passwd(facts: Facts) -> list[list[str]]:
    return [
        line.split(":")
        for line in facts.files.get("/etc/passwd", "").splitlines()
        if line.count(":") == 6
    ]


def _shadow(facts: Facts) -> dict[str, str]:
    return {
        line.split(":")[0]: line.split(":")[1]
        for line in facts.files.get("/etc/shadow", "").splitlines()
        if line.count(":") >= 2
    }


LOGIN_DEFS = [
    Control("os-05.umask", "Default umask 027", f"{LB}; CIS 5.5.4", ("UMASK", "027")),
    Control(
        "os-05.max-days",
        "Password maximum age at most 365 days",
        f"{LB}; CIS 5.5.1.2",
        ("PASS_MAX_DAYS", "<=365"),
    ),
    Control(
        "os-05.min-days",
        "Password minimum age at least 1 day",
        f"{LB}; CIS 5.5.1.1",
        ("PASS_MIN_DAYS", ">=1"),
    ),
    Control(
        "os-05.warn-age",
        "Password expiry warning of 7 days",
        f"{LB}; CIS 5.5.1.3",
        ("PASS_WARN_AGE", ">=7"),
    ),
    Control("os-05.retries", "At most 5 login retries", LB, ("LOGIN_RETRIES", "<=5")),
    Control("os-05.timeout", "Login timeout 60 s", LB, ("LOGIN_TIMEOUT", "<=60")),
    Control("os-05.uid-min", "Normal users start at uid 1000", LB, ("UID_MIN", "1000")),
    Control(
        "bh-acct-01",
        "Passwords hashed with yescrypt or SHA-512",
        "CIS 5.4.4",
        ("ENCRYPT_METHOD", "YESCRYPT|SHA512"),
    ),
]


@pytest.mark.parametrize("control", LOGIN_DEFS, ids=ids)
def test_login_defs(facts: Facts, control: Control) -> None:
    key, want = control.args
    value = _login_defs(facts).get(key)
    assert value is not None, f"{key} is not set in /etc/login.defs"
    if want.startswith("<="):
        assert value.isdigit() and int(value) <= int(want[2:]), f"{key} = {value}"
    elif want.startswith(">="):
        assert value.isdigit() and int(value) >= int(want[2:]), f"{key} = {value}"
    else:
        assert re.fullmatch(want, value), f"{key} = {value}, want {want}"


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-acct-02", "No account with an empty password", "CIS 6.2.1", ()),
    ],
    ids=ids,
)
def test_no_empty_passwords(facts: Facts, control: Control) -> None:
    shadow = _shadow(facts)
    assert shadow, "could not read /etc/shadow"
    empty = [user for user, pw in shadow.items() if pw == ""]
    assert empty == [], f"empty passwords: {empty}"


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-acct-03", "root is the only uid 0 account", "CIS 6.2.10", ()),
    ],
    ids=ids,
)
def test_uid0(facts: Facts, control: Control) -> None:
    assert [p[0] for p in _passwd(facts) if p[2] == "0"] == ["root"]


@pytest.mark.parametrize("control", [Control("os-07", "Unique uids and gids", LB, ())], ids=ids)
def test_unique_ids(facts: Facts, control: Control) -> None:
    uids = [p[2] for p in _passwd(facts)]
    gids = [
        line.split(":")[2]
        for line in facts.files.get("/etc/group", "").splitlines()
        if line.count(":") == 3
    ]
    assert len(uids) == len(set(uids)), "duplicate uids"
    assert len(gids) == len(set(gids)), "duplicate gids"


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-acct-04", "System accounts cannot log in", "CIS 5.5.2", ()),
    ],
    ids=ids,
)
def test_system_account_shells(facts: Facts, control: Control) -> None:
    bad = [
        f"{p[0]}:{p[6]}"
        for p in _passwd(facts)
        if int(p[2]) < 1000
        and p[0] not in ("root", "sync", "shutdown", "halt")
        and p[6] not in NOLOGIN
    ]
    assert bad == [], f"system accounts with a login shell: {bad}"


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-acct-05", "root has no usable password", "CIS 5.5.x", ("root",)),
        Control(
            "bh-acct-06",
            "The build user has no password",
            "bakehouse: no build credentials",
            ("admin",),
        ),
    ],
    ids=ids,
)
def test_locked_password(facts: Facts, control: Control) -> None:
    user = control.args[0]
    shadow = _shadow(facts)
    if user not in shadow:
        return
    assert shadow[user] in ("*", "!", "!*") or shadow[user].startswith("!"), (
        f"{user} has a password hash"
    )


@pytest.mark.parametrize(
    "control",
    [
        Control("os-04", "No '.' or empty entry in root's PATH", LB, ()),
    ],
    ids=ids,
)
def test_path(facts: Facts, control: Control) -> None:
    # root's login environment (the suite runs as root: sudo -i reads root's profile)
    text = facts.must("root PATH", "sudo -i sh -c 'echo \"PATH=$PATH\"'")
    lines = [line for line in text.splitlines() if line.startswith("PATH=")]
    if len(lines) != 1:
        raise FactError(f"root PATH: no PATH= line in {text[-200:]!r}")
    path = lines[0].removeprefix("PATH=")
    entries = path.split(":")
    assert "" not in entries and "." not in entries, path


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-acct-07", "Core dumps disabled by limits and systemd", "CIS 1.5.1", ()),
    ],
    ids=ids,
)
def test_core_dumps(facts: Facts, control: Control) -> None:
    assert "hard core 0" in facts.files.get("/etc/security/limits.d/90-bakehouse.conf", "")
    assert "Storage=none" in facts.files.get("/etc/systemd/coredump.conf.d/90-bakehouse.conf", "")


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-acct-08", "sudo logs to its own file and uses a pty", "CIS 5.3.2-5.3.3", ()),
    ],
    ids=ids,
)
def test_sudo_logging(facts: Facts, control: Control) -> None:
    text = facts.files.get("/etc/sudoers.d/10-bakehouse", "")
    assert "use_pty" in text and "logfile" in text, text
