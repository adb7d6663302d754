"""Bake: render the template, run `packer build`, collect the artifact, manifest and SBOM.

Everything is built inside the run's private folder; nothing reaches the catalogue here.
Packer runs in its own process group through proc.stream: on Ctrl-C or SIGTERM it is asked
to stop first (it then halts its VM and removes its output), and killed if it does not.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bakehouse import packer, proc
from bakehouse import render as rnd
from bakehouse.errors import BakehouseError
from bakehouse.files import describe
from bakehouse.progress import Progress
from bakehouse.runs import Run
from bakehouse.spec import ImageSpec
from bakehouse.sshkeys import write_key
from bakehouse.stages.base import BaseImage, convert_argv


class BakeError(BakehouseError):
    pass


# Packer's own progress lines, in the order they appear, and the phase each one starts.
PACKER_PHASES: tuple[tuple[str, str], ...] = (
    ("Starting VM", "boot"),
    ("Connected to SSH!", "provision"),
    ("Gracefully halting virtual machine", "shutdown"),
    ("Converting hard drive", "convert"),
    ("Running post-processor", "post-process"),
)
SCRIPT_LINE = re.compile(r"Provisioning with shell script: .*/([^/\s]+)$")


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

    def __call__(self, line: str) -> None:
        for marker, phase in PACKER_PHASES:
            if marker in line:
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


def git_commit(root: Path) -> str:
    try:
        head = proc.run(["git", "-C", str(root), "rev-parse", "HEAD"], timeout=10)
        dirty = proc.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], timeout=10
        )
    except BakehouseError:
        return "unknown"
    if not head.ok:
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def fingerprint(
    spec: ImageSpec, template: str, scripts_dir: Path, base_id: str, suite: str = ""
) -> str:
    """A content key of every input of a bake: the resolved definition, the rendered template,
    the base image (before patching: patches are tracked as pending updates), every script and
    the hardening suite. Patch-aware rebuilds compare it with the newest image's."""
    digest = hashlib.sha256()
    digest.update(json.dumps(spec.to_dict() | {"files": None}, sort_keys=True).encode())
    digest.update(template.encode())
    digest.update(base_id.encode())
    digest.update(suite.encode())
    for script in sorted(scripts_dir.glob("*.sh")):
        digest.update(script.name.encode() + b"\0" + script.read_bytes())
    return digest.hexdigest()


@dataclass
class Baked:
    stage: Path
    version: str
    fingerprint: str
    git_commit: str
    timings: dict[str, float]
    manifest: dict[str, Any]
    artifacts: dict[str, dict[str, Any]]


def version_of(run: Run) -> str:
    return run.started.strftime("%Y%m%d.%H%M%S")


def bake_local(
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
) -> Baked:
    """``base_key``: the base before host patching, which the fingerprint names."""
    from bakehouse.nightly import suite_hash

    version = packer.version()
    template = rnd.render(spec, "local", packer_dir, version)
    template_path = run.path("build.pkr.hcl")
    template_path.write_text(template)
    stage = run.path("stage")
    stage.mkdir()
    keys = run.path("keys")
    keys.mkdir(mode=0o700)
    key = write_key(keys, f"bakehouse-build-{run.id}")
    fp = fingerprint(spec, template, scripts_dir, base_key or base.key, suite_hash(root))
    commit = git_commit(root)
    image_version = version_of(run)
    variables = {
        "run_id": run.id,
        "version": image_version,
        "artifacts_dir": str(stage),
        "scripts_dir": str(scripts_dir),
        "git_commit": commit,
        "fingerprint": fp,
        "output_dir": str(run.path("output")),
        "base_image": str(base.file("disk")),
        "base_checksum": base.checksum(),
        "kernel": str(base.file("kernel")),
        "initrd": str(base.file("initrd")),
        "ssh_private_key_file": str(key.private),
        "ssh_public_key_b64": key.public_b64,
        "accelerator": accelerator,
        "cpu_model": "host" if accelerator == "kvm" else "max",
    }
    env = {
        "CHECKPOINT_DISABLE": "1",
        "PACKER_CACHE_DIR": str(run.path("packer_cache")),
        "TMPDIR": str(run.tmp),
        **packer.debug_env(stage),
    }
    watch = PackerWatch(progress)
    log = stage / "packer.log"
    progress.say(f"packer: build {spec.name} {image_version} (run {run.id}; log {log})")
    packer_start = time.monotonic()
    code = proc.stream(
        packer.build_argv(template_path, variables),
        log=log,
        on_line=watch,
        cwd=run.dir,
        env=env,
        timeout=packer_timeout,
    )
    timings = watch.finish()
    timings["total"] = round(time.monotonic() - packer_start, 1)
    if code != 0:
        detail = " | ".join(watch.errors[-3:]) or f"exit {code}"
        raise BakeError(f"packer build failed: {detail}", f"the full log is {log}")
    disk = run.path("output") / f"{spec.name}.qcow2"
    if not disk.is_file():
        raise BakeError(f"packer finished but {disk.name} is missing", f"see {log}")
    # Packer leaves the disk uncompressed (its own compression is zlib, several times slower);
    # zstd gives the same size in a fraction of the time
    start = time.monotonic()
    proc.run(convert_argv(disk, stage / "disk.qcow2", src_format="qcow2"), check=True, timeout=1800)
    disk.unlink()
    timings["compress"] = round(time.monotonic() - start, 1)
    progress.say(f"bake: disk compressed (zstd) in {timings['compress']}s")
    manifest = json.loads((stage / "manifest.json").read_text())
    artifacts = {
        "disk": describe(stage / "disk.qcow2"),
        "kernel": describe(stage / "vmlinuz"),
        "initrd": describe(stage / "initrd.img"),
        "manifest": describe(stage / "manifest.json"),
    }
    return Baked(stage, image_version, fp, commit, timings, manifest, artifacts)
