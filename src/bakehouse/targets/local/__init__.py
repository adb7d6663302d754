"""The local target: a Debian or Ubuntu base built with mmdebstrap, Packer, and a catalogue on
this machine. Its bake is one declared sequence of small steps sharing a context:

    base → accelerator → indexes → host-patch → packer

Packer builds in one of two ways (``targets.local.build``): ``chroot`` (the default) runs the
scripts in a chroot of the base's root filesystem at native speed and lays the disks out on
the host (:mod:`.chroot`; patch.sh patches there, so host-patch has nothing to do); ``vm`` boots
the base in Packer's qemu builder and runs them in it, with the pending updates applied on the
host first (:mod:`.hostpatch`). Either way, verification boots the compressed disks in snapshot
mode with an ephemeral key and runs tests/hardening over SSH.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from bakehouse import catalogue as cat
from bakehouse import debindex, vm
from bakehouse.catalogue import USABLE, Catalogue, Record, now_iso
from bakehouse.errors import UsageError
from bakehouse.progress import Progress
from bakehouse.runs import Run
from bakehouse.spec import ImageSpec
from bakehouse.sshkeys import KeyPair, write_key
from bakehouse.suite import Connection, Verified, context, over_ssh, run_suite, write_candidates
from bakehouse.targets.base import (
    Baked,
    BakeRequest,
    Inputs,
    Leftover,
    PruneItem,
    Target,
)
from bakehouse.targets.local import base as base_stage
from bakehouse.targets.local import build as build_stage
from bakehouse.targets.local import hostpatch

BUILDS = ("chroot", "vm")


@dataclass
class Context:
    """What the steps of one local bake share (and verify reuses)."""

    spec: ImageSpec
    request: BakeRequest
    run: Run
    progress: Progress
    base: base_stage.BaseImage | None = None
    parent_base: base_stage.BaseImage | None = None  # before host patching
    accelerator: dict[str, Any] = field(default_factory=dict)
    indexes: debindex.Indexes | None = None
    built: build_stage.Built | None = None


Step = Callable[["LocalTarget", Context], None]


class LocalTarget(Target):
    name = "local"
    summary = "qemu on this machine (mmdebstrap base, Packer's qemu builder)"
    # boots a suite connection can be swapped for (tests play other transports over SSH)
    connection: ClassVar[Callable[[Path], Connection]] = staticmethod(over_ssh)

    def open_catalogue(self) -> Catalogue:
        return cat.local(self.project.state_dir)

    def check(self, spec: ImageSpec, request: BakeRequest) -> None:
        if spec.base.arch != "amd64":  # qemu would emulate another architecture: far too slow
            raise UsageError(
                f"the local target bakes amd64 images; {spec.name} is {spec.base.arch}",
                "bake it with --target aws (Graviton), or set base.arch: amd64",
            )

    def where(self, record: Record) -> list[str]:
        return [str(self.catalogue.image_dir(record["name"], record["version"]))]

    def base(self, spec: ImageSpec, rebuild: bool, run: Run, progress: Progress) -> str:
        ctx = Context(spec, BakeRequest(rebuild_base=rebuild), run, progress)
        self.step_base(ctx)
        assert ctx.base is not None
        record = ctx.base.record
        return (
            f"{record['id']}: {record['packages']} packages, kernel {record['kernel']}, "
            f"{ctx.base.dir}"
        )

    # ---- the bake sequence --------------------------------------------------------------------
    def step_base(self, ctx: Context) -> None:
        local = ctx.spec.base.local
        tuning = ctx.request.tuning
        if "include_updates" in tuning:
            local = dataclasses.replace(local, include_updates=bool(tuning["include_updates"]))
        if "initramfs" in tuning:
            local = dataclasses.replace(local, initramfs=str(tuning["initramfs"]))
        ctx.base = ctx.parent_base = base_stage.ensure(
            local,
            self.project.packer_dir,
            self.catalogue,
            ctx.run,
            ctx.progress,
            rebuild=ctx.request.rebuild_base,
        )

    def step_accelerator(self, ctx: Context) -> None:
        assert ctx.base is not None
        self.probe(ctx, ctx.base.file("kernel"), ctx.base.file("initrd"))

    def probe(self, ctx: Context, kernel: Path, initrd: Path) -> None:
        """KVM or TCG, probed by booting ``kernel`` (cached per host boot)."""
        ctx.accelerator = vm.choose_accelerator(
            ctx.spec.targets.local.accelerator,
            kernel,
            initrd,
            ctx.run.path("probe"),
            self.project.state_dir / "cache" / "accelerator.json",
            ctx.progress,
        )

    def step_indexes(self, ctx: Context) -> None:
        local = ctx.spec.base.local
        with ctx.progress.phase(
            "indexes", f"package indexes for {local.release.title} from {local.mirror_for()}"
        ):
            cache = debindex.state_cache(self.project.state_dir)
            ctx.indexes = cache.load(local.index_suites())
            for note in ctx.indexes.notes:
                ctx.progress.say(f"indexes: {note}")

    def step_host_patch(self, ctx: Context) -> None:
        if not ctx.request.tuning.get("host_patch", True):
            return
        if ctx.spec.targets.local.build == "chroot":  # patch.sh runs natively in the build
            return
        assert ctx.base is not None and ctx.indexes is not None
        ctx.base = hostpatch.ensure(
            ctx.base,
            self.project.scripts_dir,
            ctx.spec.patch.policy,
            ctx.indexes,
            self.catalogue,
            ctx.run,
            ctx.progress,
        )

    def step_packer(self, ctx: Context) -> None:
        assert ctx.base is not None
        how = {"chroot": "in a chroot of the image's files", "vm": "qemu"}
        with ctx.progress.phase("bake", f"packer build ({how[ctx.spec.targets.local.build]})"):
            ctx.built = build_stage.build(
                ctx.spec,
                self.project.root,
                self.project.packer_dir,
                self.project.scripts_dir,
                ctx.run,
                ctx.base,
                str(ctx.accelerator["accelerator"]),
                ctx.progress,
                base_key=ctx.parent_base.key if ctx.parent_base else None,
                keep_on_failure=ctx.request.keep_on_failure,
            )
        for phase, seconds in ctx.built.timings.items():
            ctx.progress.record(f"packer:{phase}", seconds)

    SEQUENCE: ClassVar[tuple[tuple[str, Step], ...]] = (
        ("base", step_base),
        ("accelerator", step_accelerator),
        ("indexes", step_indexes),
        ("host-patch", step_host_patch),
        ("packer", step_packer),
    )

    def bake(self, spec: ImageSpec, request: BakeRequest, run: Run, progress: Progress) -> Baked:
        if "build" in request.tuning:  # benchmarks compare the two builds of one definition
            if request.tuning["build"] not in BUILDS:
                raise UsageError(f"build {request.tuning['build']!r}: not one of {BUILDS}")
            local = dataclasses.replace(spec.targets.local, build=str(request.tuning["build"]))
            spec = dataclasses.replace(spec, targets=dataclasses.replace(spec.targets, local=local))
        ctx = Context(spec, request, run, progress)
        for _name, step in self.SEQUENCE:
            step(self, ctx)
        assert ctx.built is not None and ctx.base is not None
        built, base = ctx.built, ctx.base
        return Baked(
            version=built.version,
            stage=built.stage,
            fingerprint=built.fingerprint,
            git_commit=built.git_commit,
            base={
                "id": base.record["id"],
                "key": base.key,
                "sha256": base.record["artifacts"]["disk"]["sha256"],
                "kernel": base.record["kernel"],
                "parent": base.record.get("parent"),
            },
            manifest=built.manifest,
            artifacts=built.artifacts,
            timings=built.timings,
            fields={"accelerator": ctx.accelerator},
            context=ctx,
        )

    def verify(self, spec: ImageSpec, baked: Baked, run: Run, progress: Progress) -> Verified:
        ctx: Context = baked.context
        stage = baked.stage
        indexes = ctx.indexes if ctx.request.tuning.get("host_indexes", True) else None
        with progress.phase("verify", "boot the image (snapshot) and run tests/hardening"):
            return self.boot_and_check(
                spec,
                run,
                stage / "disk.qcow2",
                stage / "vmlinuz",
                stage / "initrd.img",
                ctx,
                indexes,
                data=stage / "data.qcow2",
            )

    @contextlib.contextmanager
    def snapshot_vm(
        self,
        ctx: Context,
        run: Run,
        name: str,
        disk: Path,
        kernel: Path,
        initrd: Path,
        data: Path | None,
    ) -> Iterator[tuple[Path, KeyPair, vm.Booted]]:
        """Boot ``disk`` (and a baked image's ``data`` disk) in snapshot mode, so the image is
        never written, with a key made for this boot; its folder, the key and the booted VM,
        which stops when the block ends."""
        local = ctx.spec.targets.local
        folder = run.path(name)
        folder.mkdir()
        keys = folder / "keys"
        keys.mkdir(mode=0o700)
        key = write_key(keys, f"bakehouse-{name}-{run.id}")
        cfg = vm.VmConfig(
            name=f"bakehouse-{name}-{run.id}",
            disk=disk,
            kernel=kernel,
            initrd=initrd,
            append=f"{vm.KERNEL_ARGS} bakehouse.ssh_key={key.public_b64}",
            serial_log=folder / "console.log",
            accelerator=str(ctx.accelerator["accelerator"]),
            memory_mib=local.memory,
            cpus=local.cpus,
            snapshot=True,
            data_disk=data,
        )
        with vm.boot(
            cfg, key.private, "admin", local.ssh_timeout, ctx.progress, folder / "qemu.log"
        ) as booted:
            yield folder, key, booted

    def boot_and_check(
        self,
        spec: ImageSpec | None,
        run: Run,
        disk: Path,
        kernel: Path,
        initrd: Path,
        ctx: Context,
        indexes: debindex.Indexes | None,
        name: str = "verify",
        data: Path | None = None,
    ) -> Verified:
        """Boot ``disk`` (and the ``data`` disk a baked image has) in snapshot mode and run the
        suite over SSH; the VM always stops."""
        with self.snapshot_vm(ctx, run, name, disk, kernel, initrd, data) as (folder, key, booted):
            candidates = write_candidates(indexes, folder / "candidates.json") if indexes else None
            context_file = folder / "context.json"
            context_file.write_text(json.dumps(context(spec, key.public, candidates), indent=2))
            ssh_config = booted.ssh_config(folder / "ssh_config")
            verified = run_suite(
                self.project.root,
                folder,
                type(self).connection(ssh_config),
                context_file,
                ctx.progress,
                booted.boot_seconds,
            )
        verified.evidence += [folder / "console.log", context_file]
        ctx.progress.record(f"{name}:boot-to-ssh", verified.boot_seconds)
        ctx.progress.record(f"{name}:suite", verified.suite_seconds)
        return verified

    def record(self, spec: ImageSpec, record: Record, baked: Baked, progress: Progress) -> Record:
        dest = self.catalogue.add(record, baked.stage)
        progress.say(f"catalogue: {record['id']} recorded as {record['state']} ({dest})")
        return record

    def disks(self, record: Record) -> tuple[Path, Path | None]:
        """A recorded image's root disk, and its data disk (images baked before it had one
        have none)."""
        folder = self.catalogue.image_dir(record["name"], record["version"])
        data = folder / "data.qcow2" if "data" in record.get("artifacts", {}) else None
        return folder / "disk.qcow2", data

    def deliverable(self, record: Record) -> bool:
        return all(d.is_file() for d in self.disks(record) if d is not None)

    def verify_recorded(
        self, spec: ImageSpec, record: Record | None, run: Run, progress: Progress
    ) -> Verified:
        ctx = Context(spec, BakeRequest(), run, progress)
        disk, kernel, initrd, data = self.boot_files(ctx, spec, record)  # a base has one disk
        label = record["id"] if record else ctx.base.record["id"]  # type: ignore[union-attr]
        self.probe(ctx, kernel, initrd)
        self.step_indexes(ctx)
        with progress.phase("verify", f"{label} (snapshot boot, tests/hardening)"):
            return self.boot_and_check(spec, run, disk, kernel, initrd, ctx, ctx.indexes, data=data)

    def shell(
        self,
        spec: ImageSpec,
        record: Record | None,
        run: Run,
        progress: Progress,
        command: str | None,
    ) -> int:
        """A snapshot boot (the image's disks are never written) with a key made for this
        session, and ssh into it; the VM stops when ssh returns, whatever happened."""
        ctx = Context(spec, BakeRequest(), run, progress)
        disk, kernel, initrd, data = self.boot_files(ctx, spec, record)
        self.probe(ctx, kernel, initrd)
        with self.snapshot_vm(ctx, run, "shell", disk, kernel, initrd, data) as (folder, _, b):
            ssh_config = b.ssh_config(folder / "ssh_config")
            progress.say("shell: the VM stops when this session ends (exit, or Ctrl-D)")
            argv = ["ssh", "-F", str(ssh_config)]
            argv += ["-T", "bakehouse-vm", "--", command] if command else ["-t", "bakehouse-vm"]
            # the terminal is the user's: ssh gets it whole (no capture, no timeout)
            return subprocess.call(argv)

    def boot_files(
        self, ctx: Context, spec: ImageSpec, record: Record | None
    ) -> tuple[Path, Path, Path, Path | None]:
        """Root disk, kernel, initrd and data disk of a recorded image, or of its base."""
        if record is None:
            self.step_base(ctx)
            assert ctx.base is not None
            base = ctx.base
            return base.file("disk"), base.file("kernel"), base.file("initrd"), None
        folder = self.catalogue.image_dir(spec.name, record["version"])
        disk, data = self.disks(record)
        return disk, folder / "vmlinuz", folder / "initrd.img", data

    # ---- nightly ------------------------------------------------------------------------------
    def inputs(self, spec: ImageSpec) -> Inputs:
        from bakehouse import packer
        from bakehouse import render as rnd
        from bakehouse.inputs import fingerprint, suite_hash

        template = rnd.render(spec, "local", self.project.packer_dir, packer.version())
        _, base_key = base_stage.current(spec.base.local, self.project.packer_dir, self.catalogue)
        fp = fingerprint(
            spec, template, self.project.scripts_dir, base_key, suite_hash(self.project.root)
        )
        return Inputs(fp, base_key)

    def revoke_base(
        self, spec: ImageSpec, record: Record, reason: str, by: str, dry_run: bool = False
    ) -> str:
        """Mark the base ``record`` was baked from revoked: it is built anew for the next bake,
        and nightly rebakes every image baked from it."""
        base = record.get("base", {})
        key = str((base.get("parent") or base).get("key", ""))
        if not key or self.catalogue.base(key) is None:
            raise UsageError(f"{record['id']} names no local base in the catalogue ({key})")

        def mark(found: Record) -> None:
            if found.get("revoked"):
                raise UsageError(f"base {key} is revoked already ({found['revoked']['reason']})")
            found["revoked"] = {"at": now_iso(), "by": by, "reason": reason}

        if dry_run:
            mark(dict(self.catalogue.base(key) or {}))  # the same refusals, nothing written
        else:
            self.catalogue.update_base(key, mark)
        return f"base-{key}"

    def base_revoked(self, record: Record) -> str | None:
        for base in (record.get("base", {}).get("parent"), record.get("base")):
            if not base or not base.get("key"):
                continue
            found = self.catalogue.base(base["key"])
            if found is not None and found.get("revoked"):
                return f"base {base['key']} revoked: {found['revoked'].get('reason', '')}"
        return None

    # ---- housekeeping -------------------------------------------------------------------------
    def prune_plan(self, spec: ImageSpec, now: dt.datetime) -> list[PruneItem]:
        """Keep the newest ``keep`` usable versions, every version a channel points at and
        every version younger than ``min_age_days``; the rest goes (disk space)."""
        pointed = {c["current"] for c in self.channels(spec).values() if c.get("current")}
        items = []
        kept = 0
        for record in reversed(self.catalogue.images(spec.name)):
            created = dt.datetime.fromisoformat(str(record["created"]))
            age = now - created
            version = record["version"]
            if version in pointed:
                action, why = "keep", "a channel points at it"
            elif record["state"] in USABLE and kept < spec.retention.keep:
                kept += 1
                action, why = "keep", f"among the {spec.retention.keep} newest verified"
            elif age < dt.timedelta(days=spec.retention.min_age_days):
                action, why = "keep", f"younger than {spec.retention.min_age_days} days"
            else:
                action = "delete"
                why = "older than retention" if record["state"] in USABLE else record["state"]
            items.append(
                PruneItem(
                    "local", version, version, record["state"], created, action, why, spec.name
                )
            )
        return items

    def prune(self, items: list[PruneItem]) -> list[str]:
        done = []
        for item in items:
            if item.action == "delete":
                shutil.rmtree(self.catalogue.image_dir(str(item.detail), item.version))
                done.append(item.version)
        return done

    def leftovers(self, specs: list[ImageSpec], older_than: dt.timedelta) -> list[Leftover]:
        """Nothing beyond the dead runs' folders and processes, which gc finds for every
        target."""
        return []

    def collect(self, leftovers: list[Leftover]) -> None:
        return None
