"""sshd: effective settings as sshd itself reports them (`sshd -T`), host keys and modes."""

from __future__ import annotations

import pytest

from tests.hardening.controls import Control, ids
from tests.hardening.facts import FactError, Facts

SSH = "dev-sec ssh-baseline"
CIPHERS = {
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
}
KEXS = {
    "sntrup761x25519-sha512@openssh.com",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group-exchange-sha256",
}
MACS = {
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256-etm@openssh.com",
    "umac-128-etm@openssh.com",
}
HOSTKEY_ALGS = {
    "ssh-ed25519",
    "rsa-sha2-512",
    "rsa-sha2-256",
    "ssh-ed25519-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
}

ALGORITHMS = [
    Control("sshd-01", "Only strong ciphers", SSH, ("ciphers", CIPHERS)),
    Control(
        "sshd-02",
        "Only strong key exchange algorithms",
        SSH,
        ("kexalgorithms", KEXS),
    ),
    Control("sshd-03", "Only strong MACs (encrypt-then-MAC)", SSH, ("macs", MACS)),
    Control(
        "bh-ssh-01",
        "Only ed25519 and SHA-2 RSA host key algorithms",
        SSH,
        ("hostkeyalgorithms", HOSTKEY_ALGS),
    ),
]


@pytest.mark.parametrize("control", ALGORITHMS, ids=ids)
def test_sshd_algorithms(facts: Facts, control: Control) -> None:
    key, allowed = control.args
    offered = set(facts.sshd_value(key).split(","))
    assert offered, f"sshd -T reports no {key}"
    assert offered <= allowed, f"weak {key}: {sorted(offered - allowed)}"


SETTINGS = [
    Control("sshd-06", "No root login", SSH, ("permitrootlogin", "no")),
    Control("sshd-07", "Listen on port 22", SSH, ("port", "22")),
    Control("sshd-11", "StrictModes on", SSH, ("strictmodes", "yes")),
    Control("sshd-12", "Log to the AUTH facility", SSH, ("syslogfacility", "AUTH")),
    Control("sshd-13", "LogLevel VERBOSE", SSH, ("loglevel", "VERBOSE")),
    Control(
        "sshd-17",
        "PermitUserEnvironment off",
        SSH,
        ("permituserenvironment", "no"),
    ),
    Control("sshd-18", "LoginGraceTime 30s", SSH, ("logingracetime", "30")),
    Control("sshd-19", "MaxAuthTries at most 3", SSH, ("maxauthtries", "3")),
    Control("sshd-20", "MaxSessions 10", SSH, ("maxsessions", "10")),
    Control("sshd-21", "MaxStartups 10:30:100", SSH, ("maxstartups", "10:30:100")),
    Control("sshd-22", "Public key authentication on", SSH, ("pubkeyauthentication", "yes")),
    Control("sshd-23", "IgnoreRhosts on", SSH, ("ignorerhosts", "yes")),
    Control("sshd-24", "IgnoreUserKnownHosts on", SSH, ("ignoreuserknownhosts", "yes")),
    Control(
        "sshd-25",
        "No host-based authentication",
        SSH,
        ("hostbasedauthentication", "no"),
    ),
    Control("sshd-27", "No password authentication", SSH, ("passwordauthentication", "no")),
    Control("sshd-28", "No empty passwords", SSH, ("permitemptypasswords", "no")),
    Control(
        "sshd-29",
        "No keyboard-interactive authentication",
        SSH,
        ("kbdinteractiveauthentication", "no"),
    ),
    Control("sshd-30", "No Kerberos authentication", SSH, ("kerberosauthentication", "no")),
    Control("sshd-33", "No GSSAPI authentication", SSH, ("gssapiauthentication", "no")),
    Control("sshd-35", "TCPKeepAlive off (ClientAlive is used)", SSH, ("tcpkeepalive", "no")),
    Control("sshd-36", "ClientAliveInterval 300", SSH, ("clientaliveinterval", "300")),
    Control("sshd-37", "ClientAliveCountMax 3", SSH, ("clientalivecountmax", "3")),
    Control("sshd-38", "No tunnels", SSH, ("permittunnel", "no")),
    Control("sshd-39", "No TCP forwarding", SSH, ("allowtcpforwarding", "no")),
    Control("sshd-40", "No agent forwarding", SSH, ("allowagentforwarding", "no")),
    Control("sshd-41", "No gateway ports", SSH, ("gatewayports", "no")),
    Control("sshd-42", "No X11 forwarding", SSH, ("x11forwarding", "no")),
    Control("sshd-43", "X11UseLocalhost on", SSH, ("x11uselocalhost", "yes")),
    Control("sshd-44", "PrintMotd off", SSH, ("printmotd", "no")),
    Control("sshd-45", "PrintLastLog off", SSH, ("printlastlog", "no")),
    Control(
        "sshd-46",
        "A warning banner before login",
        SSH,
        ("banner", "/etc/issue.net"),
    ),
    Control("sshd-47", "No Debian version in the banner", SSH, ("debianbanner", "no")),
    Control("bh-ssh-02", "No compression before authentication", SSH, ("compression", "no")),
    Control("bh-ssh-03", "No reverse DNS lookups", SSH, ("usedns", "no")),
    Control("bh-ssh-08", "sshd uses PAM (account and session checks)", SSH, ("usepam", "yes")),
]


DEBIAN_ONLY = {"debianbanner"}  # options Debian's patches add, which `sshd -T` leaves out


@pytest.mark.parametrize("control", SETTINGS, ids=ids)
def test_sshd_setting(facts: Facts, control: Control) -> None:
    key, expected = control.args
    # Debian-only options are not printed by `sshd -T`: read from the config files
    actual = _first_in_config(facts, key) if key in DEBIAN_ONLY else facts.sshd_value(key)
    if key == "maxauthtries":
        assert actual.isdigit() and int(actual) <= int(expected), f"{key} is {actual}"
    else:
        assert actual == expected, f"{key} is {actual!r}, expected {expected!r}"


def _first_in_config(facts: Facts, key: str) -> str:
    """The first value of ``key`` in sshd's config files, in the order sshd reads them."""
    text = facts.must(
        "sshd config",
        'for f in /etc/ssh/sshd_config.d/*.conf; do [ ! -e "$f" ] || cat "$f" || exit 1; done; '
        "cat /etc/ssh/sshd_config",
    )
    if not text.strip():
        raise FactError("sshd config: the config files read empty")
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].lower() == key:
            return parts[1]
    return ""


@pytest.mark.parametrize(
    "control", [Control("bh-ssh-04", "sshd enabled and running", SSH)], ids=ids
)
def test_sshd_running(facts: Facts, control: Control) -> None:
    unit = facts.unit("ssh.service")
    assert unit["ActiveState"] == "active", unit
    assert unit["UnitFileState"] == "enabled", unit


FILES = [
    Control(
        "sshd-04",
        "/etc/ssh owned by root, not writable by others",
        SSH,
        ("/etc/ssh", 0o755, "root"),
    ),
    Control(
        "sshd-05",
        "sshd_config root-owned and private",
        SSH,
        ("/etc/ssh/sshd_config", 0o600, "root"),
    ),
    Control(
        "bh-ssh-05",
        "ed25519 host private key root-only",
        "bakehouse",
        ("/etc/ssh/ssh_host_ed25519_key", 0o600, "root"),
    ),
    Control(
        "bh-ssh-06",
        "RSA host private key root-only",
        "bakehouse",
        ("/etc/ssh/ssh_host_rsa_key", 0o600, "root"),
    ),
    Control(
        "bh-ssh-07",
        "ed25519 host public key not writable by others",
        "bakehouse",
        ("/etc/ssh/ssh_host_ed25519_key.pub", 0o644, "root"),
    ),
]


@pytest.mark.parametrize("control", FILES, ids=ids)
def test_sshd_file_modes(facts: Facts, control: Control) -> None:
    path, mode, owner = control.args
    st = facts.stat(path)
    assert st is not None, f"{path} is missing"
    assert st.user == owner and st.group == owner, f"{path} is {st.user}:{st.group}"
    assert st.mode & ~mode == 0, f"{path} mode {oct(st.mode)} is wider than {oct(mode)}"


@pytest.mark.parametrize(
    "control", [Control("sshd-14", "Host keys: ed25519 and RSA only", SSH)], ids=ids
)
def test_sshd_host_key_types(facts: Facts, control: Control) -> None:
    keys = set(facts.sshd.get("hostkey", []))
    assert keys == {"/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key"}, keys


@pytest.mark.parametrize(
    "control", [Control("sshd-48", "No Diffie-Hellman moduli under 2048 bits", SSH)], ids=ids
)
def test_sshd_strong_moduli(facts: Facts, control: Control) -> None:
    # a missing or empty moduli file is an error (sshd would fall back to built-in groups),
    # never "no weak moduli"
    text = facts.must(
        "moduli",
        'awk \'$5 ~ /^[0-9]+$/ { n++; if ($5 < 2047) print "weak", $5 } END { print "read", n+0 }\''
        " /etc/ssh/moduli",
    )
    read = [int(line.split()[1]) for line in text.splitlines() if line.startswith("read ")]
    if not read or read[0] == 0:
        raise FactError("moduli: /etc/ssh/moduli holds no groups")
    weak = sorted({line.split()[1] for line in text.splitlines() if line.startswith("weak ")})
    assert weak == [], f"weak moduli sizes: {weak}"
