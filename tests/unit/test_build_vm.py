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

# the local target's Packer build in a qemu VM (its default build runs in a chroot, no VM)
VM_BUILD = "description: x\ntargets:\n  local:\n    build: vm\n"
SANDBOX_DENIES = ("obsolete", "elevateprivileges", "spawn", "resourcecontrol")


def sandbox_ok(value: str) -> bool:
    opts = dict(o.split("=", 1) if "=" in o else (o, "") for o in value.split(","))
    return "on" in opts and all(opts.get(k) == "deny" for k in SANDBOX_DENIES)


def test_packer_qemu_has_no_vnc_and_a_sandbox(tmp_images) -> None:  # type: ignore[no-untyped-def]
    tmp_images.write("web", VM_BUILD)
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


def test_guests_load_no_hypervisor_and_die_at_once_on_a_panic(tmp_images, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An Ubuntu 24.04 guest loaded kvm_amd at boot and double-faulted under multi-threaded TCG;
    the panicked kernel then sat on its console while SSH was waited for."""
    files = [tmp_path / name for name in ("d", "k", "i")]
    cfg = vm.VmConfig("t", *files, vm.KERNEL_ARGS, tmp_path / "s")
    argv = vm.qemu_argv(cfg)
    append = argv[argv.index("-append") + 1].split()
    assert {"panic=-1", "module_blacklist=kvm,kvm_amd,kvm_intel"} <= set(append)
    assert "-no-reboot" in argv
    tmp_images.write("web", VM_BUILD)
    text = render.render(tmp_images.load("web"), "local", ROOT / "packer")
    assert '["-no-reboot"]' in text
    m = re.search(r'\["-append", format\("%s [^"]*", "([^"]*)", var.ssh_public_key_b64\)\]', text)
    assert m and m[1] == vm.KERNEL_ARGS, text


def test_a_kernel_that_died_is_named_from_its_console(tmp_path: Path) -> None:
    crash = ROOT / "tests" / "fixtures" / "consoles" / "noble-tcg-double-fault.log"
    fault = vm.console_fault(crash)
    assert fault == (
        "double fault: 0000 [#1] PREEMPT SMP NOPTI; "
        "Kernel panic - not syncing: Fatal exception in interrupt"
    )
    before = crash.read_text().split("traps: PANIC")[0]
    (tmp_path / "alive.log").write_text(before)
    assert vm.console_fault(tmp_path / "alive.log") is None
    assert vm.console_fault(tmp_path / "absent.log") is None
