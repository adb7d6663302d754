"""Host firewall: nftables alone, every base chain dropping by default, loopback only from
loopback, the rules kept across reboots, and every listening port let in on purpose."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.hardening.controls import Control, ids
from tests.hardening.facts import Facts
from tests.hardening.test_services import allowed_ports, exposed

BH = "bakehouse"


def _chains(ruleset: str) -> dict[str, dict[str, Any]]:
    """Base chains of the ruleset: hook -> {policy, rules}."""
    out: dict[str, dict[str, Any]] = {}
    current = None
    for raw in ruleset.splitlines():
        line = raw.strip()
        hook = re.match(r"type filter hook (\w+) priority [^;]+; policy (\w+);", line)
        if hook:
            current = {"policy": hook.group(2), "rules": []}
            out[hook.group(1)] = current
        elif line.startswith("chain "):
            current = None
        elif current is not None and line and line != "}":
            current["rules"].append(line)
    return out


@pytest.mark.parametrize(
    "control", [Control("bh-fw-01", "A firewall table is loaded", BH)], ids=ids
)
def test_table(facts: Facts, control: Control) -> None:
    assert re.search(r"^table (inet|ip|ip6) \S+ \{", facts.nft, re.M), "no nftables table"


@pytest.mark.parametrize(
    "control",
    [Control("bh-fw-02", "Input, forward and output base chains", BH)],
    ids=ids,
)
def test_base_chains(facts: Facts, control: Control) -> None:
    missing = {"input", "forward", "output"} - set(_chains(facts.nft))
    assert missing == set(), f"no base chain for {sorted(missing)}"


@pytest.mark.parametrize(
    "control", [Control("bh-fw-03", "Every base chain drops by default", BH)], ids=ids
)
def test_default_deny(facts: Facts, control: Control) -> None:
    chains = _chains(facts.nft)
    assert chains, "no base chain"
    open_ = {hook: c["policy"] for hook, c in chains.items() if c["policy"] != "drop"}
    assert open_ == {}, f"policies: {open_}"


@pytest.mark.parametrize(
    "control",
    [Control("bh-fw-04", "Loopback in; loopback addresses from elsewhere dropped", BH)],
    ids=ids,
)
def test_loopback(facts: Facts, control: Control) -> None:
    rules = _chains(facts.nft).get("input", {}).get("rules", [])
    assert any(r.startswith('iif "lo" accept') for r in rules), "loopback is not let in"
    assert any(r.startswith("ip saddr 127.0.0.0/8") and r.endswith("drop") for r in rules)
    assert any(r.startswith("ip6 saddr ::1") and r.endswith("drop") for r in rules)


@pytest.mark.parametrize(
    "control",
    [Control("bh-fw-05", "The firewall loads at boot from /etc/nftables.conf", BH)],
    ids=ids,
)
def test_permanent(facts: Facts, control: Control) -> None:
    unit = facts.unit("nftables.service")
    assert unit.get("UnitFileState") == "enabled", unit
    assert unit.get("ActiveState") == "active", unit
    conf = facts.files.get("/etc/nftables.conf", "")
    for hook in ("input", "forward", "output"):
        assert re.search(rf"hook {hook} priority \S+; policy drop;", conf), (
            f"/etc/nftables.conf has no {hook} chain dropping by default"
        )


@pytest.mark.parametrize(
    "control",
    [Control("bh-fw-06", "Every listening port is let in on purpose", BH)],
    ids=ids,
)
def test_ports_let_in(facts: Facts, context: dict[str, Any], control: Control) -> None:
    rules = _chains(facts.nft).get("input", {}).get("rules", [])
    opened = {
        (m.group(1), m.group(2))
        for r in rules
        for m in [re.match(r"(tcp|udp) dport (\d+) accept", r)]
        if m
    }
    allowed = allowed_ports(context)
    missing = [
        f"{proto}/{port} ({process[:40]})"
        for proto, _, port, process in exposed(facts)
        if port in allowed and (proto, port) not in opened
    ]
    assert missing == [], f"listening but not let in: {missing}"
