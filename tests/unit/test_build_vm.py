"""Every qemu bakehouse starts, through Packer or itself, has no VNC listener and runs under
qemu's seccomp sandbox: a guest that breaks out lands in a process that cannot spawn programs
or gain privileges."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bakehouse import render, vm
from bakehouse.spec import ImageSpec
from tests.conftest import ROOT

SANDBOX_DENIES = ("obsolete", "elevateprivileges", "spawn", "resourcecontrol")


def sandbox_ok(value: str) -> bool:
    opts = dict(o.split("=", 1) if "=" in o else (o, "") for o in value.split(","))
    return "on" in opts and all(opts.get(k) == "deny" for k in SANDBOX_DENIES)


def test_packer_qemu_has_no_vnc_and_a_sandbox(tmp_images) -> None:  # type: ignore[no-untyped-def]
    tmp_images.write("web", "description: x\n")
    spec: ImageSpec = tmp_images.load("web")
    text = render.render(spec, "local", ROOT / "packer")
    assert re.search(r"^\s*disable_vnc\s*=\s*true$", text, re.M)
    m = re.search(r'\["-sandbox", "([^"]+)"\]', text)
    assert m and sandbox_ok(m[1]), text


def test_bakehouse_own_qemu_has_a_sandbox(tmp_path: Path) -> None:
    cfg = vm.VmConfig("t", tmp_path / "d", tmp_path / "k", tmp_path / "i", "", tmp_path / "s")
    argv = vm.qemu_argv(cfg)
    assert sandbox_ok(argv[argv.index("-sandbox") + 1])
    assert "-vnc" not in argv and argv[argv.index("-display") + 1] == "none"


@pytest.mark.skipif(not shutil.which(vm.QEMU), reason="needs qemu")
def test_the_installed_qemu_takes_the_sandbox() -> None:
    done = subprocess.run(
        [
            vm.QEMU,
            "-machine",
            "none",
            "-display",
            "none",
            "-nodefaults",
            "-sandbox",
            vm.SANDBOX,
            "-S",
            "-monitor",
            "stdio",
        ],
        input="quit\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
