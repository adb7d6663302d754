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
    Control("os-05.umask", "Default umask 027", LB, ("UMASK", "027")),
    Control(
        "os-05.max-days",
        "Password maximum age at most 365 days",
        LB,
        ("PASS_MAX_DAYS", "<=365"),
    ),
    Control(
        "os-05.min-days",
        "Password minimum age at least 1 day",
        LB,
        ("PASS_MIN_DAYS", ">=1"),
    ),
    Control(
        "os-05.warn-age",
        "Password expiry warning of 7 days",
        LB,
        ("PASS_WARN_AGE", ">=7"),
    ),
    Control("os-05.retries", "At most 5 login retries", LB, ("LOGIN_RETRIES", "<=5")),
    Control("os-05.timeout", "Login timeout 60 s", LB, ("LOGIN_TIMEOUT", "<=60")),
    Control("os-05.uid-min", "Normal users start at uid 1000", LB, ("UID_MIN", "1000")),
    Control(
        "bh-acct-01",
        "Passwords hashed with yescrypt or SHA-512",
        "bakehouse",
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
        Control("bh-acct-02", "No account with an empty password", "bakehouse", ()),
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
        Control("bh-acct-03", "root is the only uid 0 account", "bakehouse", ()),
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
        Control("bh-acct-04", "System accounts cannot log in", "bakehouse", ()),
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
        Control("bh-acct-05", "root has no usable password", "bakehouse", ("root",)),
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
        Control("bh-acct-07", "Core dumps disabled by limits and systemd", "bakehouse", ()),
    ],
    ids=ids,
)
def test_core_dumps(facts: Facts, control: Control) -> None:
    assert "hard core 0" in facts.files.get("/etc/security/limits.d/90-bakehouse.conf", "")
    assert "Storage=none" in facts.files.get("/etc/systemd/coredump.conf.d/90-bakehouse.conf", "")


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-acct-08", "sudo logs to its own file and uses a pty", "bakehouse", ()),
    ],
    ids=ids,
)
def test_sudo_logging(facts: Facts, control: Control) -> None:
    text = facts.files.get("/etc/sudoers.d/10-bakehouse", "")
    assert "use_pty" in text and "logfile" in text, text


def _group(facts: Facts) -> list[list[str]]:
    return [
        line.split(":")
        for line in facts.files.get("/etc/group", "").splitlines()
        if line.count(":") == 3
    ]


@pytest.mark.parametrize(
    "control",
    [Control("bh-acct-09", "Accounts lock at most 45 days after expiry", "bakehouse")],
    ids=ids,
)
def test_inactive_lock(facts: Facts, control: Control) -> None:
    text = facts.files.get("/etc/default/useradd", "")
    values = [
        line.split("=", 1)[1].strip() for line in text.splitlines() if line.startswith("INACTIVE=")
    ]
    assert values, "INACTIVE is not set in /etc/default/useradd"
    assert values[-1].isdigit() and 0 <= int(values[-1]) <= 45, f"INACTIVE={values[-1]}"


@pytest.mark.parametrize(
    "control",
    [Control("bh-acct-10", "No password change date in the future", "bakehouse")],
    ids=ids,
)
def test_password_change_dates(facts: Facts, control: Control) -> None:
    today = facts.now // 86400
    future = [
        line.split(":")[0]
        for line in facts.files.get("/etc/shadow", "").splitlines()
        if line.count(":") >= 2 and line.split(":")[2].isdigit() and int(line.split(":")[2]) > today
    ]
    assert future == [], f"changed in the future: {future}"


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-acct-11", "root is the only account with gid 0", "bakehouse", ("account",)),
        Control("bh-acct-12", "root is the only group with gid 0", "bakehouse", ("group",)),
    ],
    ids=ids,
)
def test_gid0(facts: Facts, control: Control) -> None:
    if control.args[0] == "account":
        others = {"root", "sync", "shutdown", "halt", "operator"}
        found = [p[0] for p in _passwd(facts) if p[3] == "0" and p[0] not in others]
        assert found == [], f"accounts with gid 0: {found}"
    else:
        assert [g[0] for g in _group(facts) if g[2] == "0"] == ["root"]


def _umask_ok(value: str) -> bool:
    return value.isdigit() and (int(value, 8) & 0o027) == 0o027


@pytest.mark.parametrize(
    "control",
    [Control("bh-acct-13", "root's shell does not loosen the umask", "bakehouse")],
    ids=ids,
)
def test_root_umask(facts: Facts, control: Control) -> None:
    loose = [
        f"{path}: {line.strip()}"
        for path in ("/root/.bashrc", "/root/.profile")
        for line in facts.files.get(path, "").splitlines()
        if line.strip().startswith("umask") and not _umask_ok(line.split()[-1])
    ]
    assert loose == [], loose


def _profile_lines(facts: Facts) -> list[tuple[str, str]]:
    return [
        (path, line.strip())
        for path, text in facts.profiles.items()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


@pytest.mark.parametrize(
    "control",
    [Control("bh-acct-14", "Idle login shells end after 15 minutes", "bakehouse")],
    ids=ids,
)
def test_shell_timeout(facts: Facts, control: Control) -> None:
    lines = [line for _, line in _profile_lines(facts)]
    values = [line.split("=", 1)[1].strip() for line in lines if line.startswith("TMOUT=")]
    assert values, "TMOUT is not set for login shells"
    assert all(v.isdigit() and 0 < int(v) <= 900 for v in values), values
    assert any(re.fullmatch(r"readonly TMOUT(=\d+)?", line) for line in lines), "TMOUT not readonly"
    assert any(re.fullmatch(r"export TMOUT(=\d+)?", line) for line in lines), "TMOUT not exported"


@pytest.mark.parametrize(
    "control",
    [Control("bh-acct-15", "Login shells start with umask 027 or stricter", "bakehouse")],
    ids=ids,
)
def test_shell_umask(facts: Facts, control: Control) -> None:
    masks = [
        (path, line.split()[-1])
        for path, line in _profile_lines(facts)
        if line.startswith("umask ")
    ]
    assert masks, "no umask set for login shells"
    assert all(_umask_ok(m) for _, m in masks), masks


@pytest.mark.parametrize(
    "control",
    [
        Control(
            "bh-acct-16", "Every account's password is in /etc/shadow", "bakehouse", ("shadowed",)
        ),
        Control("bh-acct-17", "Every account's group exists", "bakehouse", ("groups",)),
        Control("bh-acct-18", "No members in the shadow group", "bakehouse", ("shadow-group",)),
        Control("bh-acct-19", "No duplicate user names", "bakehouse", ("user-names",)),
        Control("bh-acct-20", "No duplicate group names", "bakehouse", ("group-names",)),
        Control(
            "bh-acct-21", "Accounts without a login shell are locked", "bakehouse", ("locked",)
        ),
    ],
    ids=ids,
)
def test_account_databases(facts: Facts, control: Control) -> None:
    what = control.args[0]
    passwd, groups = _passwd(facts), _group(facts)
    if what == "shadowed":
        assert [p[0] for p in passwd if p[1] != "x"] == []
    elif what == "groups":
        gids = {g[2] for g in groups}
        assert [p[0] for p in passwd if p[3] not in gids] == []
    elif what == "shadow-group":
        shadow = [g for g in groups if g[0] == "shadow"]
        assert shadow, "no shadow group"
        members = [m for m in shadow[0][3].split(",") if m]
        primary = [p[0] for p in passwd if p[3] == shadow[0][2]]
        assert members == primary == [], f"members {members}, primary {primary}"
    elif what == "user-names":
        names = [p[0] for p in passwd]
        assert len(names) == len(set(names)), "duplicate user names"
    elif what == "group-names":
        names = [g[0] for g in groups]
        assert len(names) == len(set(names)), "duplicate group names"
    else:
        shadow = _shadow(facts)
        unlocked = [
            p[0]
            for p in passwd
            if p[0] != "root"
            and p[6] in NOLOGIN
            and not (shadow.get(p[0], "").startswith(("!", "*")))
        ]
        assert unlocked == [], f"not locked: {unlocked}"


@pytest.mark.parametrize(
    "control",
    [Control("bh-acct-22", "Home folders private to their user (0750 or stricter)", "bakehouse")],
    ids=ids,
)
def test_home_folders(facts: Facts, control: Control) -> None:
    bad = [
        f"{user}: {home} {mode} {owner}"
        for user, (home, mode, owner) in facts.homes.items()
        if mode == "missing" or owner != user or int(mode, 8) & 0o027
    ]
    assert bad == [], bad


@pytest.mark.parametrize(
    "control",
    [
        Control(
            "bh-acct-23",
            "No .forward, .rhosts or .netrc in home folders",
            "bakehouse",
            ("dotfile",),
        ),
        Control("bh-acct-24", "No dot file writable by group or others", "bakehouse", ("dotperm",)),
    ],
    ids=ids,
)
def test_dot_files(facts: Facts, control: Control) -> None:
    found = facts.scans.get(control.args[0], [])
    assert found == [], found


@pytest.mark.parametrize(
    "control",
    [Control("bh-acct-25", "su only for members of an empty group", "bakehouse")],
    ids=ids,
)
def test_su_restricted(facts: Facts, control: Control) -> None:
    lines = [
        line.split()
        for line in facts.files.get("/etc/pam.d/su", "").splitlines()
        if line.split()[:3] == ["auth", "required", "pam_wheel.so"]
    ]
    assert lines, "su is open to everyone: no pam_wheel line in /etc/pam.d/su"
    options = dict(o.partition("=")[::2] for o in lines[0][3:])
    assert "use_uid" in options and options.get("group"), lines[0]
    group = [g for g in _group(facts) if g[0] == options["group"]]
    assert group, f"group {options['group']} does not exist"
    members = [m for m in group[0][3].split(",") if m]
    assert members == [], f"{options['group']} has members: {members}"


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-acct-26", "sudo never skips authentication globally", "bakehouse", ("auth",)),
        Control(
            "bh-acct-27", "sudo asks again after 15 minutes at most", "bakehouse", ("timeout",)
        ),
    ],
    ids=ids,
)
def test_sudo_policy(facts: Facts, control: Control) -> None:
    lines = [
        (path, line.strip())
        for path, text in facts.sudoers.items()
        for line in text.splitlines()
        if line.strip().startswith("Defaults")
    ]
    if control.args[0] == "auth":
        assert [x for x in lines if "!authenticate" in x[1]] == []
    else:
        timeouts = [
            (p, m.group(1))
            for p, line in lines
            for m in [re.search(r"timestamp_timeout\s*=\s*(-?\d+)", line)]
            if m
        ]
        assert all(0 <= int(v) <= 15 for _, v in timeouts), timeouts
