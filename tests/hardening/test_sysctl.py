"""Kernel and network parameters, read once with `sysctl -a`."""

from __future__ import annotations

import pytest

from tests.hardening.controls import Control, ids
from tests.hardening.facts import Facts

LB = "dev-sec linux-baseline"


def c(cid: str, title: str, ref: str, key: str, *allowed: str) -> Control:
    return Control(cid, title, ref, (key, allowed))


SYSCTLS = [
    c("sysctl-01", "No IPv4 forwarding", LB, "net.ipv4.ip_forward", "0"),
    c(
        "sysctl-01.all",
        "No IPv4 forwarding on any interface",
        LB,
        "net.ipv4.conf.all.forwarding",
        "0",
    ),
    c(
        "sysctl-02",
        "Reverse path filtering (all)",
        LB,
        "net.ipv4.conf.all.rp_filter",
        "1",
    ),
    c(
        "sysctl-02.default",
        "Reverse path filtering (default)",
        LB,
        "net.ipv4.conf.default.rp_filter",
        "1",
    ),
    c(
        "sysctl-03",
        "Ignore bogus ICMP error responses",
        LB,
        "net.ipv4.icmp_ignore_bogus_error_responses",
        "1",
    ),
    c(
        "sysctl-04",
        "Ignore broadcast ICMP echo",
        LB,
        "net.ipv4.icmp_echo_ignore_broadcasts",
        "1",
    ),
    c("sysctl-05", "ICMP rate limit", LB, "net.ipv4.icmp_ratelimit", "100"),
    c("sysctl-06", "ICMP rate mask", LB, "net.ipv4.icmp_ratemask", "88089"),
    c(
        "sysctl-08",
        "ARP: reply only for addresses on the interface",
        LB,
        "net.ipv4.conf.all.arp_ignore",
        "1",
        "2",
    ),
    c(
        "sysctl-09",
        "ARP: announce the best local address",
        LB,
        "net.ipv4.conf.all.arp_announce",
        "2",
    ),
    c("sysctl-10", "RFC 1337 TIME-WAIT protection", LB, "net.ipv4.tcp_rfc1337", "1"),
    c("sysctl-11", "SYN cookies", LB, "net.ipv4.tcp_syncookies", "1"),
    c(
        "sysctl-13",
        "No source routing (IPv4 all)",
        LB,
        "net.ipv4.conf.all.accept_source_route",
        "0",
    ),
    c(
        "sysctl-13.default",
        "No source routing (IPv4 default)",
        LB,
        "net.ipv4.conf.default.accept_source_route",
        "0",
    ),
    c(
        "sysctl-13.ipv6",
        "No source routing (IPv6 all)",
        LB,
        "net.ipv6.conf.all.accept_source_route",
        "0",
    ),
    c(
        "sysctl-13.ipv6-default",
        "No source routing (IPv6 default)",
        LB,
        "net.ipv6.conf.default.accept_source_route",
        "0",
    ),
    c(
        "sysctl-14",
        "No ICMP redirects accepted (IPv4 all)",
        LB,
        "net.ipv4.conf.all.accept_redirects",
        "0",
    ),
    c(
        "sysctl-14.default",
        "No ICMP redirects accepted (IPv4 default)",
        LB,
        "net.ipv4.conf.default.accept_redirects",
        "0",
    ),
    c(
        "sysctl-15",
        "No secure ICMP redirects accepted (all)",
        LB,
        "net.ipv4.conf.all.secure_redirects",
        "0",
    ),
    c(
        "sysctl-15.default",
        "No secure ICMP redirects accepted (default)",
        LB,
        "net.ipv4.conf.default.secure_redirects",
        "0",
    ),
    c(
        "sysctl-16",
        "No ICMP redirects sent (all)",
        LB,
        "net.ipv4.conf.all.send_redirects",
        "0",
    ),
    c(
        "sysctl-16.default",
        "No ICMP redirects sent (default)",
        LB,
        "net.ipv4.conf.default.send_redirects",
        "0",
    ),
    c(
        "sysctl-17",
        "Log martian packets (all)",
        LB,
        "net.ipv4.conf.all.log_martians",
        "1",
    ),
    c(
        "sysctl-17.default",
        "Log martian packets (default)",
        LB,
        "net.ipv4.conf.default.log_martians",
        "1",
    ),
    c("sysctl-19", "No IPv6 forwarding", LB, "net.ipv6.conf.all.forwarding", "0"),
    c(
        "sysctl-20",
        "No ICMP redirects accepted (IPv6 all)",
        LB,
        "net.ipv6.conf.all.accept_redirects",
        "0",
    ),
    c(
        "sysctl-20.default",
        "No ICMP redirects accepted (IPv6 default)",
        LB,
        "net.ipv6.conf.default.accept_redirects",
        "0",
    ),
    c(
        "sysctl-25",
        "No IPv6 router advertisements in the kernel (all)",
        LB,
        "net.ipv6.conf.all.accept_ra",
        "0",
    ),
    c(
        "sysctl-25.default",
        "No IPv6 router advertisements in the kernel (default)",
        LB,
        "net.ipv6.conf.default.accept_ra",
        "0",
    ),
    c("sysctl-30", "Magic SysRq off", LB, "kernel.sysrq", "0"),
    c(
        "sysctl-31a",
        "No core dumps of setuid programs",
        LB,
        "fs.suid_dumpable",
        "0",
    ),
    c(
        "sysctl-32",
        "Full address space layout randomisation",
        LB,
        "kernel.randomize_va_space",
        "2",
    ),
    c("sysctl-34.fifos", "Protected FIFOs", LB, "fs.protected_fifos", "1", "2"),
    c("sysctl-34.hardlinks", "Protected hard links", LB, "fs.protected_hardlinks", "1"),
    c("sysctl-34.regular", "Protected regular files", LB, "fs.protected_regular", "2"),
    c("sysctl-34.symlinks", "Protected symbolic links", LB, "fs.protected_symlinks", "1"),
    c(
        "bh-kernel-01",
        "ptrace limited to descendants (Yama)",
        "bakehouse",
        "kernel.yama.ptrace_scope",
        "1",
        "2",
        "3",
    ),
    c("bh-kernel-02", "dmesg restricted to privileged users", "KSPP", "kernel.dmesg_restrict", "1"),
    c("bh-kernel-03", "Kernel pointers hidden", "KSPP", "kernel.kptr_restrict", "1", "2"),
    c("bh-kernel-04", "No unprivileged BPF", "KSPP", "kernel.unprivileged_bpf_disabled", "1", "2"),
    c("bh-kernel-05", "BPF JIT hardening", "KSPP", "net.core.bpf_jit_harden", "2"),
]


@pytest.mark.parametrize("control", SYSCTLS, ids=ids)
def test_sysctl(facts: Facts, control: Control) -> None:
    key, allowed = control.args
    assert key in facts.sysctl, f"{key} is not reported by sysctl -a"
    assert facts.sysctl[key] in allowed, f"{key} = {facts.sysctl[key]} (want {'/'.join(allowed)})"


@pytest.mark.parametrize(
    "control", [Control("sysctl-33", "CPU no-execute (NX) support", LB)], ids=ids
)
def test_nx(facts: Facts, control: Control) -> None:
    # what the booted kernel says it enforces, not only what the CPU offers
    assert "NX (Execute Disable) protection: active" in facts.kernel_log, (
        "the kernel does not enforce NX"
    )
