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
        LB,
        ("openbsd-inetd", "inetutils-inetd", "rlinetd"),
    ),
    Control("package-01.xinetd", "No xinetd", LB, ("xinetd",)),
    Control(
        "package-02",
        "No telnet server",
        LB,
        ("telnetd", "inetutils-telnetd", "telnetd-ssl"),
    ),
    Control("package-02.client", "No telnet client", "bakehouse", ("telnet", "inetutils-telnet")),
    Control(
        "package-03",
        "No rsh server or client",
        LB,
        ("rsh-server", "rsh-client", "rsh-redone-server", "rsh-redone-client"),
    ),
    Control("package-05", "No NIS", LB, ("nis", "ypserv")),
    Control(
        "package-06",
        "No TFTP server or client",
        LB,
        ("tftpd", "tftpd-hpa", "atftpd", "tftp", "tftp-hpa"),
    ),
    Control("package-10", "No prelink", LB, ("prelink",)),
    Control("bh-pkg-01", "No talk", "bakehouse", ("talk", "talkd")),
    Control("bh-pkg-02", "No LDAP client tools", "bakehouse", ("ldap-utils",)),
    Control("bh-pkg-03", "No RPC portmapper", "bakehouse", ("rpcbind",)),
    Control("bh-pkg-04", "No X server", "bakehouse", ("xserver-xorg-core",)),
    Control("bh-pkg-08", "No automounter", "bakehouse", ("autofs",)),
    Control("bh-pkg-09", "No DHCP server", "bakehouse", ("isc-dhcp-server", "kea-dhcp4-server")),
    Control("bh-pkg-10", "No DNS server", "bakehouse", ("bind9",)),
    Control("bh-pkg-11", "No dnsmasq", "bakehouse", ("dnsmasq",)),
    Control("bh-pkg-12", "No FTP server", "bakehouse", ("vsftpd",)),
    Control("bh-pkg-13", "No LDAP server", "bakehouse", ("slapd",)),
    Control("bh-pkg-14", "No IMAP or POP3 server", "bakehouse", ("dovecot-imapd", "dovecot-pop3d")),
    Control("bh-pkg-15", "No NFS server", "bakehouse", ("nfs-kernel-server",)),
    Control("bh-pkg-16", "No print server", "bakehouse", ("cups",)),
    Control("bh-pkg-17", "No Samba server", "bakehouse", ("samba",)),
    Control("bh-pkg-18", "No SNMP daemon", "bakehouse", ("snmpd",)),
    Control("bh-pkg-19", "No web proxy", "bakehouse", ("squid",)),
    Control("bh-pkg-20", "No FTP client", "bakehouse", ("ftp", "tnftp", "inetutils-ftp")),
    Control("bh-pkg-21", "No Bluetooth", "bakehouse", ("bluez",)),
    Control("bh-pkg-31", "No automatic error reporting", "bakehouse", ("apport", "whoopsie")),
    Control(
        "bh-pkg-22",
        "One time synchronisation daemon (no chrony or ntp beside timesyncd)",
        "bakehouse",
        ("chrony", "ntp", "ntpsec"),
    ),
    Control(
        "bh-pkg-23",
        "One firewall utility (no ufw, no iptables-persistent)",
        "bakehouse",
        ("ufw", "iptables-persistent"),
    ),
    Control(
        "bh-pkg-24", "One logging system (no syslog daemon)", "bakehouse", ("rsyslog", "syslog-ng")
    ),
]


@pytest.mark.parametrize(
    "control",
    [
        Control(
            "bh-pkg-25",
            "No web server outside web images",
            "bakehouse",
            ("apache2", "nginx", "nginx-light", "nginx-core", "nginx-full", "lighttpd"),
        ),
    ],
    ids=ids,
)
def test_no_web_server(facts: Facts, context: dict[str, Any], control: Control) -> None:
    if "nginx" in (context.get("role_checks") or []):
        pytest.skip("the web role serves HTTP")
    installed = [p for p in control.args if p in facts.packages]
    assert installed == [], f"installed: {installed}"


@pytest.mark.parametrize("control", ABSENT, ids=ids)
def test_package_absent(facts: Facts, control: Control) -> None:
    installed = [p for p in control.args if p in facts.packages]
    assert installed == [], f"installed: {installed}"


@pytest.mark.parametrize(
    "control",
    [
        Control("package-08", "auditd installed", LB, ("auditd",)),
        Control("bh-pkg-05", "AppArmor installed", "bakehouse", ("apparmor",)),
        Control("bh-pkg-06", "Time synchronisation installed", "bakehouse", ("systemd-timesyncd",)),
        Control("bh-pkg-07", "sudo installed", "bakehouse", ("sudo",)),
        Control("bh-pkg-26", "pwquality installed", "bakehouse", ("libpam-pwquality",)),
        Control("bh-pkg-27", "PAM modules installed", "bakehouse", ("libpam-modules",)),
        Control("bh-pkg-28", "nftables installed", "bakehouse", ("nftables",)),
        Control("bh-pkg-29", "AIDE installed", "bakehouse", ("aide", "aide-common")),
        Control("bh-pkg-30", "Process accounting installed", "bakehouse", ("acct",)),
    ],
    ids=ids,
)
def test_package_present(facts: Facts, control: Control) -> None:
    missing = [p for p in control.args if p not in facts.packages]
    assert missing == [], f"not installed: {missing}"


RUNNING = [
    Control("bh-svc-13", "Process accounting on", "bakehouse", ("acct.service",)),
    Control("bh-svc-01", "auditd enabled and running", "bakehouse", ("auditd.service",)),
    Control("bh-svc-02", "AppArmor enabled and loaded", "bakehouse", ("apparmor.service",)),
    Control(
        "bh-svc-03", "Time synchronisation running", "bakehouse", ("systemd-timesyncd.service",)
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
        Control("bh-svc-04", "No debug shell", "bakehouse", ("debug-shell.service",)),
        Control("bh-svc-05", "No avahi", "bakehouse", ("avahi-daemon.service",)),
        Control("bh-svc-06", "No CUPS", "bakehouse", ("cups.service",)),
        Control("bh-svc-07", "No NFS server", "bakehouse", ("nfs-server.service",)),
        Control("bh-svc-08", "No SNMP daemon", "bakehouse", ("snmpd.service",)),
        Control("bh-svc-09", "No FTP server", "bakehouse", ("vsftpd.service",)),
        Control("bh-svc-10", "No Samba", "bakehouse", ("smbd.service",)),
        Control("bh-svc-11", "No rsync daemon", "bakehouse", ("rsync.service",)),
    ],
    ids=ids,
)
def test_service_not_running(facts: Facts, control: Control) -> None:
    unit = facts.unit(control.args[0])
    assert unit.get("ActiveState") != "active", unit


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-svc-12", "cron enabled and running where installed", "bakehouse"),
    ],
    ids=ids,
)
def test_cron_running(facts: Facts, control: Control) -> None:
    if "cron" not in facts.packages:
        pytest.skip("cron is not installed: systemd timers schedule this image's jobs")
    unit = facts.unit("cron.service")
    assert unit.get("UnitFileState") == "enabled", unit
    assert unit.get("ActiveState") == "active", unit


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-mac-02", "Every AppArmor profile enforces or complains", "bakehouse"),
    ],
    ids=ids,
)
def test_apparmor_profiles(facts: Facts, control: Control) -> None:
    other = {n: m for n, m in facts.apparmor_profiles.items() if m not in ("enforce", "complain")}
    assert other == {}, f"profiles in other modes: {other}"


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-mac-01", "AppArmor enabled in the kernel", "bakehouse", ()),
    ],
    ids=ids,
)
def test_apparmor_kernel(facts: Facts, control: Control) -> None:
    assert facts.files.get("/sys/module/apparmor/parameters/enabled", "").strip() == "Y"
    assert "apparmor=0" not in facts.files.get("/proc/cmdline", "")


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-audit-01", "Audit rules loaded", "bakehouse", ("-w /etc/shadow",)),
        Control("bh-audit-02", "Identity changes audited", "bakehouse", ("-w /etc/passwd",)),
        Control("bh-audit-03", "sudoers changes audited", "bakehouse", ("-w /etc/sudoers",)),
        Control("bh-audit-04", "Kernel module loading audited", "bakehouse", ("init_module",)),
        Control("bh-audit-05", "Audit configuration immutable", "bakehouse", ("enabled 2",)),
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
    "546": "systemd-network",
}
ROLE_PORTS = {"nginx": {"80": "nginx"}}


def exposed(facts: Facts) -> list[tuple[str, str, str, str]]:
    """(protocol, local address:port, port, process) of every socket listening beyond
    loopback."""
    out = []
    for proto, local, process in facts.listening:
        addr, _, port = local.rpartition(":")
        if not (addr.startswith(("127.", "[::1]", "::1")) or addr.endswith("%lo")):
            out.append((proto, local, port, process))
    return out


def allowed_ports(context: dict[str, Any]) -> dict[str, str]:
    roles = context.get("role_checks")
    chosen = ROLE_PORTS if roles is None else {r: ROLE_PORTS[r] for r in roles if r in ROLE_PORTS}
    return {**ALLOWED_PORTS, **{p: n for ports in chosen.values() for p, n in ports.items()}}


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-net-01", "Only expected ports listen", "bakehouse", ()),
    ],
    ids=ids,
)
def test_listening_ports(facts: Facts, context: dict[str, Any], control: Control) -> None:
    allowed = allowed_ports(context)
    unexpected = [
        f"{proto} {local} {process}"
        for proto, local, port, process in exposed(facts)
        if port not in allowed or allowed[port] not in process
    ]
    assert unexpected == [], f"unexpected listeners: {unexpected}"
