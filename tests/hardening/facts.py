"""Facts about the host under test, each read with one command and cached for the whole run.

Under software emulation every SSH round trip costs; reading ``sshd -T``, ``sysctl -a``, the
package list, the file metadata and the filesystem scans once and sharing them keeps the whole
suite to a few dozen commands.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import json
import shlex
import threading
import time
from dataclasses import dataclass
from typing import Any

# Files whose owner, group and mode are controls (and a few whose existence is).
STAT_PATHS = (
    "/etc/passwd",
    "/etc/passwd-",
    "/etc/group",
    "/etc/group-",
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/ssh",
    "/etc/ssh/sshd_config",
    "/etc/crontab",
    "/etc/cron.hourly",
    "/etc/cron.daily",
    "/etc/cron.weekly",
    "/etc/cron.monthly",
    "/etc/cron.d",
    "/etc/cron.allow",
    "/etc/at.allow",
    "/etc/cron.deny",
    "/etc/at.deny",
    "/etc/sudoers",
    "/etc/issue",
    "/etc/issue.net",
    "/etc/motd",
    "/etc/login.defs",
    "/etc/machine-id",
    "/boot",
    "/etc/ssh/ssh_host_ed25519_key",
    "/etc/ssh/ssh_host_rsa_key",
    "/etc/ssh/ssh_host_ecdsa_key",
    "/etc/ssh/ssh_host_ed25519_key.pub",
    "/etc/ssh/ssh_host_rsa_key.pub",
    "/etc/ssh/ssh_host_dsa_key",
    "/root",
    "/home/admin",
    "/var/log",
    "/etc/audit/auditd.conf",
    "/var/lib/bakehouse/manifest.json",
    "/etc/security/opasswd",
    "/etc/hosts.equiv",
    "/root/.rhosts",
    "/root/.netrc",
    "/root/.bash_history",
    "/home/admin/.bash_history",
    "/root/.aws",
    "/home/admin/.aws",
    "/root/.ssh/authorized_keys",
    "/root/.ssh/id_rsa",
    "/root/.ssh/id_ed25519",
    "/home/admin/.ssh/authorized_keys",
    "/tmp",
    "/var/tmp",
    "/etc/shells",
    "/boot/grub/grub.cfg",
    "/var/lib/aide/aide.db",
)


# Filesystems and protocols an image must not load (one control each: test_modules.py)
DISABLED_MODULES = (
    "cramfs",
    "freevxfs",
    "hfs",
    "hfsplus",
    "jffs2",
    "udf",
    "squashfs",
    "usb-storage",
    "dccp",
    "sctp",
    "rds",
    "tipc",
    "firewire-core",
)


@dataclass(frozen=True)
class Stat:
    path: str
    mode: int
    user: str
    group: str
    kind: str
    size: int


class FactError(Exception):
    """A fact could not be read, or what was read fails its sanity check: every control that
    needs it errors (reported, and the image is not published); none passes on it."""


def sane(fact: str, ok: bool, what: str) -> None:
    if not ok:
        raise FactError(f"{fact}: {what}: the read did not work, so nothing can be judged on it")


class Facts:
    def __init__(self, host: Any):
        self.host = host
        self._lock = threading.Lock()
        self.commands = 0
        self.seconds: list[tuple[str, float]] = []
        # every command and its answer: the evidence the controls judged, and what the unit
        # tests replay to show each control failing on one wrong fact
        self.record: dict[str, dict[str, Any]] = {}

    def run(self, command: str) -> Any:
        start = time.monotonic()
        result = self.host.run(command)
        with self._lock:
            self.commands += 1
            self.seconds.append(
                (command.split(maxsplit=1)[0] if command.split() else "", time.monotonic() - start)
            )
            self.record[command] = {
                "rc": result.rc,
                "stdout": str(result.stdout),
                "stderr": str(result.stderr),
            }
        return result

    def prefetch(self, workers: int) -> None:
        """Read every fact now, ``workers`` at a time: under emulation each command mostly
        waits on the guest (sudo, a process start), and the guest has CPUs to spare. A fact
        that cannot be read is not kept: the control that needs it reads it again, and is
        judged on that (an error, never a pass)."""
        names = [n for n, v in vars(type(self)).items() if isinstance(v, functools.cached_property)]
        with contextlib.suppress(Exception):
            self.now  # noqa: B018 -- one command first: the connection is made once
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(getattr, self, name) for name in names]
            for future in futures:
                with contextlib.suppress(Exception):
                    future.result()

    def stats_summary(self) -> dict[str, Any]:
        return {
            "commands": self.commands,
            "seconds": round(sum(s for _, s in self.seconds), 2),
            "slowest": sorted(self.seconds, key=lambda x: -x[1])[:5],
        }

    def out(self, command: str) -> str:
        result = self.run(command)
        return str(result.stdout)

    def must(self, fact: str, command: str) -> str:
        """stdout of ``command``, which must exit 0."""
        result = self.run(command)
        if result.rc != 0:
            tail = (str(result.stderr).strip().splitlines() or [""])[-1][:200]
            raise FactError(f"{fact}: `{command[:80]}` exited {result.rc}: {tail}")
        return str(result.stdout)

    # ---- sshd and sysctl -------------------------------------------------------------------
    @functools.cached_property
    def sshd(self) -> dict[str, list[str]]:
        """`sshd -T`: effective settings, keys lower-case, values as a list (repeatable keys)."""
        text = self.must("sshd", "sshd -T -C user=admin,host=localhost,addr=127.0.0.1")
        out: dict[str, list[str]] = {}
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            out.setdefault(key.lower(), []).append(value.strip())
        sane(
            "sshd",
            {"port", "permitrootlogin", "ciphers"} <= set(out),
            "no port, root login or ciphers",
        )
        return out

    def sshd_value(self, key: str) -> str:
        """One effective setting; a key `sshd -T` did not print is an error, never ""."""
        if key.lower() not in self.sshd:
            raise FactError(f"sshd: `sshd -T` printed no {key}")
        return " ".join(self.sshd[key.lower()])

    @functools.cached_property
    def sysctl(self) -> dict[str, str]:
        out: dict[str, str] = {}
        # a few keys are write-only (stable_secret): sysctl -a reports them and exits non-zero
        for line in self.out("sysctl -a 2>/dev/null").splitlines():
            key, sep, value = line.partition(" = ")
            if sep:
                out[key.strip()] = " ".join(value.split())
        sane("sysctl", out.get("kernel.ostype") == "Linux" and len(out) > 300, "too few keys")
        return out

    # ---- packages and services -------------------------------------------------------------
    @functools.cached_property
    def packages(self) -> dict[str, str]:
        out: dict[str, str] = {}
        text = self.must(
            "packages", "dpkg-query -W -f='${db:Status-Abbrev}\\t${Package}\\t${Version}\\n'"
        )
        for line in text.splitlines():
            status, _, rest = line.partition("\t")
            name, _, version = rest.partition("\t")
            if status.startswith("ii"):
                out[name.split(":")[0]] = version
        sane(
            "packages", {"base-files", "dpkg", "libc6"} <= set(out), "no base-files, dpkg or libc6"
        )
        return out

    @functools.cached_property
    def units(self) -> dict[str, dict[str, str]]:
        """`systemctl show` for the units the controls look at."""
        names = [
            "ssh.service",
            "auditd.service",
            "apparmor.service",
            "systemd-timesyncd.service",
            "nginx.service",
            "tmp.mount",
            "bakehouse-ssh-hostkeys.service",
            "systemd-journald.service",
            "cron.service",
            "rsync.service",
            "avahi-daemon.service",
            "cups.service",
            "nfs-server.service",
            "rpcbind.service",
            "snmpd.service",
            "apache2.service",
            "vsftpd.service",
            "dovecot.service",
            "smbd.service",
            "slapd.service",
            "bind9.service",
            "isc-dhcp-server.service",
            "squid.service",
            "ctrl-alt-del.target",
            "debug-shell.service",
            "nftables.service",
            "dailyaidecheck.timer",
            "rsyslog.service",
            "acct.service",
        ]
        text = self.must(
            "units",
            "systemctl show --no-pager -p Id,LoadState,ActiveState,UnitFileState,"
            "ConditionResult,ExecMainStatus,ExecMainStartTimestampMonotonic " + " ".join(names),
        )
        out: dict[str, dict[str, str]] = {}
        for block in text.strip().split("\n\n"):
            props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
            if "Id" in props:
                out[props["Id"]] = props
        sane("units", "ssh.service" in out, "ssh.service is not in the listing")
        return out

    def unit(self, name: str) -> dict[str, str]:
        """A unit's state; one systemd did not list (asked, but not answered) is an error, not
        "inactive" (units that do not exist are listed, with LoadState=not-found)."""
        if name not in self.units:
            raise FactError(f"units: systemd listed nothing for {name}")
        return self.units[name]

    @functools.cached_property
    def listening(self) -> list[tuple[str, str, str]]:
        """(protocol, local address:port, process) for every listening socket."""
        out = []
        for line in self.must("listening", "ss -H -tulnp").splitlines():
            parts = line.split()
            sane("listening", len(parts) >= 5, f"a line of ss it cannot read: {line!r}")
            out.append((parts[0], parts[4], parts[6] if len(parts) > 6 else ""))
        # every image runs sshd: a listing without it did not see the sockets
        sane("listening", any("sshd" in p for _, _, p in out), "sshd is not among the listeners")
        return out

    # ---- files --------------------------------------------------------------------------------
    @functools.cached_property
    def stats(self) -> dict[str, Stat]:
        # each path: its metadata, or "absent" when it does not exist; anything else (a stat
        # that failed on an existing path) is a line of neither kind, and an error
        script = "; ".join(
            f"if [ -e {q} ] || [ -L {q} ]; then stat -c '%n|%a|%U|%G|%F|%s' {q}; "
            f"else echo 'absent|'{q}; fi"
            for q in (shlex.quote(p) for p in STAT_PATHS)
        )
        out: dict[str, Stat | None] = {}
        for line in self.must("stats", script).splitlines():
            parts = line.split("|")
            if parts[0] == "absent" and len(parts) == 2:
                out[parts[1]] = None
            elif len(parts) == 6:
                out[parts[0]] = Stat(
                    parts[0], int(parts[1], 8), parts[2], parts[3], parts[4], int(parts[5])
                )
        missing = [p for p in STAT_PATHS if p not in out]
        sane("stats", not missing, f"no answer for {', '.join(missing[:3])}")
        sane("stats", out.get("/etc/passwd") is not None, "/etc/passwd not found")
        return out

    def stat(self, path: str) -> Stat | None:
        """A path's metadata, None when it does not exist; a path not asked is an error."""
        if path not in self.stats:
            raise FactError(f"stats: {path} is not among the paths read (STAT_PATHS)")
        return self.stats[path]

    @functools.cached_property
    def scans(self) -> dict[str, list[str]]:
        """One pass over local filesystems: world-writable without sticky bit, unowned, set-id,
        private keys and shell histories."""
        script = r"""
find / -xdev \( -path /proc -o -path /sys -o -path /run -o -path /dev \) -prune -o \
  \( -type d -perm -0002 ! -perm -1000 -printf 'wwdir %p\n' \) -o \
  \( -type f -perm -0002 -printf 'wwfile %p\n' \) -o \
  \( -nouser -printf 'nouser %p\n' \) -o \( -nogroup -printf 'nogroup %p\n' \) -o \
  \( -type f -perm -4000 -printf 'suid %p\n' \) -o \
  \( -type f -perm -2000 -printf 'sgid %p\n' \) -o \
  \( -type f \( -name '.bash_history' -o -name '.zsh_history' -o -name '.python_history' \
     -o -name '.mysql_history' -o -name '.psql_history' -o -name '.lesshst' \) \
     -printf 'history %p\n' \) -o \
  \( -type f \( -name 'id_rsa' -o -name 'id_ecdsa' -o -name 'id_ed25519' -o -name 'id_dsa' \
     -o -name '*.pem' -o -name '*.key' \) ! -path '/usr/*' ! -path '/etc/ssl/certs/*' \
     ! -path '/etc/ssh/ssh_host_*' -printf 'keyfile %p\n' \) -o \
  \( -type f -name 'credentials' -path '*/.aws/*' -printf 'cloudcreds %p\n' \) -o \
  \( \( -name .forward -o -name .rhosts -o -name .netrc \) \
     \( -path '/home/*' -o -path '/root/*' \) -printf 'dotfile %p\n' \) -o \
  \( -name '.*' -perm /0022 ! -type l \( -regex '/home/[^/]*/\.[^/]*' -o -regex '/root/\.[^/]*' \) \
     -printf 'dotperm %p\n' \) -o \
  \( -type f -perm /0137 -path '/var/log/*' ! -name wtmp ! -name btmp ! -name lastlog \
     ! -name 'cloud-init*.log' -printf 'logperm %p\n' \)
"""
        out: dict[str, list[str]] = {}
        for line in self.must("scans", script).splitlines():
            kind, _, path = line.partition(" ")
            out.setdefault(kind, []).append(path)
        # passwd is set-uid on every Debian system: a scan that did not see it did not run
        sane("scans", "/usr/bin/passwd" in out.get("suid", []), "no set-uid /usr/bin/passwd")
        return out

    @functools.cached_property
    def files(self) -> dict[str, str]:
        """Small text files read in one go (config the controls parse)."""
        names = [
            "/etc/login.defs",
            "/etc/passwd",
            "/etc/shadow",
            "/etc/group",
            "/etc/fstab",
            "/proc/cmdline",
            "/sys/module/apparmor/parameters/enabled",
            "/etc/modprobe.d/bakehouse-disabled.conf",
            "/etc/security/limits.d/90-bakehouse.conf",
            "/etc/systemd/coredump.conf.d/90-bakehouse.conf",
            "/etc/machine-id",
            "/home/admin/.ssh/authorized_keys",
            "/root/.ssh/authorized_keys",
            "/etc/sudoers.d/10-bakehouse",
            "/etc/issue.net",
            "/etc/issue",
            "/proc/sys/kernel/random/boot_id",
            "/etc/pam.d/su",
            "/etc/pam.d/common-auth",
            "/etc/pam.d/common-account",
            "/etc/pam.d/common-password",
            "/etc/pam.d/common-session",
            "/etc/security/faillock.conf",
            "/etc/security/pwquality.conf",
            "/etc/security/pwquality.conf.d/90-bakehouse.conf",
            "/etc/default/useradd",
            "/root/.bashrc",
            "/root/.profile",
            "/etc/nftables.conf",
        ]
        # each file: "=== path" then its text, or "=!= absent path" when it does not exist,
        # or "=!= unreadable path" when cat failed on it
        script = "; ".join(
            f"if [ -e {q} ]; then echo '=== '{q}; cat {q} || echo '=!= unreadable '{q}; "
            f"else echo '=!= absent '{q}; fi"
            for q in (shlex.quote(n) for n in names)
        )
        out: dict[str, str] = {}
        current = None
        for line in self.must("files", script).splitlines():
            if line.startswith("=== "):
                current = line[4:]
                out[current] = ""
            elif line.startswith("=!= unreadable "):
                raise FactError(f"files: {line[15:]} exists but could not be read")
            elif line.startswith("=!= absent "):
                current = None
            elif current is not None:
                out[current] += line + "\n"
        for core in (
            "/etc/passwd",
            "/etc/shadow",
            "/etc/group",
            "/etc/login.defs",
            "/etc/pam.d/common-auth",
            "/etc/pam.d/common-password",
        ):
            sane("files", bool(out.get(core, "").strip()), f"{core} is empty or missing")
        sane("files", "root:" in out["/etc/passwd"], "/etc/passwd has no root")
        return out

    def text_files(self, fact: str, pattern: str) -> dict[str, str]:
        """Every file matching a shell glob, by path ("=== path" then its text)."""
        text = self.must(
            fact,
            f'for f in {pattern}; do [ -e "$f" ] || continue; echo "=== $f"; cat "$f" || exit 1; '
            "done; echo '=== end'",
        )
        out: dict[str, str] = {}
        current = None
        for line in text.splitlines():
            if line.startswith("=== "):
                current = line[4:]
                out[current] = ""
            elif current is not None:
                out[current] += line + "\n"
        sane(fact, out.pop("end", None) == "", "the listing did not finish")
        return out

    @functools.cached_property
    def sudoers(self) -> dict[str, str]:
        out = self.text_files("sudoers", "/etc/sudoers /etc/sudoers.d/*")
        sane("sudoers", "/etc/sudoers" in out, "/etc/sudoers not read")
        return out

    @functools.cached_property
    def profiles(self) -> dict[str, str]:
        """What login shells read: /etc/profile, /etc/bash.bashrc, /etc/profile.d/*.sh."""
        out = self.text_files("profiles", "/etc/profile /etc/bash.bashrc /etc/profile.d/*.sh")
        sane("profiles", "/etc/profile" in out, "/etc/profile not read")
        return out

    @functools.cached_property
    def nft(self) -> str:
        """The loaded firewall ruleset."""
        text = self.must("firewall", "nft list ruleset && echo '# listed'")
        sane("firewall", text.rstrip().endswith("# listed"), "the ruleset listing did not finish")
        return text

    @functools.cached_property
    def journald(self) -> dict[str, str]:
        """journald's effective settings (the last value of each key across its config files)."""
        text = self.must("journald", "systemd-analyze cat-config systemd/journald.conf")
        sane("journald", "[Journal]" in text, "no [Journal] section")
        out = {}
        for line in text.splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and not key.startswith(("#", ";")):
                out[key.strip()] = value.strip()
        return out

    @functools.cached_property
    def homes(self) -> dict[str, tuple[str, str, str]]:
        """user -> (home, mode, owner) for every account with a login shell and uid >= 1000."""
        text = self.must(
            "homes",
            "awk -F: '$3 >= 1000 && $3 != 65534 && $7 !~ /(nologin|false)$/ "
            '{ print $1 ":" $6 }\' /etc/passwd | while IFS=: read -r user home; do '
            'if [ -d "$home" ]; then echo "$user|$home|$(stat -c \'%a|%U\' "$home")"; '
            'else echo "$user|$home|missing|"; fi; done; echo end',
        )
        lines = text.splitlines()
        sane("homes", bool(lines) and lines[-1] == "end", "the listing did not finish")
        out = {}
        for line in lines[:-1]:
            user, home, mode, owner = line.split("|")
            out[user] = (home, mode, owner)
        return out

    @functools.cached_property
    def apparmor_profiles(self) -> dict[str, str]:
        """Loaded AppArmor profiles and their modes."""
        text = self.must("apparmor", "cat /sys/kernel/security/apparmor/profiles")
        out = {}
        for line in text.splitlines():
            name, _, mode = line.rpartition(" (")
            out[name] = mode.rstrip(")")
        sane("apparmor", bool(out), "no profile loaded")
        return out

    @functools.cached_property
    def now(self) -> int:
        """The host's clock (seconds since the epoch)."""
        text = self.must("clock", "date +%s").strip()
        sane("clock", text.isdigit() and int(text) > 1_700_000_000, f"not a time: {text!r}")
        return int(text)

    @functools.cached_property
    def mounts(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.must("mounts", "findmnt -J -o TARGET,FSTYPE,OPTIONS"))
        except json.JSONDecodeError as exc:
            raise FactError(f"mounts: findmnt printed no JSON ({exc})") from None
        out: dict[str, dict[str, str]] = {}

        def walk(nodes: list[dict[str, Any]]) -> None:
            for node in nodes:
                out[node["target"]] = {"fstype": node["fstype"], "options": node["options"]}
                walk(node.get("children", []))

        walk(data.get("filesystems", []))
        sane("mounts", "/" in out, "no root filesystem")
        return out

    @functools.cached_property
    def modules(self) -> dict[str, str]:
        """What `modprobe -n -v` would do for each module a control disables, and if loaded."""
        names = DISABLED_MODULES
        script = "; ".join(
            f"echo \"{n}|$(modprobe -n -v {n} 2>&1 | tr '\\n' ' ')|"
            f"$(grep -c '^{n.replace('-', '_')} ' /proc/modules)\""
            for n in names
        )
        out = {}
        for line in self.must("modules", script).splitlines():
            name, _, rest = line.partition("|")
            out[name] = rest
        sane("modules", set(names) <= set(out), "not every module answered")
        return out

    @functools.cached_property
    def audit_rules(self) -> str:
        """The loaded audit rules, then the audit status."""
        text = self.must("audit", "auditctl -l && auditctl -s")
        sane("audit", "enabled " in text, "auditctl -s printed no status")
        return text

    @functools.cached_property
    def kernel_log(self) -> str:
        """The kernel ring buffer, from the first boot message on."""
        log = self.must("kernel log", "dmesg")
        sane("kernel log", "Linux version" in log, "the boot messages are no longer in it")
        return log

    @functools.cached_property
    def journal_first_boot(self) -> str:
        # systemd logs this to the kernel ring buffer, before journald is up
        return "\n".join(
            line for line in self.kernel_log.splitlines() if "machine id" in line.lower()
        )
