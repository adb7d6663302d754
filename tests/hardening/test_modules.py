"""Kernel modules for unused filesystems and protocols cannot be loaded."""

from __future__ import annotations

import pytest

from tests.hardening.controls import Control, ids
from tests.hardening.facts import DISABLED_MODULES, Facts

CONTROLS = [
    Control(f"os-10.{name}", f"{name} cannot be loaded", "dev-sec linux-baseline", (name,))
    for name in DISABLED_MODULES
]


@pytest.mark.parametrize("control", CONTROLS, ids=ids)
def test_module_disabled(facts: Facts, control: Control) -> None:
    name = control.args[0]
    dry_run, _, loaded = facts.modules[name].rpartition("|")
    assert "install /bin/false" in dry_run or "install /bin/true" in dry_run, (
        f"modprobe {name} would load it: {dry_run.strip()!r}"
    )
    assert loaded.strip() == "0", f"{name} is loaded"
