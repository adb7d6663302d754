"""The local build: render the template, `packer build` with the qemu builder (through the one
Packer runner), compress the disk, collect the kernel, initrd and package manifest.

Everything is built inside the run's private folder; nothing reaches the catalogue here.
Packer runs in its own process group: on Ctrl-C or SIGTERM it is asked to stop first (it then
halts its VM and removes its output), and killed if it does not.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bakehouse import packer, proc, runs, vm
from bakehouse import render as rnd
from bakehouse.errors import PackerError
from bakehouse.files import describe
from bakehouse.inputs import fingerprint, git_commit, suite_hash
from bakehouse.progress import Progress
from bakehouse.runs import Run
from bakehouse.spec import ImageSpec
from bakehouse.sshkeys import write_key
from bakehouse.targets.local import base as base_stage
from bakehouse.targets.local import chroot
from bakehouse.targets.local.base import BaseImage, convert_argv


@dataclass
class Built:
    stage: Path
    version: str
    fingerprint: str
    git_commit: str
    timings: dict[str, float]
    manifest: dict[str, Any]
    artifacts: dict[str, dict[str, Any]]


def build(
    spec: ImageSpec,
    root: Path,
    packer_dir: Path,
    scripts_dir: Path,
    run: Run,
    base: BaseImage,
    accelerator: str,
    progress: Progress,
    packer_timeout: float = 3600,
    base_key: str | None = None,
    keep_on_failure: bool = False,
) -> Built:
    """``base_key``: the base before host patching, which the fingerprint names;
    ``keep_on_failure``: a failed build's VM is left running to look at (:func:`kept_vm`)."""
    version = packer.version()
    template = rnd.render(spec, "local", packer_dir, version)
    template_path = run.path("build.pkr.hcl")
    template_path.write_text(template)
    stage = run.path("stage")
    stage.mkdir()
    fp = fingerprint(spec, template, scripts_dir, base_key or base.key, suite_hash(root))
    commit = git_commit(root)
    # what the template is given whichever way it builds
    common = {
        "run_id": run.id,
        "version": run.version,
        "artifacts_dir": str(stage),
        "scripts_dir": str(scripts_dir),
        "git_commit": commit,
        "fingerprint": fp,
    }
    if spec.targets.local.build == "chroot":
        timings, manifest = build_in_chroot(
            spec,
            packer_dir,
            run,
            base,
            template_path,
            common,
            progress,
            packer_timeout,
            keep_on_failure,
        )
    else:
        timings, manifest = build_in_vm(
            spec,
            run,
            base,
            accelerator,
            template_path,
            common,
            progress,
            packer_timeout,
            keep_on_failure,
        )
    return Built(stage, run.version, fp, commit, timings, manifest, staged_artifacts(stage))


def staged_artifacts(stage: Path) -> dict[str, dict[str, Any]]:
    """What a finished build leaves in its stage folder, described for the catalogue."""
    files = {
        "disk": "disk.qcow2",
        "data": "data.qcow2",
        "kernel": "vmlinuz",
        "initrd": "initrd.img",
        "manifest": "manifest.json",
    }
    return {role: describe(stage / name) for role, name in files.items()}


def build_in_vm(
    spec: ImageSpec,
    run: Run,
    base: BaseImage,
    accelerator: str,
    template_path: Path,
    common: dict[str, str],
    progress: Progress,
    packer_timeout: float,
    keep_on_failure: bool,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Packer's qemu builder boots the (host-patched) base and runs the scripts in it; the
    disks it leaves are compressed. Its phase timings and the image's package manifest."""
    stage = Path(common["artifacts_dir"])
    keys = run.path("keys")
    keys.mkdir(mode=0o700)
    key = write_key(keys, f"bakehouse-build-{run.id}")
    variables = {
        **common,
        "output_dir": str(run.path("output")),
        "base_image": str(base.file("disk")),
        "base_checksum": base.checksum(),
        "kernel": str(base.file("kernel")),
        "initrd": str(base.file("initrd")),
        "ssh_private_key_file": str(key.private),
        "ssh_public_key_b64": key.public_b64,
        "console_log": f"file:{vm.escape_qemu(str(stage / 'console.log'))}",
        "accelerator": accelerator,
        "cpu_model": vm.cpu_model(accelerator),
    }
    log = stage / "packer.log"
    progress.say(f"packer: build {spec.name} {run.version} (run {run.id}; log {log})")
    try:
        timings = packer.build(
            template_path,
            variables,
            log=log,
            cwd=run.dir,
            tmp=run.tmp,
            progress=progress,
            timeout=packer_timeout,
            keep_on_error=keep_on_failure,
        )
    except PackerError as exc:
        console = stage / "console.log"
        if console.is_file() and console.stat().st_size:
            fault = vm.console_fault(console)
            exc.hint = f"{exc.hint}; the guest's console is {console}" + (
                f" (its kernel died: {fault})" if fault else ""
            )
        if keep_on_failure:
            raise kept_vm(exc, run, key.private, log) from None
        raise
    disk = run.path("output") / f"{spec.name}.qcow2"
    data = run.path("output") / f"{spec.name}.qcow2-1"  # Packer's name for the additional disk
    for made in (disk, data):
        if not made.is_file():
            raise PackerError(f"packer finished but {made.name} is missing", f"see {log}")
    # Packer leaves the disks uncompressed (its own compression is zlib, several times slower);
    # zstd gives the same size in a fraction of the time
    start = time.monotonic()
    for made, name in ((disk, "disk.qcow2"), (data, "data.qcow2")):
        proc.run(convert_argv(made, stage / name, src_format="qcow2"), check=True, timeout=1800)
        made.unlink()
    timings["compress"] = round(time.monotonic() - start, 1)
    progress.say(f"bake: disks compressed (zstd) in {timings['compress']}s")
    return timings, json.loads((stage / "manifest.json").read_text())


def build_in_chroot(
    spec: ImageSpec,
    packer_dir: Path,
    run: Run,
    base: BaseImage,
    template_path: Path,
    common: dict[str, str],
    progress: Progress,
    packer_timeout: float,
    keep_on_failure: bool,
) -> tuple[dict[str, float], dict[str, Any]]:
    """The chroot build (:mod:`bakehouse.targets.local.chroot`): the base's root filesystem
    unpacked in the run's folder, ``packer build`` running the scripts in it, the disks laid
    out from it. The tree is removed whatever happens, unless ``keep_on_failure`` and the
    build failed: then it stays to look at (the run's folder is kept). Its phase timings and
    the image's package manifest."""
    if os.geteuid() != 0:
        raise PackerError(
            "the local chroot build needs root (it unpacks and chroots into the image's files)",
            "run as root, or with sudo; or set targets.local.build: vm in the definition",
        )
    stage = Path(common["artifacts_dir"])
    rootfs = run.path(runs.BUILD_ROOTFS)
    work = run.path(runs.BUILD_LAYOUT)
    log = stage / "packer.log"
    variables = {
        **common,
        "root_dir": str(rootfs),
        "in_root": str(packer_dir / "local" / "in-root.sh"),
    }
    keep = False
    try:
        start = time.monotonic()
        chroot.prepare(base, rootfs)
        unpack = round(time.monotonic() - start, 1)
        progress.say(f"bake: root filesystem of base {base.key} unpacked in {unpack}s")
        progress.say(
            f"packer: build {spec.name} {run.version} in a chroot (run {run.id}; log {log})"
        )
        try:
            timings = packer.build(
                template_path,
                variables,
                log=log,
                cwd=run.dir,
                tmp=run.tmp,
                progress=progress,
                timeout=packer_timeout,
            )
        except PackerError as exc:
            if keep_on_failure:
                keep = True
                exc.hint = (
                    f"{exc.hint}; the image's files are kept as the failed step left them: "
                    f"sudo chroot {rootfs} /bin/sh (remove it with `invoke gc --yes`)"
                )
                exc.vm_kept = True  # type: ignore[attr-defined]  # the run keeps its folder
            raise
        chroot.finish(rootfs)
        start = time.monotonic()
        work.mkdir()
        local = spec.targets.local
        made = chroot.assemble(rootfs, stage, work, local.disk_size, local.data_disk_size)
        disks = round(time.monotonic() - start, 1)
        progress.say(f"bake: root and data disks laid out (ext4, zstd qcow2) in {disks}s")
        timings = {"unpack": unpack, **timings, "disks": disks}
    finally:
        if not keep:
            for tree in (rootfs, work):
                if tree.exists():
                    base_stage.remove_rootfs(tree)
    return timings, made.manifest


SSH_PORT_LINE = re.compile(r"Found port for communicator \(SSH, WinRM, etc\): (\d+)")


def kept_vm(failed: PackerError, run: Run, key: Path, log: Path) -> PackerError:
    """The failed build's VM, left running by Packer (``-on-error=abort``): an ssh_config to
    reach it, and how to end it; or, when it did not stay up, the failure as it was."""
    ports = SSH_PORT_LINE.findall(log.read_text(errors="replace")) if log.is_file() else []
    vms = [
        (pid, cmd)
        for pid, cmd in runs.command_lines().items()
        if "qemu-system" in cmd and str(run.dir) in cmd
    ]
    if not ports or not vms:
        return PackerError(
            failed.message,
            f"{failed.hint}; the build VM did not stay up, so there is nothing to look at",
        )
    pid = vms[0][0]
    config = vm.write_ssh_config(
        run.path("ssh_config"), "127.0.0.1", int(ports[-1]), "admin", key, "bakehouse-build"
    )
    kept = PackerError(
        f"{failed.message}\nthe build VM is kept running as it failed (qemu pid {pid})",
        f"look inside: ssh -F {config} bakehouse-build (sudo works); end it: bakehouse gc --yes "
        f"(or kill {pid}); Packer's log: {log}",
    )
    kept.vm_kept = True  # type: ignore[attr-defined]  # the run keeps its whole folder
    return kept
