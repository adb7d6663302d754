"""Packages and services: legacy clear-text services absent; audit, MAC and time sync running;
only the expected ports listening."""

from __future__ import annotations

from typing import Any

import pytest

from tests.hardening.controls import Control, ids
from tests.hardening.facts import Facts

LB = "dev-sec linux-baseline"

ABSENT = [
    Control(
        "package-01",
        "No inetd",
        f"{LB}; CIS 2.1.x",
        ("openbsd-inetd", "inetutils-inetd", "rlinetd"),
    ),
    Control("package-01.xinetd", "No xinetd", f"{LB}; CIS 2.1.x", ("xinetd",)),
    Control(
        "package-02",
        "No telnet server",
        f"{LB}; CIS 2.2.x",
        ("telnetd", "inetutils-telnetd", "telnetd-ssl"),
    ),
    Control("package-02.client", "No telnet client", "CIS 2.3.4", ("telnet", "inetutils-telnet")),
    Control(
        "package-03",
        "No rsh server or client",
        f"{LB}; CIS 2.3.2",
        ("rsh-server", "rsh-client", "rsh-redone-server", "rsh-redone-client"),
    ),
    Control("package-05", "No NIS", f"{LB}; CIS 2.3.1", ("nis", "ypserv")),
    Control(
        "package-06",
        "No TFTP server or client",
        f"{LB}; CIS 2.2.x",
        ("tftpd", "tftpd-hpa", "atftpd", "tftp", "tftp-hpa"),
    ),
    Control("package-10", "No prelink", f"{LB}; CIS 1.5.4", ("prelink",)),
    Control("bh-pkg-01", "No talk", "CIS 2.3.3", ("talk", "talkd")),
    Control("bh-pkg-02", "No LDAP client tools", "CIS 2.3.5", ("ldap-utils",)),
    Control("bh-pkg-03", "No RPC portmapper", "CIS 2.3.6", ("rpcbind",)),
    Control("bh-pkg-04", "No X server", "CIS 2.2.1", ("xserver-xorg-core",)),
]


@pytest.mark.parametrize("control", ABSENT, ids=ids)
def test_package_absent(facts: Facts, control: Control) -> None:
    installed = [p for p in control.args if p in facts.packages]
    assert installed == [], f"installed: {installed}"


@pytest.mark.parametrize(
    "control",
    [
        Control("package-08", "auditd installed", f"{LB}; CIS 4.1.1.1", ("auditd",)),
        Control("bh-pkg-05", "AppArmor installed", "CIS 1.6.1.1", ("apparmor",)),
        Control(
            "bh-pkg-06", "Time synchronisation installed", "CIS 2.1.1.1", ("systemd-timesyncd",)
        ),
        Control("bh-pkg-07", "sudo installed", "CIS 5.3.1", ("sudo",)),
    ],
    ids=ids,
)
def test_package_present(facts: Facts, control: Control) -> None:
    missing = [p for p in control.args if p not in facts.packages]
    assert missing == [], f"not installed: {missing}"


RUNNING = [
    Control("bh-svc-01", "auditd enabled and running", "CIS 4.1.1.2", ("auditd.service",)),
    Control("bh-svc-02", "AppArmor enabled and loaded", "CIS 1.6.1.2", ("apparmor.service",)),
    Control(
        "bh-svc-03", "Time synchronisation running", "CIS 2.1.2.x", ("systemd-timesyncd.service",)
    ),
]


@pytest.mark.parametrize("control", RUNNING, ids=ids)
def test_service_running(facts: Facts, control: Control) -> None:
    unit = facts.unit(control.args[0])
    assert unit.get("UnitFileState") == "enabled", unit
    assert unit.get("ActiveState") == "active", unit


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-svc-04", "No debug shell", "CIS 1.4.x", ("debug-shell.service",)),
        Control("bh-svc-05", "No avahi", "CIS 2.2.3", ("avahi-daemon.service",)),
        Control("bh-svc-06", "No CUPS", "CIS 2.2.4", ("cups.service",)),
        Control("bh-svc-07", "No NFS server", "CIS 2.2.7", ("nfs-server.service",)),
        Control("bh-svc-08", "No SNMP daemon", "CIS 2.2.14", ("snmpd.service",)),
        Control("bh-svc-09", "No FTP server", "CIS 2.2.9", ("vsftpd.service",)),
        Control("bh-svc-10", "No Samba", "CIS 2.2.12", ("smbd.service",)),
        Control("bh-svc-11", "No rsync daemon", "CIS 2.2.16", ("rsync.service",)),
    ],
    ids=ids,
)
def test_service_not_running(facts: Facts, control: Control) -> None:
    unit = facts.unit(control.args[0])
    assert unit.get("ActiveState") != "active", unit


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-mac-01", "AppArmor enabled in the kernel", "CIS 1.6.1.2", ()),
    ],
    ids=ids,
)
def test_apparmor_kernel(facts: Facts, control: Control) -> None:
    assert facts.files.get("/sys/module/apparmor/parameters/enabled", "").strip() == "Y"
    assert "apparmor=0" not in facts.files.get("/proc/cmdline", "")


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-audit-01", "Audit rules loaded", "CIS 4.1.3.x", ("-w /etc/shadow",)),
        Control("bh-audit-02", "Identity changes audited", "CIS 4.1.3.8", ("-w /etc/passwd",)),
        Control("bh-audit-03", "sudoers changes audited", "CIS 4.1.3.1", ("-w /etc/sudoers",)),
        Control("bh-audit-04", "Kernel module loading audited", "CIS 4.1.3.19", ("init_module",)),
        Control("bh-audit-05", "Audit configuration immutable", "CIS 4.1.3.20", ("enabled 2",)),
    ],
    ids=ids,
)
def test_audit(facts: Facts, control: Control) -> None:
    assert control.args[0] in facts.audit_rules, facts.audit_rules[-500:]


# Listening sockets every baked image may have, and those a role adds (only to images of that
# role: nginx on port 80 is a finding on base or worker)
ALLOWED_PORTS = {
    "22": "sshd",
    "53": "systemd-resolve",
    "68": "systemd-network",
    "5355": "systemd-resolve",
    "323": "chronyd",
}
ROLE_PORTS = {"nginx": {"80": "nginx"}}


def allowed_ports(context: dict[str, Any]) -> dict[str, str]:
    roles = context.get("role_checks")
    chosen = ROLE_PORTS if roles is None else {r: ROLE_PORTS[r] for r in roles if r in ROLE_PORTS}
    return {**ALLOWED_PORTS, **{p: n for ports in chosen.values() for p, n in ports.items()}}


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-net-01", "Only expected ports listen", "CIS 2.4", ()),
    ],
    ids=ids,
)
def test_listening_ports(facts: Facts, context: dict[str, Any], control: Control) -> None:
    allowed = allowed_ports(context)
    unexpected = []
    for proto, local, process in facts.listening:
        port = local.rsplit(":", 1)[-1]
        addr = local.rsplit(":", 1)[0]
        if addr.startswith(("127.", "[::1]", "::1")) or addr.endswith("%lo"):
            continue
        if port not in allowed or allowed[port] not in process:
            unexpected.append(f"{proto} {local} {process}")
    assert unexpected == [], f"unexpected listeners: {unexpected}"
