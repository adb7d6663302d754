"""Kernel modules for unused filesystems and protocols cannot be loaded."""

from __future__ import annotations

import pytest

from tests.hardening.controls import Control, ids
from tests.hardening.facts import Facts

MODULES = [
    ("cramfs", "CIS 1.1.1.1"),
    ("freevxfs", "CIS 1.1.1.2"),
    ("hfs", "CIS 1.1.1.3"),
    ("hfsplus", "CIS 1.1.1.4"),
    ("jffs2", "CIS 1.1.1.5"),
    ("udf", "CIS 1.1.1.7"),
    ("squashfs", "CIS 1.1.1.6"),
    ("usb-storage", "CIS 1.1.10"),
    ("dccp", "CIS 3.4.1"),
    ("sctp", "CIS 3.4.2"),
    ("rds", "CIS 3.4.3"),
    ("tipc", "CIS 3.4.4"),
]
CONTROLS = [
    Control(f"os-10.{name}", f"{name} cannot be loaded", f"dev-sec linux-baseline; {ref}", (name,))
    for name, ref in MODULES
]


@pytest.mark.parametrize("control", CONTROLS, ids=ids)
def test_module_disabled(facts: Facts, control: Control) -> None:
    name = control.args[0]
    dry_run, _, loaded = facts.modules[name].rpartition("|")
    assert "install /bin/false" in dry_run or "install /bin/true" in dry_run, (
        f"modprobe {name} would load it: {dry_run.strip()!r}"
    )
    assert loaded.strip() == "0", f"{name} is loaded"
