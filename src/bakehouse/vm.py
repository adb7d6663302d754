"""Local VMs: qemu argv (pure), the accelerator probe, boot-and-wait-for-SSH as a ``with`` block.

A VM is started in its own process group and stopped when the block ends, whatever happens in
it. Disks are opened with ``snapshot=on``: writes go to a temporary overlay that qemu drops,
so booting an artifact to verify it never modifies it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bakehouse import proc
from bakehouse.errors import VmError
from bakehouse.progress import Progress

QEMU = "qemu-system-x86_64"
KVM_DEVICE = Path("/dev/kvm")


# Under TCG the guest gets qemu's "max" CPU, which offers SVM, so an Ubuntu kernel loads
# kvm_amd at boot; its set-up rewrites kernel text on every vCPU while they run, and
# multi-threaded TCG (qemu 7.2) has double-faulted a 24.04 kernel in the middle of it. No image
# needs a hypervisor while it is baked or proven, so those modules are refused at boot (hiding
# SVM from the CPU instead breaks that kernel's userspace under TCG; single-threaded TCG makes
# the boot twice as slow). ``panic=-1`` with qemu's ``-no-reboot`` turns a kernel panic into a
# stopped VM at once, rather than a silent wait for SSH.
TCG_CPU = "max"
KERNEL_ARGS = "root=/dev/vda rw console=ttyS0 panic=-1 module_blacklist=kvm,kvm_amd,kvm_intel"


def cpu_model(accelerator: str) -> str:
    return "host" if accelerator == "kvm" else TCG_CPU


def console_fault(serial_log: Path | None) -> str | None:
    """The line of a guest's console that says its kernel died, with what killed it (a panic,
    an oops, a double fault), or None."""
    if serial_log is None or not serial_log.is_file():
        return None
    text = serial_log.read_text(errors="replace")
    lines = [line.strip() for line in text.splitlines()]
    panic = next((line for line in lines if "Kernel panic - not syncing" in line), None)
    marks = ("BUG:", "Oops:", "double fault:", "general protection")
    cause = next((line for line in lines if any(mark in line for mark in marks)), None)
    found = [line.split("] ", 1)[-1] for line in (cause, panic) if line is not None]
    return "; ".join(found) if found else None


def escape_qemu(value: str) -> str:
    """qemu option values escape a comma by doubling it."""
    return value.replace(",", ",,")


@dataclass(frozen=True)
class VmConfig:
    name: str
    disk: Path
    kernel: Path
    initrd: Path
    append: str
    serial_log: Path
    accelerator: str = "tcg"
    memory_mib: int = 1024
    cpus: int = 2
    ssh_port: int | None = None
    snapshot: bool = True
    data_disk: Path | None = None  # the second disk: /var, /var/log, /home … (baked images)


# qemu's seccomp filter: the emulator may not run programs, gain privileges, change its
# scheduling or use obsolete system calls, so a guest that escapes into it gets little further
SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"


def _kernel_boot_argv(
    accel: str, memory_mib: int, serial: Path, kernel: Path, initrd: Path, append: str
) -> list[str]:
    """qemu with no default devices, no display, the serial console to a file and direct
    kernel boot: what every VM bakehouse starts has in common."""
    return [
        QEMU,
        "-machine",
        "q35",
        "-accel",
        accel,
        "-cpu",
        cpu_model("kvm" if accel == "kvm" else "tcg"),
        "-m",
        str(memory_mib),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-sandbox",
        SANDBOX,
        "-no-reboot",
        "-serial",
        f"file:{escape_qemu(str(serial))}",
        "-kernel",
        str(kernel),
        "-initrd",
        str(initrd),
        "-append",
        append,
    ]


def qemu_argv(cfg: VmConfig) -> list[str]:
    accel = "kvm" if cfg.accelerator == "kvm" else "tcg,thread=multi"
    argv = [
        *_kernel_boot_argv(
            accel, cfg.memory_mib, cfg.serial_log, cfg.kernel, cfg.initrd, cfg.append
        ),
        "-name",
        escape_qemu(cfg.name),
        "-smp",
        str(cfg.cpus),
        *(
            arg
            for path in (cfg.disk, cfg.data_disk)
            if path is not None
            for arg in (
                "-drive",
                f"file={escape_qemu(str(path))},if=virtio,format=qcow2,cache=unsafe,"
                f"discard=unmap{',snapshot=on' if cfg.snapshot else ''}",
            )
        ),
        "-device",
        "virtio-rng-pci",
    ]
    if cfg.ssh_port is not None:
        argv += [
            "-netdev",
            f"user,id=n0,hostfwd=tcp:127.0.0.1:{cfg.ssh_port}-:22",
            "-device",
            "virtio-net-pci,netdev=n0",
        ]
    return argv


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_ssh(
    port: int,
    key: Path,
    user: str,
    deadline: float,
    vm: proc.Background | None,
    serial_log: Path | None,
    host: str = "127.0.0.1",
    key_type: str = "ed25519",
    known_hosts: Path | None = None,
) -> float:
    """Wait until ``user`` can log in with ``key``; returns the seconds it took. With
    ``known_hosts`` the server must present one of the host keys listed there (a machine
    reached across a network), else any is taken (our own VM on a loopback port)."""
    import logging

    import paramiko

    # failed attempts while sshd starts are expected: keep paramiko's thread from printing them
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    start = time.monotonic()
    last = "no answer yet"
    pkey = (
        paramiko.Ed25519Key if key_type == "ed25519" else paramiko.RSAKey
    ).from_private_key_file(str(key))
    while time.monotonic() < deadline:
        if vm is not None and not vm.running():
            fault = console_fault(serial_log)
            raise VmError(
                f"the VM stopped before SSH came up (exit {vm.returncode()})"
                + (f": its kernel died ({fault})" if fault else ""),
                f"its console log is {serial_log}",
            )
        if not _banner(port, host):
            last = "no SSH banner yet"
            time.sleep(0.3)
            continue
        client = paramiko.SSHClient()
        if known_hosts is not None:
            client.load_host_keys(str(known_hosts))
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        else:
            # the VM was started by us a moment ago, on a loopback port, and makes new host
            # keys at every boot: there is no earlier key to check against
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507  # nosec B507
        try:
            client.connect(
                host,
                port=port,
                username=user,
                pkey=pkey,
                timeout=5,
                banner_timeout=10,
                auth_timeout=10,
                allow_agent=False,
                look_for_keys=False,
            )
            _, out, _ = client.exec_command("true", timeout=20)  # nosec B601
            out.channel.recv_exit_status()
            return time.monotonic() - start
        except paramiko.BadHostKeyException:
            raise VmError(
                f"{host}:{port} presented a host key other than the one it printed on its "
                "console: something between here and the instance answers in its name",
                "nothing was run on it; check the network path (or verify over SSM)",
            ) from None
        except (OSError, EOFError, paramiko.SSHException) as exc:
            last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        finally:
            client.close()
        time.sleep(0.3)
    fault = console_fault(serial_log)
    raise VmError(
        f"SSH on {host}:{port} did not accept the key in time (last: {last})"
        + (f"; its kernel died ({fault})" if fault else ""),
        f"its console log is {serial_log}" if serial_log else None,
    )


def _banner(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something answering like sshd listens on the port."""
    try:
        with socket.create_connection((host, port), timeout=3) as sock:
            sock.settimeout(5)
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


@dataclass
class Booted:
    port: int
    user: str
    key: Path
    boot_seconds: float
    vm: proc.Background

    def ssh_config(self, path: Path, alias: str = "bakehouse-vm") -> Path:
        return write_ssh_config(path, "127.0.0.1", self.port, self.user, self.key, alias)


def write_ssh_config(
    path: Path,
    host: str,
    port: int,
    user: str,
    key: Path,
    alias: str = "bakehouse-vm",
    known_hosts: Path | None = None,
) -> Path:
    """An ssh_config for one freshly booted machine: its host keys are new every boot, so
    they are pinned from ``known_hosts`` when given (read from its console), else not checked
    (our own VM on a loopback port)."""
    checking = (
        f"  StrictHostKeyChecking yes\n  UserKnownHostsFile {known_hosts}\n"
        if known_hosts is not None
        else "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
    )
    path.write_text(
        f"Host {alias}\n  HostName {host}\n  Port {port}\n  User {user}\n"
        f"  IdentityFile {key}\n  IdentitiesOnly yes\n{checking}  LogLevel ERROR\n"
    )
    return path


@contextlib.contextmanager
def boot(
    cfg: VmConfig, key: Path, user: str, timeout: float, progress: Progress, log: Path
) -> Iterator[Booted]:
    """Boot a VM and wait for SSH; the VM is stopped when the block ends."""
    port = cfg.ssh_port or free_port()
    if cfg.ssh_port is None:
        cfg = dataclasses.replace(cfg, ssh_port=port)
    with proc.Background(qemu_argv(cfg), log=log) as vm:
        progress.say(f"vm: booting {cfg.name} ({cfg.accelerator}), SSH on 127.0.0.1:{port}")
        took = wait_for_ssh(port, key, user, time.monotonic() + timeout, vm, cfg.serial_log)
        progress.say(f"vm: SSH up after {took:.1f}s")
        yield Booted(port, user, key, took, vm)


# ---- accelerator probe --------------------------------------------------------------------------

PROBE_MARKER = "as init process"  # the kernel prints "Run /bin/false as init process"


def probe_argv(kernel: Path, initrd: Path, serial: Path, accelerator: str) -> list[str]:
    accel = "kvm" if accelerator == "kvm" else "tcg"
    return _kernel_boot_argv(
        accel, 256, serial, kernel, initrd, "console=ttyS0 panic=-1 rdinit=/bin/false"
    )


def _boot_until_marker(argv: list[str], serial: Path, log: Path, timeout: float) -> float | None:
    serial.unlink(missing_ok=True)
    with proc.Background(argv, log=log):
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            with contextlib.suppress(FileNotFoundError):
                if PROBE_MARKER in serial.read_text(errors="replace"):
                    return time.monotonic() - start
            time.sleep(0.1)
    return None


def choose_accelerator(
    wanted: str,
    kernel: Path,
    initrd: Path,
    work: Path,
    cache: Path,
    progress: Progress,
    budget: float = 20.0,
) -> dict[str, object]:
    """KVM only if a time-boxed boot proves it works and beats TCG; the result is cached per host
    boot (a KVM that works now works until the host reboots)."""
    if wanted == "tcg":
        return {"accelerator": "tcg", "reason": "the image definition asks for tcg"}
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    if cache.is_file():
        with contextlib.suppress(ValueError, KeyError):
            cached = json.loads(cache.read_text())
            if cached["boot_id"] == boot_id and wanted == "auto":
                again: dict[str, object] = dict(cached["result"])
                again["reason"] = f"{again['reason']} (probed earlier this host boot)"
                return again
    import os

    result: dict[str, object]
    if not KVM_DEVICE.exists() or not os.access(KVM_DEVICE, os.R_OK | os.W_OK):
        result = {"accelerator": "tcg", "reason": "no usable /dev/kvm"}
    else:
        work.mkdir(parents=True, exist_ok=True)

        def timed(accel: str, limit: float) -> float | None:
            serial = work / f"probe-{accel}.log"
            return _boot_until_marker(
                probe_argv(kernel, initrd, serial, accel),
                serial,
                work / f"probe-{accel}.qemu.log",
                limit,
            )

        tcg = timed("tcg", budget)
        # KVM that works boots this far in well under a second; give it the time TCG took, at
        # least a few seconds, and no more
        limit = max(5.0, 2 * tcg) if tcg is not None else budget
        kvm = timed("kvm", limit)
        timings = {"tcg": tcg, "kvm": kvm}
        if kvm is not None and (tcg is None or kvm < tcg):
            result = {
                "accelerator": "kvm",
                "probe": timings,
                "reason": f"KVM booted to the initrd in {kvm:.1f}s (TCG {tcg}s)",
            }
        elif kvm is None:
            result = {
                "accelerator": "tcg",
                "probe": timings,
                "reason": f"KVM did not boot to the initrd within {limit:.0f}s",
            }
        else:
            result = {
                "accelerator": "tcg",
                "probe": timings,
                "reason": f"KVM booted in {kvm:.1f}s, slower than TCG ({tcg:.1f}s)",
            }
    if wanted == "kvm" and result["accelerator"] != "kvm":
        raise VmError(
            f"the image definition asks for kvm, but {result['reason']}",
            "set targets.local.accelerator: auto to fall back to TCG",
        )
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"boot_id": boot_id, "result": result}))
    progress.say(f"accelerator: {result['accelerator']} ({result['reason']})")
    return result
