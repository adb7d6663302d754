"""Packer: its version, argv for validate / fmt / build, and the one runner of ``packer build``
that both targets use (progress and phase timings from its output, one error type).
Execution goes through proc."""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bakehouse import proc
from bakehouse.errors import PackerError, ToolError
from bakehouse.progress import Progress
from bakehouse.render import PackerVersion

# Placeholders that let `packer validate` check a rendered file without a real run.
VALIDATE_VARS: dict[str, dict[str, str]] = {
    "common": {
        "run_id": "validate",
        "version": "0.0.0",
        "artifacts_dir": "/nonexistent/artifacts",
        "scripts_dir": "/nonexistent/scripts",
    },
    "local": {
        "output_dir": "/nonexistent/output",
        "base_image": "/nonexistent/base.qcow2",
        "base_checksum": "sha256:" + "0" * 64,
        "kernel": "/nonexistent/vmlinuz",
        "initrd": "/nonexistent/initrd.img",
        "ssh_private_key_file": "/nonexistent/id_ed25519",
        "ssh_public_key_b64": "AAAA",
        "console_log": "file:/nonexistent/console.log",
        "root_dir": "/nonexistent/rootfs",
        "in_root": "/nonexistent/in-root.sh",
    },
    "aws": {
        "ssh_host": "192.0.2.1",
        "ssh_private_key_file": "/nonexistent/build-key",
    },
}


def debug_env(folder: Path) -> dict[str, str]:
    """Packer's own debug log (PACKER_LOG) when BAKEHOUSE_PACKER_DEBUG=1; its normal output is
    always kept in packer.log. The debug log costs a few percent of build time."""
    if os.environ.get("BAKEHOUSE_PACKER_DEBUG") == "1":
        return {"PACKER_LOG": "1", "PACKER_LOG_PATH": str(folder / "packer-debug.log")}
    return {}


def binary() -> str:
    """Packer from PATH: no setting swaps the binary that receives the credentials."""
    return "packer"


@functools.lru_cache(maxsize=4)
def _version(path: str, mtime: float) -> PackerVersion:
    result = proc.run([path, "version"], timeout=30)
    if not result.ok:
        raise ToolError(f"`{path} version` failed: {result.stderr.strip()}")
    return PackerVersion.parse(result.stdout.splitlines()[0] if result.stdout else "")


def version() -> PackerVersion:
    path = proc.which(binary())
    return _version(path, Path(path).stat().st_mtime)


def var_args(variables: Mapping[str, str]) -> list[str]:
    args: list[str] = []
    for key, value in variables.items():
        args += ["-var", f"{key}={value}"]
    return args


def validate_argv(path: Path, target: str, overrides: Mapping[str, str] | None = None) -> list[str]:
    """Placeholders for the variables the file declares (Packer refuses a value for one it does
    not: the local target's chroot and vm builds declare different ones)."""
    variables = {**VALIDATE_VARS["common"], **VALIDATE_VARS[target], **(overrides or {})}
    declared = set(re.findall(r'^variable "([A-Za-z0-9_-]+)"', path.read_text(), re.MULTILINE))
    variables = {k: v for k, v in variables.items() if k in declared}
    return [binary(), "validate", *var_args(variables), str(path)]


def fmt_check_argv(path: Path) -> list[str]:
    return [binary(), "fmt", "-check", "-diff", str(path)]


def build_argv(
    path: Path, variables: Mapping[str, str], *, force: bool = True, keep_on_error: bool = False
) -> list[str]:
    argv = [binary(), "build", "-color=false", "-timestamp-ui"]
    if force:
        argv.append("-force")
    if keep_on_error:  # no cleanup after a failed step: the VM and its disk stay
        argv.append("-on-error=abort")
    return [*argv, *var_args(variables), str(path)]


def validate(path: Path, target: str, scripts_dir: Path) -> list[str]:
    """Problems Packer finds in a rendered file: `validate` and `fmt -check`; empty when clean.

    Packer checks that the provisioning scripts and the SSH key exist, so validation points at
    the real scripts and a throwaway key that is deleted afterwards."""
    from bakehouse.sshkeys import throwaway_key

    problems: list[str] = []
    with throwaway_key() as key:
        overrides = {"scripts_dir": str(scripts_dir)}
        overrides["ssh_private_key_file"] = str(key.private)
        if target == "local":
            overrides["ssh_public_key_b64"] = key.public_b64
        result = proc.run(validate_argv(path, target, overrides), timeout=120)
    if not result.ok:
        text = (result.stderr + result.stdout).strip()
        problems.append(f"packer validate: {text}")
    fmt = proc.run(fmt_check_argv(path), timeout=60)
    if not fmt.ok:
        problems.append(f"packer fmt -check: file is not formatted:\n{fmt.stdout.strip()}")
    return problems


# Packer's own progress lines, in the order they appear, and the phase each one starts.
PACKER_PHASES: tuple[tuple[str, str], ...] = (
    ("Starting VM", "boot"),
    ("Launching a source AWS instance", "boot"),
    ("Connected to SSH!", "provision"),
    ("Gracefully halting virtual machine", "shutdown"),
    ("Stopping the source instance", "shutdown"),
    ("Converting hard drive", "convert"),
    ("Creating AMI", "create-image"),
    ("Copying/Encrypting AMI", "copy"),
    ("Running post-processor", "post-process"),
)
# a script starting: in a VM (shell) or in the local chroot build (shell-local)
SCRIPT_LINE = re.compile(
    r"(?:Provisioning with shell script|Running local shell script): .*/([^/\s]+)$"
)


@dataclass
class PackerWatch:
    """Turns Packer's output into phase timings and short progress lines."""

    progress: Progress
    phase: str = "prepare"
    started: float = field(default_factory=time.monotonic)
    timings: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def switch(self, phase: str, note: str = "") -> None:
        now = time.monotonic()
        self.timings[self.phase] = self.timings.get(self.phase, 0.0) + now - self.started
        self.phase, self.started = phase, now
        self.progress.say(f"packer: {phase}{' ' + note if note else ''}")
        self.progress.detail(f"packer {phase}")

    def __call__(self, line: str) -> None:
        for marker, phase in PACKER_PHASES:
            if marker in line:
                if phase != self.phase:
                    self.switch(phase)
                return
        m = SCRIPT_LINE.search(line)
        if m:
            self.switch(f"provision:{m.group(1)}")
        elif ("Build '" in line and "errored" in line) or line.startswith("==> Some builds"):
            self.errors.append(line)
        elif " Error" in line or "error:" in line.lower():
            self.errors.append(line.strip())

    def finish(self) -> dict[str, float]:
        self.switch("done")
        return {k: round(v, 1) for k, v in self.timings.items() if k != "done"}


def build(
    template: Path,
    variables: Mapping[str, str],
    *,
    log: Path,
    cwd: Path,
    tmp: Path,
    progress: Progress,
    timeout: float,
    env: Mapping[str, str] | None = None,
    keep_on_error: bool = False,
) -> dict[str, float]:
    """``packer build`` of ``template`` in its own process group (stopped, then killed, when
    the caller unwinds), its output in ``log``; returns the phase timings. A failed build is
    one :class:`PackerError` naming Packer's last errors and the log."""
    watch = PackerWatch(progress)
    full_env = {
        "CHECKPOINT_DISABLE": "1",
        "PACKER_CACHE_DIR": str(cwd / "packer_cache"),
        "TMPDIR": str(tmp),
        **debug_env(log.parent),
        **(env or {}),
    }
    start = time.monotonic()
    code = proc.stream(
        build_argv(template, variables, keep_on_error=keep_on_error),
        log=log,
        on_line=watch,
        cwd=cwd,
        env=full_env,
        timeout=timeout,
        leave_running=keep_on_error,
    )
    timings = watch.finish()
    timings["total"] = round(time.monotonic() - start, 1)
    if code != 0:
        detail = " | ".join(watch.errors[-3:]) or f"exit {code}"
        raise PackerError(f"packer build failed: {detail}", f"the full log is {log}")
    return timings
