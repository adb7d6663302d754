"""Files, permissions and mounts: account databases, cron, set-id programs, /tmp and /dev/shm."""

from __future__ import annotations

import pytest

from tests.hardening.controls import Control, ids
from tests.hardening.facts import Facts

LB = "dev-sec linux-baseline"


def f(
    cid: str,
    title: str,
    ref: str,
    path: str,
    mode: int,
    owner: str,
    group: str,
    required: bool = True,
) -> Control:
    return Control(cid, title, ref, (path, mode, owner, group, required))


MODES = [
    f(
        "os-02",
        "/etc/shadow root:shadow 0640 or stricter",
        LB,
        "/etc/shadow",
        0o640,
        "root",
        "shadow",
    ),
    f(
        "os-02.backup",
        "/etc/shadow- root:shadow 0640 or stricter",
        "bakehouse",
        "/etc/shadow-",
        0o640,
        "root",
        "shadow",
        False,
    ),
    f(
        "os-03",
        "/etc/passwd root:root 0644 or stricter",
        LB,
        "/etc/passwd",
        0o644,
        "root",
        "root",
    ),
    f(
        "os-03b",
        "/etc/passwd- root:root 0644 or stricter",
        LB,
        "/etc/passwd-",
        0o644,
        "root",
        "root",
        False,
    ),
    f(
        "bh-fs-01",
        "/etc/group root:root 0644 or stricter",
        "bakehouse",
        "/etc/group",
        0o644,
        "root",
        "root",
    ),
    f(
        "bh-fs-02",
        "/etc/group- root:root 0644 or stricter",
        "bakehouse",
        "/etc/group-",
        0o644,
        "root",
        "root",
        False,
    ),
    f(
        "bh-fs-03",
        "/etc/gshadow root:shadow 0640 or stricter",
        "bakehouse",
        "/etc/gshadow",
        0o640,
        "root",
        "shadow",
    ),
    f(
        "bh-fs-04",
        "/etc/gshadow- root:shadow 0640 or stricter",
        "bakehouse",
        "/etc/gshadow-",
        0o640,
        "root",
        "shadow",
        False,
    ),
    f(
        "os-05.file",
        "/etc/login.defs root:root, not writable by others",
        LB,
        "/etc/login.defs",
        0o644,
        "root",
        "root",
    ),
    f(
        "os-13.crontab",
        "/etc/crontab root-only",
        LB,
        "/etc/crontab",
        0o600,
        "root",
        "root",
        False,
    ),
    f(
        "os-13.hourly",
        "/etc/cron.hourly root-only",
        "bakehouse",
        "/etc/cron.hourly",
        0o700,
        "root",
        "root",
        False,
    ),
    f(
        "os-13.daily",
        "/etc/cron.daily root-only",
        "bakehouse",
        "/etc/cron.daily",
        0o700,
        "root",
        "root",
        False,
    ),
    f(
        "os-13.weekly",
        "/etc/cron.weekly root-only",
        "bakehouse",
        "/etc/cron.weekly",
        0o700,
        "root",
        "root",
        False,
    ),
    f(
        "os-13.monthly",
        "/etc/cron.monthly root-only",
        "bakehouse",
        "/etc/cron.monthly",
        0o700,
        "root",
        "root",
        False,
    ),
    f(
        "os-13.crond",
        "/etc/cron.d root-only",
        "bakehouse",
        "/etc/cron.d",
        0o700,
        "root",
        "root",
        False,
    ),
    f(
        "bh-fs-05",
        "cron.allow restricts cron to root",
        "bakehouse",
        "/etc/cron.allow",
        0o640,
        "root",
        "root",
    ),
    f(
        "bh-fs-06",
        "at.allow restricts at to root",
        "bakehouse",
        "/etc/at.allow",
        0o640,
        "root",
        "root",
    ),
    f("bh-fs-07", "/etc/sudoers root-only", "bakehouse", "/etc/sudoers", 0o440, "root", "root"),
    f(
        "bh-fs-08",
        "/etc/issue.net root:root 0644",
        "bakehouse",
        "/etc/issue.net",
        0o644,
        "root",
        "root",
    ),
    f("bh-fs-09", "/etc/issue root:root 0644", "bakehouse", "/etc/issue", 0o644, "root", "root"),
    f("bh-fs-19", "/etc/shells root:root 0644", "bakehouse", "/etc/shells", 0o644, "root", "root"),
    f(
        "bh-fs-20",
        "/etc/security/opasswd root:root 0600",
        "bakehouse",
        "/etc/security/opasswd",
        0o600,
        "root",
        "root",
    ),
    f(
        "bh-fs-21",
        "The boot loader's config root-only, where there is one",
        "bakehouse",
        "/boot/grub/grub.cfg",
        0o600,
        "root",
        "root",
        False,
    ),
]


@pytest.mark.parametrize(
    "control",
    [
        Control(
            "bh-banner-01",
            "The console banner warns, naming no system",
            "bakehouse",
            ("/etc/issue",),
        ),
        Control(
            "bh-banner-02",
            "The SSH banner warns, naming no system",
            "bakehouse",
            ("/etc/issue.net",),
        ),
    ],
    ids=ids,
)
def test_banner(facts: Facts, control: Control) -> None:
    path = control.args[0]
    text = facts.files.get(path, "")
    assert text.strip(), f"{path} is empty or missing: no warning before login"
    leaks = [w for w in ("\\m", "\\r", "\\s", "\\v") if w in text]
    assert leaks == [] and "debian" not in text.lower(), f"{path} names the system: {text!r}"


@pytest.mark.parametrize("control", MODES, ids=ids)
def test_file_mode(facts: Facts, control: Control) -> None:
    path, mode, owner, group, required = control.args
    st = facts.stat(path)
    if st is None:
        assert not required, f"{path} is missing"
        return
    assert (st.user, st.group) == (owner, group), f"{path} is {st.user}:{st.group}"
    assert st.mode & ~mode == 0, f"{path} mode {oct(st.mode)} is wider than {oct(mode)}"


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-fs-10", "No cron.deny (allow-list instead)", "bakehouse", ("/etc/cron.deny",)),
        Control("bh-fs-11", "No at.deny (allow-list instead)", "bakehouse", ("/etc/at.deny",)),
        Control("os-01", "No hosts.equiv", f"{LB}", ("/etc/hosts.equiv",)),
        Control(
            "os-09",
            "No .rhosts or .netrc for root",
            LB,
            ("/root/.rhosts", "/root/.netrc"),
        ),
        Control("bh-fs-12", "No message of the day leaking versions", "bakehouse", ("/etc/motd",)),
    ],
    ids=ids,
)
def test_file_absent(facts: Facts, control: Control) -> None:
    present = [p for p in control.args if facts.stat(p) is not None]
    assert present == [], f"present: {present}"


@pytest.mark.parametrize(
    "control",
    [
        Control(
            "bh-fs-13",
            "No world-writable directory without the sticky bit",
            "bakehouse",
            ("wwdir",),
        ),
        Control("bh-fs-14", "No world-writable files", "bakehouse", ("wwfile",)),
        Control("bh-fs-15", "No files without an owner", "bakehouse", ("nouser",)),
        Control("bh-fs-16", "No files without a group", "bakehouse", ("nogroup",)),
    ],
    ids=ids,
)
def test_scan_empty(facts: Facts, control: Control) -> None:
    found = facts.scans.get(control.args[0], [])
    assert found == [], f"{len(found)} found: {found[:10]}"


# The set-id programs a minimal Debian 12 server needs; anything else is a finding (os-06).
SUID_ALLOWED = {
    "/usr/bin/chfn",
    "/usr/bin/chsh",
    "/usr/bin/gpasswd",
    "/usr/bin/mount",
    "/usr/bin/newgrp",
    "/usr/bin/passwd",
    "/usr/bin/su",
    "/usr/bin/sudo",
    "/usr/bin/umount",
    "/usr/lib/dbus-1.0/dbus-daemon-launch-helper",
}
SGID_ALLOWED = {
    "/usr/bin/chage",
    "/usr/bin/expiry",
    "/usr/bin/ssh-agent",
    "/usr/bin/crontab",
    "/usr/sbin/unix_chkpwd",
    # Ubuntu's libpam-modules: unix_chkpwd's twin for pam_extrausers, reads /etc/shadow the same way
    "/usr/sbin/pam_extrausers_chkpwd",
    "/usr/bin/wall",
    "/usr/bin/dotlockfile",
}
SUID_FORBIDDEN = {
    "/usr/lib/openssh/ssh-keysign",
    "/usr/bin/rcp",
    "/usr/bin/rlogin",
    "/usr/bin/rsh",
    "/usr/bin/arping",
    "/usr/sbin/pppd",
    "/usr/bin/mtr",
}


@pytest.mark.parametrize(
    "control",
    [
        Control("os-06", "No blacklisted set-uid programs", LB, ("suid", SUID_FORBIDDEN)),
        Control(
            "bh-fs-17",
            "Set-uid programs are on the allow-list",
            "bakehouse",
            ("suid-allow", SUID_ALLOWED),
        ),
        Control(
            "bh-fs-18",
            "Set-gid programs are on the allow-list",
            "bakehouse",
            ("sgid-allow", SGID_ALLOWED),
        ),
    ],
    ids=ids,
)
def test_setid(facts: Facts, control: Control) -> None:
    kind, listed = control.args
    if kind == "suid":
        bad = sorted(set(facts.scans.get("suid", [])) & listed)
    else:
        found = set(facts.scans.get(kind.split("-")[0], []))
        bad = sorted(found - listed)
    assert bad == [], f"unexpected set-id programs: {bad}"


MOUNTS = [
    Control("bh-mnt-01", "/tmp is its own filesystem", "bakehouse", ("/tmp", None)),
    Control("bh-mnt-02", "/tmp mounted nodev", "bakehouse", ("/tmp", "nodev")),
    Control("bh-mnt-03", "/tmp mounted nosuid", "bakehouse", ("/tmp", "nosuid")),
    Control("bh-mnt-04", "/tmp mounted noexec", "bakehouse", ("/tmp", "noexec")),
    Control("bh-mnt-05", "/dev/shm mounted nodev", "bakehouse", ("/dev/shm", "nodev")),
    Control("bh-mnt-06", "/dev/shm mounted nosuid", "bakehouse", ("/dev/shm", "nosuid")),
    Control("bh-mnt-07", "/dev/shm mounted noexec", "bakehouse", ("/dev/shm", "noexec")),
    Control("bh-mnt-08", "/home a separate filesystem, nodev", "bakehouse", ("/home", "nodev")),
    Control("bh-mnt-09", "/home mounted nosuid", "bakehouse", ("/home", "nosuid")),
    Control("bh-mnt-10", "/var a separate filesystem, nodev", "bakehouse", ("/var", "nodev")),
    Control("bh-mnt-11", "/var mounted nosuid", "bakehouse", ("/var", "nosuid")),
    Control(
        "bh-mnt-12", "/var/tmp a separate filesystem, nodev", "bakehouse", ("/var/tmp", "nodev")
    ),
    Control("bh-mnt-13", "/var/tmp mounted nosuid", "bakehouse", ("/var/tmp", "nosuid")),
    Control("bh-mnt-14", "/var/tmp mounted noexec", "bakehouse", ("/var/tmp", "noexec")),
    Control(
        "bh-mnt-15", "/var/log a separate filesystem, nodev", "bakehouse", ("/var/log", "nodev")
    ),
    Control("bh-mnt-16", "/var/log mounted nosuid", "bakehouse", ("/var/log", "nosuid")),
    Control("bh-mnt-17", "/var/log mounted noexec", "bakehouse", ("/var/log", "noexec")),
    Control(
        "bh-mnt-18",
        "/var/log/audit a separate filesystem, nodev",
        "bakehouse",
        ("/var/log/audit", "nodev"),
    ),
    Control(
        "bh-mnt-19", "/var/log/audit mounted nosuid", "bakehouse", ("/var/log/audit", "nosuid")
    ),
    Control(
        "bh-mnt-20", "/var/log/audit mounted noexec", "bakehouse", ("/var/log/audit", "noexec")
    ),
]


@pytest.mark.parametrize("control", MOUNTS, ids=ids)
def test_mount_options(facts: Facts, control: Control) -> None:
    target, option = control.args
    assert target in facts.mounts, f"{target} is not a separate mount"
    if option is not None:
        options = facts.mounts[target]["options"].split(",")
        assert option in options, f"{target} options: {options}"
