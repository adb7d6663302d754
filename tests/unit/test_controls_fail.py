"""Every hardening control is shown to fail, and none passes on a fact it could not read.

The controls run against real recorded answers of the baked web image (every control passes
there) and of its unhardened base (those harden.sh fixes fail there). Each control then gets
the web image's answers with exactly one thing wrong, and must fail — alone, or with the few
controls that judge the same thing (listed with the mutation). Each command the suite sends is
then made to fail, and to print nothing: every control that reads it must error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.unit.replay import Check, Recording, checks, commands_used, run_all

# ---- what harden.sh (and the rest of the bake) fixes: each fails on the unhardened base -------

HARDEN = {
    *("os-05.umask", "os-05.max-days", "os-05.min-days", "bh-acct-07", "bh-acct-08"),
    *("os-13.daily", "os-13.crond", "bh-fs-05", "bh-fs-06", "bh-fs-12", "os-06", "bh-fs-17"),
    "os-13.monthly",  # acct brings /etc/cron.monthly
    *("bh-mnt-01", "bh-mnt-02", "bh-mnt-03", "bh-mnt-04", "bh-mnt-07"),
    *(f"os-10.{m}" for m in ("cramfs", "freevxfs", "hfs", "hfsplus", "jffs2", "udf")),
    *(f"os-10.{m}" for m in ("squashfs", "usb-storage", "dccp", "sctp", "rds", "tipc")),
    "os-10.firewire-core",
    *("bh-audit-01", "bh-audit-02", "bh-audit-03", "bh-audit-04", "bh-audit-05"),
    *("sshd-02", "sshd-03", "bh-ssh-01", "sshd-06", "sshd-13", "sshd-18", "sshd-19", "sshd-24"),
    *("sshd-27", "sshd-35", "sshd-36", "sshd-39", "sshd-40", "sshd-42", "sshd-45", "sshd-46"),
    *("sshd-47", "bh-ssh-02", "sshd-05", "sshd-14"),
    *("sysctl-02", "sysctl-02.default", "sysctl-05", "sysctl-06", "sysctl-08", "sysctl-09"),
    *("sysctl-10", "sysctl-13.default", "sysctl-14", "sysctl-14.default", "sysctl-15"),
    *("sysctl-15.default", "sysctl-16", "sysctl-16.default", "sysctl-17", "sysctl-17.default"),
    *("sysctl-20", "sysctl-20.default", "sysctl-25", "sysctl-25.default", "sysctl-30"),
    *("bh-kernel-01", "bh-kernel-03", "bh-kernel-05"),
    *("bh-acct-09", "bh-acct-14", "bh-acct-15", "bh-acct-22", "bh-acct-25"),
    *("bh-banner-01", "bh-banner-02", "bh-net-01"),
    *("bh-fw-01", "bh-fw-02", "bh-fw-03", "bh-fw-04", "bh-fw-05", "bh-fw-06"),
    *("bh-log-01", "bh-log-02", "bh-log-03", "bh-log-05"),
    *("bh-pam-02", "bh-pam-04", "bh-pam-05", "bh-pam-06", "bh-pam-07", "bh-pam-08"),
    *("bh-pam-11", "bh-pam-12", "bh-pam-13", "bh-pam-14", "bh-pam-15", "bh-pam-16"),
    "bh-pam-17",
}
ROLE = {"bh-web-01", "bh-web-02", "bh-web-03", "bh-web-04"}  # packages: and web.sh
# cleanup.sh: the base keeps its bootstrap's temporary files, and has no AIDE baseline
CLEANUP = {"bh-sec-09", "bh-aide-01"}
# filesystems.sh: /var, /var/tmp, /var/log, /var/log/audit and /home on the data disk
FILESYSTEMS = {f"bh-mnt-{n:02d}" for n in range(8, 21)}
# Debian 13's own base gets a few of those right (a tmpfs /tmp, journal and log modes, nothing
# left by the bootstrap) and a few more wrong (AppArmor 4's unconfined profiles, the
# protected_fifos/regular defaults), which harden.sh then fixes
ALREADY_RIGHT = {
    "bookworm": set(),
    "trixie": {"bh-mnt-01", "bh-mnt-02", "bh-mnt-03", "bh-acct-22", "bh-log-05", "bh-sec-09"},
}
ONLY_WRONG = {
    "bookworm": set(),
    "trixie": {"bh-mac-02", "sysctl-34.fifos", "sysctl-34.regular"},
}
RELEASES = ("bookworm", "trixie")  # tests/fixtures/hardening/<release>/{web,base}


def fixed_by_the_bake(release: str) -> set[str]:
    """The controls the release's unhardened base fails and a bake of it passes."""
    return (HARDEN | ROLE | CLEANUP | FILESYSTEMS | ONLY_WRONG[release]) - ALREADY_RIGHT[release]


@pytest.fixture(scope="module")
def web() -> Recording:
    return Recording.load("web")


# on web, two controls do not apply: cron is not installed, and serving HTTP is its role
NOT_ON_WEB = {"bh-svc-12", "bh-pkg-25"}


@pytest.fixture(scope="module")
def baseline(web: Recording, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return run_all(web, tmp_path_factory.mktemp("baseline")).outcomes


@pytest.mark.parametrize("release", RELEASES)
def test_every_control_passes_on_the_baked_web_image(release: str, tmp_path: Path) -> None:
    run = run_all(Recording.load("web", release), tmp_path)
    assert len(run.outcomes) == len({c.id for c in checks()}) > 280
    assert {k: v for k, v in run.outcomes.items() if v != "passed"} == dict.fromkeys(
        NOT_ON_WEB, "skipped"
    )


@pytest.mark.parametrize("release", RELEASES)
def test_the_unhardened_base_fails_exactly_what_the_bake_fixes(
    release: str, tmp_path: Path
) -> None:
    run = run_all(Recording.load("base", release), tmp_path)
    failed = {k for k, v in run.outcomes.items() if v == "failed"}
    errors = {k for k, v in run.outcomes.items() if v == "error"}
    fixed = fixed_by_the_bake(release)
    assert failed | errors == fixed, (sorted((failed | errors) - fixed), sorted(fixed - failed))
    assert errors == {"bh-web-04"}  # the base has no nginx whose configuration could be read
    assert {k for k, v in run.outcomes.items() if v == "skipped"} == NOT_ON_WEB


# ---- one thing wrong --------------------------------------------------------------------------


@dataclass(frozen=True)
class Wrong:
    """One change to the web image's answers, and the other controls it also breaks."""

    change: Callable[[Recording], None]
    also: frozenset[str] = frozenset()  # fail with it
    moot: frozenset[str] = frozenset()  # no longer apply (skipped)


def sub(marker: str, pattern: str, repl: str, flags: int = re.M) -> Callable[[Recording], None]:
    """Replace ``pattern`` in the answer of the command containing ``marker`` (must match)."""

    def change(rec: Recording) -> None:
        answer = rec.answer(marker)
        new, n = re.subn(pattern, repl, answer["stdout"], flags=flags)
        assert n, f"{pattern!r} not in the answer to {marker!r}"
        answer["stdout"] = new

    return change


def add(marker: str, line: str) -> Callable[[Recording], None]:
    def change(rec: Recording) -> None:
        rec.answer(marker)["stdout"] += line + "\n"

    return change


def candidates(name: str, version: str, security: bool) -> Callable[[Recording], None]:
    def change(rec: Recording) -> None:
        rec.candidates[name] = [version, security]

    return change


def unit(name: str, prop: str, value: str) -> Callable[[Recording], None]:
    return sub(
        "systemctl show",
        rf"(^Id={re.escape(name)}\n(?:\w+=.*\n)*?){prop}=.*$",
        rf"\1{prop}={value}",
    )


def mounts(target: str, option: str | None) -> Callable[[Recording], None]:
    """Drop a mount (option None) or one of its options from findmnt's answer."""

    def change(rec: Recording) -> None:
        answer = rec.answer("findmnt")
        data = json.loads(answer["stdout"])

        def walk(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
            out = []
            for node in nodes:
                if node["target"] == target:
                    if option is None:
                        continue
                    options = node["options"].split(",")
                    assert option in options
                    node["options"] = ",".join(o for o in options if o != option)
                node["children"] = walk(node.get("children", []))
                out.append(node)
            return out

        data["filesystems"] = walk(data["filesystems"])
        answer["stdout"] = json.dumps(data)

    return change


STAT = "stat -c '%n|%a|%U|%G|%F|%s'"
FIND = "find / -xdev"
SSHD = "sshd -T"


def file_block(path: str) -> str:
    """The files fact's command (it names every file it reads)."""
    return f"echo '=== '{path};"


def stat_line(path: str) -> Callable[[Recording], None]:
    """A path's mode opened to everyone (777 for a folder, 666 for a file); an absent path
    made present."""

    def change(rec: Recording) -> None:
        answer = rec.answer(STAT)
        lines = answer["stdout"].splitlines()
        for i, line in enumerate(lines):
            parts = line.split("|")
            if parts[0] == path:
                parts[1] = "777" if parts[4] == "directory" else "666"
                lines[i] = "|".join(parts)
                break
            if parts == ["absent", path]:
                lines[i] = f"{path}|644|root|root|regular file|10"
                break
        else:
            raise AssertionError(f"{path} not in the stats answer")
        answer["stdout"] = "\n".join(lines) + "\n"

    return change


def login_defs(key: str, want: str) -> Wrong:
    if want.startswith("<="):
        bad = str(int(want[2:]) + 1)
    elif want.startswith(">="):
        bad = str(int(want[2:]) - 1)
    else:
        bad = {"UMASK": "022", "UID_MIN": "500", "ENCRYPT_METHOD": "MD5"}[key]
    return Wrong(sub(file_block("/etc/login.defs"), rf"^{key}\s+\S+", f"{key}\t{bad}"))


def sysctl(key: str, allowed: tuple[str, ...]) -> Wrong:
    bad = next(v for v in ("0", "1", "1000") if v not in allowed)
    return Wrong(sub("sysctl -a", rf"^{re.escape(key)} = .*$", f"{key} = {bad}"))


SSHD_BAD = {
    "port": "2222",
    "syslogfacility": "USER",
    "loglevel": "INFO",
    "logingracetime": "120",
    "maxauthtries": "6",
    "maxsessions": "64",
    "maxstartups": "100:30:200",
    "clientaliveinterval": "0",
    "clientalivecountmax": "10",
    "banner": "none",
}


def sshd_setting(key: str, want: str) -> Wrong:
    bad = SSHD_BAD.get(key) or {"yes": "no", "no": "yes"}[want]
    if key == "debianbanner":  # read from the config files, not sshd -T
        return Wrong(sub("sshd_config.d", r"^DebianBanner\s+no$", "DebianBanner yes", re.M | re.I))
    return Wrong(sub(SSHD, rf"^{key} .*$", f"{key} {bad}"))


WEAK = {
    "ciphers": "3des-cbc",
    "kexalgorithms": "diffie-hellman-group1-sha1",
    "macs": "hmac-md5",
    "hostkeyalgorithms": "ssh-rsa",
}


def wrong_for(check: Check) -> Wrong:
    """The one wrong answer for a control, by what kind of control it is."""
    kind = check.function.__name__
    args = check.control.args
    if check.id in SPECIFIC:
        return SPECIFIC[check.id]
    if kind == "test_login_defs":
        return login_defs(*args)
    if kind == "test_sysctl":
        return sysctl(*args)
    if kind == "test_sshd_setting":
        return sshd_setting(*args)
    if kind == "test_sshd_algorithms":
        return Wrong(sub(SSHD, rf"^({args[0]} .*)$", rf"\1,{WEAK[args[0]]}"))
    if kind in ("test_file_mode", "test_sshd_file_modes", "test_aide_database"):
        return Wrong(stat_line(args[0]))
    if kind == "test_file_absent":
        return Wrong(stat_line(args[0]))
    if kind == "test_scan_empty":
        return Wrong(add(FIND, f"{args[0]} /srv/planted"))
    if kind == "test_scan_secrets":
        return Wrong(add(FIND, f"{args[0]} /home/admin/planted"))
    if kind == "test_mount_options":
        return Wrong(mounts(*args))
    if kind == "test_module_disabled":
        return Wrong(
            sub(
                "modprobe -n",
                rf"^{re.escape(args[0])}\|.*$",
                f"{args[0]}|insmod /lib/modules/x/{args[0]}.ko |0",
            )
        )
    if kind == "test_package_absent":
        return Wrong(add("dpkg-query", f"ii \t{args[0]}\t1.0-1"))
    if kind == "test_package_present":
        return Wrong(sub("dpkg-query", rf"^ii\s*\t{re.escape(args[0])}(:\w+)?\t.*\n", ""))
    if kind == "test_service_running":
        return Wrong(unit(args[0], "ActiveState", "failed"))
    if kind == "test_service_not_running":
        return Wrong(unit(args[0], "ActiveState", "active"))
    if kind == "test_audit":
        if args[0] == "enabled 2":
            return Wrong(sub("auditctl", r"^enabled 2$", "enabled 1"))
        return Wrong(sub("auditctl", rf"^.*{re.escape(args[0])}.*\n", ""))
    raise KeyError(f"no wrong answer for {check.id} ({kind})")


PASSWD = file_block("/etc/passwd")  # the files fact's command reads passwd, shadow, group…
SHADOW_ROOT = r"^root:\*:"
HASH = "$y$j9T$planted$0123456789abcdefghijklmnopqrstuvwxyzABCD"
SPECIFIC: dict[str, Wrong] = {
    # accounts: one line of passwd, shadow or group
    # an empty password also leaves a no-login account unlocked
    "bh-acct-02": Wrong(sub(PASSWD, r"^daemon:\*:", "daemon::"), frozenset({"bh-acct-21"})),
    # a second uid 0 is also a duplicate uid
    "bh-acct-03": Wrong(
        sub(
            PASSWD,
            r"^(root:x:0:0:.*)\n((?:.*\n)*?)(root:\*:.*)$",
            "\\1\ntoor:x:0:1::/root:/usr/sbin/nologin\n\\2\\3\ntoor:*:20000:0:99999:7:::",
        ),
        frozenset({"os-07"}),
    ),
    "os-07": Wrong(sub(PASSWD, r"^(daemon:x:1:)$", "\\1\ndaemon2:x:1:")),
    "bh-acct-04": Wrong(sub(PASSWD, r"^(daemon:.*:)/usr/sbin/nologin$", r"\1/bin/sh")),
    "bh-acct-05": Wrong(sub(PASSWD, SHADOW_ROOT, f"root:{HASH}:")),
    "bh-acct-06": Wrong(sub(PASSWD, r"^admin:\*:", f"admin:{HASH}:")),
    "os-04": Wrong(sub("PATH=$PATH", r"^PATH=", "PATH=.:")),
    "bh-acct-07": Wrong(sub(PASSWD, r"^\* hard core 0$", "* hard core unlimited")),
    "bh-acct-08": Wrong(sub(PASSWD, r"^Defaults use_pty\n", "")),
    # set-id programs: a denied one is also outside the allow-list
    "os-06": Wrong(add(FIND, "suid /usr/bin/rsh"), frozenset({"bh-fs-17"})),
    "bh-fs-17": Wrong(add(FIND, "suid /usr/local/bin/planted")),
    "bh-fs-18": Wrong(add(FIND, "sgid /usr/local/bin/planted")),
    # without a /tmp mount, none of its options can hold
    "bh-mnt-01": Wrong(mounts("/tmp", None), frozenset({"bh-mnt-02", "bh-mnt-03", "bh-mnt-04"})),
    # patch level: any pending update is pending, a security one too
    "bh-patch-01": Wrong(candidates("nginx", "1.22.1-9+deb12u99", False)),
    "bh-patch-02": Wrong(candidates("openssl", "99.0-1", True), frozenset({"bh-patch-01"})),
    "bh-patch-03": Wrong(sub("uname -r", r"^.*$", "6.1.0-1-cloud-amd64")),
    # role: web
    "bh-web-01": Wrong(
        sub("dpkg-query", r"^ii \tnginx(-light)?\t.*\n", ""),
    ),
    "bh-web-02": Wrong(unit("nginx.service", "ActiveState", "inactive")),
    "bh-web-03": Wrong(sub("ss -H", r"^.*nginx.*\n", "")),
    "bh-web-04": Wrong(sub("nginx -T", r"server_tokens off;", "server_tokens on;")),
    # nothing from the build
    "bh-sec-01": Wrong(unit("bakehouse-ssh-hostkeys.service", "ConditionResult", "no")),
    "bh-sec-02": Wrong(sub("dmesg", r"^.*Initializing machine ID.*\n", "")),
    "bh-sec-03": Wrong(
        sub(
            PASSWD,
            r"^=!= absent /root/.ssh/authorized_keys$",
            "=== /root/.ssh/authorized_keys\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIplanted x",
        )
    ),
    "bh-sec-04": Wrong(
        sub(
            PASSWD,
            r"^(=== /home/admin/.ssh/authorized_keys)$",
            "\\1\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIplanted build@laptop",
        )
    ),
    "bh-sec-08": Wrong(
        sub(
            "/var/lib/apt/lists",
            r"^-- listed$",
            "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages\n-- listed",
        )
    ),
    "bh-sec-09": Wrong(sub("mount --bind", r"^(.*/var/tmp:)$", "\\1\nbuild-leftover.sh")),
    "bh-sec-10": Wrong(sub("/var/log/journal", r"\A", "0123456789abcdef0123456789abcdef\n")),
    "bh-mac-01": Wrong(sub(PASSWD, r"^(=== /sys/module/apparmor/parameters/enabled\n)Y$", "\\1N")),
    "bh-net-01": Wrong(
        add("ss -H", 'tcp LISTEN 0 511 0.0.0.0:6379 0.0.0.0:* users:(("redis-server",pid=9,fd=6))')
    ),
    "bh-ssh-04": Wrong(unit("ssh.service", "ActiveState", "failed")),
    "sshd-14": Wrong(add(SSHD, "hostkey /etc/ssh/ssh_host_ecdsa_key")),
    "sshd-48": Wrong(sub("/etc/ssh/moduli", r"^read ", "weak 1536\nread ")),
    # PAM: one line, or one setting, of the recorded stacks and configuration
    "bh-pam-01": Wrong(sub(PASSWD, r"^session\trequired\tpam_unix\.so.*\n", "")),
    "bh-pam-02": Wrong(sub(PASSWD, r"^.*pam_faillock\.so authfail.*\n", "")),
    "bh-pam-03": Wrong(sub(PASSWD, r"^password.*pam_pwquality\.so.*\n", "")),
    # without its line, pam_pwhistory's options are gone too
    "bh-pam-04": Wrong(
        sub(PASSWD, r"^password.*pam_pwhistory\.so.*\n", ""),
        frozenset({"bh-pam-14", "bh-pam-15", "bh-pam-16"}),
    ),
    "bh-pam-05": Wrong(sub(PASSWD, r"^difok = 2$", "difok = 1")),
    "bh-pam-06": Wrong(sub(PASSWD, r"^minlen = 14$", "minlen = 8")),
    "bh-pam-07": Wrong(sub(PASSWD, r"^maxrepeat = 3$", "maxrepeat = 0")),
    "bh-pam-08": Wrong(sub(PASSWD, r"^maxsequence = 3$", "maxsequence = 9")),
    "bh-pam-09": Wrong(sub(PASSWD, r"^dictcheck = 1$", "dictcheck = 0")),
    "bh-pam-10": Wrong(sub(PASSWD, r"^enforcing = 1$", "enforcing = 0")),
    "bh-pam-11": Wrong(sub(PASSWD, r"^enforce_for_root\n", "")),
    "bh-pam-12": Wrong(sub(PASSWD, r"^deny = 5$", "deny = 10")),
    "bh-pam-13": Wrong(sub(PASSWD, r"^unlock_time = 900$", "unlock_time = 60")),
    "bh-pam-14": Wrong(sub(PASSWD, r"remember=24", "remember=5")),
    "bh-pam-15": Wrong(sub(PASSWD, r"(pam_pwhistory\.so.*) enforce_for_root", r"\1")),
    "bh-pam-16": Wrong(sub(PASSWD, r"(pam_pwhistory\.so.*) use_authtok", r"\1")),
    "bh-pam-17": Wrong(sub(PASSWD, r"(pam_unix\.so) try_first_pass$", r"\1 nullok try_first_pass")),
    "bh-pam-18": Wrong(sub(PASSWD, r"(pam_unix\.so obscure)", r"\1 remember=5")),
    "bh-pam-19": Wrong(sub(PASSWD, r"(pam_unix\.so obscure.*) yescrypt", r"\1 md5")),
    "bh-pam-20": Wrong(sub(PASSWD, r"(pam_unix\.so obscure) use_authtok", r"\1")),
    # firewall: the loaded ruleset, or the unit that loads it
    "bh-fw-01": Wrong(sub("nft list", r"^table inet filter \{", "table netdev filter {")),
    "bh-fw-02": Wrong(sub("nft list", r"hook forward", "hook prerouting")),
    "bh-fw-03": Wrong(sub("nft list", r"(hook output priority filter; policy) drop", r"\1 accept")),
    "bh-fw-04": Wrong(sub("nft list", r"^\s*ip6 saddr ::1 .*\n", "")),
    "bh-fw-05": Wrong(unit("nftables.service", "UnitFileState", "disabled")),
    "bh-fw-06": Wrong(sub("nft list", r"^\s*tcp dport 80 accept\n", "")),
    # logging and file integrity
    "bh-log-01": Wrong(sub("cat-config", r"^Storage=persistent$", "Storage=volatile")),
    "bh-log-02": Wrong(sub("cat-config", r"^Compress=yes$", "Compress=no")),
    "bh-log-03": Wrong(sub("cat-config", r"^ForwardToSyslog=no$", "ForwardToSyslog=yes")),
    "bh-log-04": Wrong(unit("systemd-journald.service", "ActiveState", "failed")),
    "bh-log-05": Wrong(add(FIND, "logperm /var/log/dpkg.log")),
    "bh-aide-02": Wrong(unit("dailyaidecheck.timer", "UnitFileState", "disabled")),
    # accounts and login
    "bh-acct-09": Wrong(sub(PASSWD, r"^INACTIVE=45$", "INACTIVE=-1")),
    "bh-acct-10": Wrong(sub(PASSWD, r"^root:\*:\d+:", "root:*:99999:")),
    "bh-acct-11": Wrong(sub(PASSWD, r"^daemon:x:1:1:", "daemon:x:1:0:")),
    # a second group with gid 0 is also a duplicate gid
    "bh-acct-12": Wrong(sub(PASSWD, r"^(root:x:0:)$", "\\1\nwheel:x:0:"), frozenset({"os-07"})),
    "bh-acct-13": Wrong(sub(PASSWD, r"^(=== /root/\.bashrc)$", "\\1\numask 022")),
    "bh-acct-14": Wrong(sub("/etc/profile.d/*.sh", r"^TMOUT=900$", "TMOUT=3600")),
    "bh-acct-15": Wrong(sub("/etc/profile.d/*.sh", r"^umask 027$", "umask 022")),
    "bh-acct-16": Wrong(sub(PASSWD, r"^daemon:x:1:1:", "daemon::1:1:")),
    "bh-acct-17": Wrong(sub(PASSWD, r"^daemon:x:1:1:", "daemon:x:1:4242:")),
    "bh-acct-18": Wrong(sub(PASSWD, r"^shadow:x:42:$", "shadow:x:42:admin")),
    "bh-acct-19": Wrong(
        sub(PASSWD, r"^(daemon:x:1:1:.*)$", "\\1\ndaemon:x:4000:1::/usr/sbin:/usr/sbin/nologin")
    ),
    "bh-acct-20": Wrong(sub(PASSWD, r"^(daemon:x:1:)$", "\\1\ndaemon:x:4000:")),
    "bh-acct-21": Wrong(sub(PASSWD, r"^daemon:\*:", f"daemon:{HASH}:")),
    "bh-acct-22": Wrong(sub("awk -F:", r"^admin\|/home/admin\|750\|", "admin|/home/admin|755|")),
    "bh-acct-23": Wrong(add(FIND, "dotfile /home/admin/.netrc")),
    "bh-acct-24": Wrong(add(FIND, "dotperm /home/admin/.profile")),
    "bh-acct-25": Wrong(sub(PASSWD, r"^auth\s+required\s+pam_wheel\.so.*\n", "")),
    "bh-acct-26": Wrong(sub("/etc/sudoers.d/*", r"^=== end$", "Defaults !authenticate\n=== end")),
    "bh-acct-27": Wrong(
        sub("/etc/sudoers.d/*", r"^=== end$", "Defaults timestamp_timeout=60\n=== end")
    ),
    # an image of another role, with nginx installed: the web role's checks no longer apply,
    # and port 80 is no longer expected
    "bh-pkg-25": Wrong(
        lambda rec: rec.context.update(role_checks=[]),
        frozenset({"bh-net-01"}),
        frozenset({"bh-web-01", "bh-web-02", "bh-web-03", "bh-web-04"}),
    ),
    "bh-svc-12": Wrong(add("dpkg-query", "ii \tcron\t3.0pl1-162")),
    "bh-mac-02": Wrong(
        sub("apparmor/profiles", r"^(lsb_release) \(enforce\)$", r"\1 (unconfined)")
    ),
    "bh-banner-01": Wrong(
        sub(PASSWD, r"^(=== /etc/issue\n).*$", "\\1Debian GNU/Linux 12 \\\\n \\\\l")
    ),
    "bh-banner-02": Wrong(sub(PASSWD, r"^(=== /etc/issue\.net\n).*$", "\\1Debian GNU/Linux 12")),
    "sysctl-33": Wrong(
        sub(
            "dmesg",
            r"NX \(Execute Disable\) protection: active",
            "NX (Execute Disable) protection: disabled by kernel command line option",
        )
    ),
}


def test_every_control_has_a_wrong_answer() -> None:
    missing = []
    for check in checks():
        try:
            wrong_for(check)
        except KeyError:
            missing.append(check.id)
    assert missing == []


@pytest.mark.parametrize("check", checks(), ids=lambda c: c.id)
def test_each_control_fails_on_its_wrong_answer(
    check: Check, web: Recording, baseline: dict[str, str], tmp_path: Path
) -> None:
    wrong = wrong_for(check)
    broken = web.copy()
    wrong.change(broken)
    run = run_all(broken, tmp_path)
    assert run.outcomes[check.id] == "failed", run.messages[check.id]
    changed = {k: v for k, v in run.outcomes.items() if v != baseline[k] and k != check.id}
    expected = dict.fromkeys(wrong.also, "failed") | dict.fromkeys(wrong.moot, "skipped")
    assert changed == expected


# ---- a fact that cannot be read ---------------------------------------------------------------

BROKEN = {
    "failed": {"rc": 1, "stdout": "", "stderr": "Input/output error"},
    "silent": {"rc": 0, "stdout": "", "stderr": ""},
    "killed": {"rc": 137, "stdout": "", "stderr": ""},
}


def test_no_control_passes_on_a_fact_it_could_not_read(web: Recording, tmp_path: Path) -> None:
    """Every command the suite sends, made to fail or to print nothing: each control that
    reads it errors (FactError), none passes and none fails as if it had judged."""
    used = commands_used(web, tmp_path)
    readers: dict[str, set[str]] = {}
    for control, commands in used.items():
        for command in commands:
            readers.setdefault(command, set()).add(control)
    assert len(readers) >= 20 and set(readers) == set(web.answers)
    # every control reads something (the one skipped on web before reading: its role)
    assert [k for k, v in used.items() if not v] == ["bh-pkg-25"]
    by_id = {c.id: c for c in checks()}
    wrong = []
    for command, controls in readers.items():
        for name, answer in BROKEN.items():
            broken = web.copy()
            broken.answers[command] = dict(answer)
            run = run_all(broken, tmp_path, [by_id[c] for c in sorted(controls)])
            wrong += [
                f"{c} {name} {command[:50]!r}: {o}" for c, o in run.outcomes.items() if o != "error"
            ]
    assert wrong == []
