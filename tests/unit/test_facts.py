"""The hardening suite's facts fail closed: a read that fails, or returns something that
cannot be the real answer, raises FactError, so every control built on it errors instead of
passing. The host here answers canned output per command (the real host is the e2e tests')."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pytest

from tests.hardening.facts import STAT_PATHS, FactError, Facts


@dataclass
class Result:
    stdout: str
    rc: int = 0
    stderr: str = ""


class Host:
    """Answers by the first word(s) of the command; anything else fails like a missing tool."""

    def __init__(self, **answers: Result):
        self.answers = answers

    def run(self, command: str) -> Result:
        for prefix, result in self.answers.items():
            if command.lstrip().startswith(prefix):
                return result
        return Result("", 127, "command not found")


SSHD = "port 22\npermitrootlogin no\nciphers aes256-gcm@openssh.com\nx11forwarding no\n"
PASSWD = "root:x:0:0:root:/root:/bin/bash\nadmin:x:1000:1000::/home/admin:/bin/bash\n"


def test_sshd_read_and_checked() -> None:
    facts = Facts(Host(sshd=Result(SSHD)))
    assert facts.sshd_value("X11Forwarding") == "no"
    with pytest.raises(FactError, match="printed no MaxSessions"):
        facts.sshd_value("MaxSessions")  # never an empty value that a set() makes truthy


@pytest.mark.parametrize(
    "result", [Result(SSHD, 255, "Bad configuration"), Result(""), Result("x 1")]
)
def test_sshd_that_did_not_run_is_an_error(result: Result) -> None:
    with pytest.raises(FactError):
        Facts(Host(sshd=result)).sshd  # noqa: B018


def test_a_scan_that_did_not_run_is_an_error() -> None:
    ran = "suid /usr/bin/passwd\nsuid /usr/bin/sudo\nwwfile /tmp/x\n"
    assert Facts(Host(find=Result(ran))).scans["wwfile"] == ["/tmp/x"]
    for broken in (Result(""), Result(ran, 1, "find: ‘/x’: Input/output error")):
        with pytest.raises(FactError):
            Facts(Host(find=broken)).scans  # noqa: B018


def files_output(texts: dict[str, str | None]) -> str:
    """The files fact's answer: each path's text, or that it is absent."""
    out = [
        f"=!= absent {path}" if text is None else f"=== {path}\n{text}"
        for path, text in texts.items()
    ]
    return "\n".join(out) + "\n"


CORE = {
    "/etc/passwd": PASSWD,
    "/etc/shadow": "root:*:1::::::\n",
    "/etc/group": "root:x:0:\n",
    "/etc/login.defs": "UMASK 027\n",
    "/etc/pam.d/common-auth": "auth required pam_unix.so\n",
    "/etc/pam.d/common-password": "password required pam_unix.so\n",
}


def test_files_absent_unreadable_and_core() -> None:
    facts = Facts(Host(**{"if": Result(files_output({**CORE, "/etc/issue.net": None}))}))
    assert "root:" in facts.files["/etc/passwd"] and "/etc/issue.net" not in facts.files
    unreadable = files_output(CORE) + "=!= unreadable /etc/sudoers.d/10-bakehouse\n"
    with pytest.raises(FactError, match="exists but could not be read"):
        Facts(Host(**{"if": Result(unreadable)})).files  # noqa: B018
    with pytest.raises(FactError, match="/etc/shadow is empty or missing"):
        Facts(Host(**{"if": Result(files_output({**CORE, "/etc/shadow": None}))})).files  # noqa: B018


def test_stats_answer_every_path_or_error() -> None:
    lines = [f"{p}|644|root|root|regular file|1" for p in STAT_PATHS[:-1]]
    complete = "\n".join([*lines, f"absent|{STAT_PATHS[-1]}"])
    facts = Facts(Host(**{"if": Result(complete)}))
    assert facts.stat(STAT_PATHS[-1]) is None and facts.stat("/etc/passwd") is not None
    with pytest.raises(FactError, match="not among the paths read"):
        facts.stat("/etc/never-asked")
    with pytest.raises(FactError, match="no answer for"):
        Facts(Host(**{"if": Result("\n".join(lines))})).stats  # noqa: B018


def test_a_unit_systemd_did_not_list_is_an_error() -> None:
    listing = (
        "Id=ssh.service\nLoadState=loaded\nActiveState=active\n\n"
        "Id=cups.service\nLoadState=not-found\n"
    )
    facts = Facts(Host(systemctl=Result(listing)))
    assert facts.unit("cups.service")["LoadState"] == "not-found"
    with pytest.raises(FactError, match=r"listed nothing for auditd\.service"):
        facts.unit("auditd.service")
    with pytest.raises(FactError):
        Facts(Host(systemctl=Result("", 1))).units  # noqa: B018


def test_packages_sysctl_mounts_modules_listening_fail_closed() -> None:
    for fact, host in (
        ("packages", Host(**{"dpkg-query": Result("ii \tnginx\t1.22\n")})),
        ("sysctl", Host(sysctl=Result("kernel.ostype = Linux\n"))),
        ("mounts", Host(findmnt=Result('{"filesystems": []}'))),
        ("modules", Host(echo=Result("cramfs|install /bin/false|0\n"))),
        ("listening", Host(ss=Result("garbage\n"))),
        ("listening", Host(ss=Result("", 1))),
    ):
        with pytest.raises(FactError):
            getattr(Facts(host), fact)


def test_listening_ports_are_allowed_per_role() -> None:
    from tests.hardening.test_services import allowed_ports

    assert "80" not in allowed_ports({"role_checks": []})  # base and worker
    assert allowed_ports({"role_checks": ["nginx"]})["80"] == "nginx"
    assert "22" in allowed_ports({"role_checks": []})


class CountingHost(Host):
    def __init__(self, **answers: Result):
        super().__init__(**answers)
        self.asked: list[str] = []

    def run(self, command: str) -> Result:
        self.asked.append(command)
        return super().run(command)


def test_prefetch_reads_each_fact_once_and_a_failed_read_still_fails_its_controls() -> None:
    """Read ahead, several at a time: what was read is not read again, and a fact whose read
    failed is not kept as anything — the control that needs it reads it again and errors."""
    host = CountingHost(sshd=Result(SSHD), date=Result("1764500000\n"))
    facts = Facts(host)
    facts.prefetch(3)
    names = [n for n, v in vars(Facts).items() if isinstance(v, functools.cached_property)]
    assert len(host.asked) >= len(names)  # every fact was asked for
    asked = len(host.asked)
    assert facts.sshd_value("X11Forwarding") == "no" and facts.now == 1764500000
    assert len(host.asked) == asked  # read ahead, not again
    with pytest.raises(FactError):
        facts.sysctl  # noqa: B018 -- its read failed during the prefetch: it fails now too
    assert len(host.asked) == asked + 1
    assert facts.commands == len(host.asked)
