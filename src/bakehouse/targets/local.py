"""The local target: a Debian 12 base built with mmdebstrap, Packer's qemu builder, a local
catalogue. The bake is one declared sequence of steps; each step is a small function."""

from __future__ import annotations

import dataclasses
import getpass
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bakehouse import debindex, plan, sbom, vm
from bakehouse import report as rpt
from bakehouse.catalogue import Catalogue, Record, now_iso
from bakehouse.errors import BakehouseError
from bakehouse.progress import Progress
from bakehouse.project import Project
from bakehouse.runs import Run, image_lock, run_dir, terminate_as_exception
from bakehouse.spec import ImageSpec
from bakehouse.stages import bake as bake_stage
from bakehouse.stages import base as base_stage
from bakehouse.stages import hostpatch
from bakehouse.stages import verify as verify_stage


class VerifyFailed(BakehouseError):
    """The image was baked but did not pass verification; it is recorded as failed."""


@dataclass
class BakeOptions:
    publish: bool = True
    channels: tuple[str, ...] | None = None  # default: the definition's publish.channels
    rebuild_base: bool = False
    keep_run: bool = False
    include_updates: bool | None = None  # override base.local.include_updates (benchmarks)
    initramfs: str | None = None  # override base.local.initramfs (benchmarks)
    host_patch: bool = True  # apply pending updates to the base on the host first
    host_indexes: bool = True  # check the patch level against host-fetched indexes


@dataclass
class Context:
    """What the steps of one bake share."""

    project: Project
    spec: ImageSpec
    options: BakeOptions
    catalogue: Catalogue
    run: Run
    progress: Progress
    base: base_stage.BaseImage | None = None
    parent_base: base_stage.BaseImage | None = None  # before host patching
    accelerator: dict[str, Any] = field(default_factory=dict)
    indexes: debindex.Indexes | None = None
    baked: bake_stage.Baked | None = None
    verified: verify_stage.Verified | None = None
    record: Record | None = None


def step_base(ctx: Context) -> None:
    local = ctx.spec.base.local
    if ctx.options.include_updates is not None:
        local = dataclasses.replace(local, include_updates=ctx.options.include_updates)
    if ctx.options.initramfs is not None:
        local = dataclasses.replace(local, initramfs=ctx.options.initramfs)
    ctx.base = ctx.parent_base = base_stage.ensure(
        local,
        ctx.project.packer_dir,
        ctx.catalogue,
        ctx.run,
        ctx.progress,
        rebuild=ctx.options.rebuild_base,
    )


def step_accelerator(ctx: Context) -> None:
    assert ctx.base is not None
    probe_accelerator(ctx, ctx.base.file("kernel"), ctx.base.file("initrd"))


def probe_accelerator(ctx: Context, kernel: Path, initrd: Path) -> None:
    """KVM or TCG, probed by booting ``kernel`` (cached per host boot)."""
    ctx.accelerator = vm.choose_accelerator(
        ctx.spec.targets.local.accelerator,
        kernel,
        initrd,
        ctx.run.path("probe"),
        ctx.project.state_dir / "cache" / "accelerator.json",
        ctx.progress,
    )


def step_indexes(ctx: Context) -> None:
    local = ctx.spec.base.local
    with ctx.progress.phase("indexes", f"package indexes for {local.suite} from {local.mirror}"):
        cache = debindex.IndexCache(ctx.project.state_dir / "cache" / "indexes")
        ctx.indexes = cache.load(
            debindex.suites_for(local.mirror, local.security_mirror, local.suite, local.components)
        )
        for note in ctx.indexes.notes:
            ctx.progress.say(f"indexes: {note}")


def step_host_patch(ctx: Context) -> None:
    if not ctx.options.host_patch:
        return
    assert ctx.base is not None and ctx.indexes is not None
    ctx.base = hostpatch.ensure(
        ctx.base,
        ctx.project.scripts_dir,
        ctx.spec.patch.policy,
        ctx.indexes,
        ctx.catalogue,
        ctx.run,
        ctx.progress,
    )


def step_bake(ctx: Context) -> None:
    assert ctx.base is not None
    with ctx.progress.phase("bake", "packer build (qemu)"):
        ctx.baked = bake_stage.bake_local(
            ctx.spec,
            ctx.project.root,
            ctx.project.packer_dir,
            ctx.project.scripts_dir,
            ctx.run,
            ctx.base,
            str(ctx.accelerator["accelerator"]),
            ctx.progress,
            base_key=ctx.parent_base.key if ctx.parent_base else None,
        )
    for phase, seconds in ctx.baked.timings.items():
        ctx.progress.record(f"packer:{phase}", seconds)


def step_sbom(ctx: Context) -> None:
    assert ctx.baked is not None
    path = sbom.write(
        ctx.baked.manifest, ctx.spec.name, ctx.baked.version, ctx.baked.stage / "sbom.cdx.json"
    )
    from bakehouse.files import describe

    ctx.baked.artifacts["sbom"] = describe(path)


def step_verify(ctx: Context) -> None:
    assert ctx.baked is not None
    stage = ctx.baked.stage
    local = ctx.spec.targets.local
    with ctx.progress.phase("verify", "boot the image (snapshot) and run tests/hardening"):
        ctx.verified = verify_stage.verify_local(
            ctx.spec,
            ctx.project.root,
            ctx.run,
            stage / "disk.qcow2",
            stage / "vmlinuz",
            stage / "initrd.img",
            str(ctx.accelerator["accelerator"]),
            ctx.progress,
            ctx.indexes,
            memory_mib=local.memory,
            cpus=local.cpus,
            boot_timeout=local.ssh_timeout,
        )
    ctx.progress.record("verify:boot-to-ssh", ctx.verified.boot_seconds)
    ctx.progress.record("verify:suite", ctx.verified.suite_seconds)
    evidence = stage / "verify"
    evidence.mkdir()
    for src in (
        ctx.verified.junit,
        ctx.verified.log,
        ctx.run.path("verify", "console.log"),
        ctx.run.path("verify", "context.json"),
    ):
        if src.is_file():
            shutil.copy2(src, evidence / src.name)


def step_record(ctx: Context) -> None:
    """Assemble the record and report, and move the whole entry into the catalogue at once."""
    assert ctx.baked is not None and ctx.verified is not None and ctx.base is not None
    baked, verified = ctx.baked, ctx.verified
    state = "verified" if verified.ok else "failed"
    record: Record = {
        "kind": "image",
        "id": f"{ctx.spec.name}-{baked.version}",
        "name": ctx.spec.name,
        "version": baked.version,
        "target": "local",
        "created": now_iso(),
        "run_id": ctx.run.id,
        "by": getpass.getuser(),
        "state": state,
        "history": [
            {"state": "baked", "at": now_iso(), "note": f"run {ctx.run.id}"},
            {
                "state": state,
                "at": now_iso(),
                "note": ", ".join(verified.failed_ids()) or "every control passed",
            },
        ],
        "base": {
            "id": ctx.base.record["id"],
            "key": ctx.base.key,
            "sha256": ctx.base.record["artifacts"]["disk"]["sha256"],
            "kernel": ctx.base.record["kernel"],
            "parent": ctx.base.record.get("parent"),
        },
        "fingerprint": baked.fingerprint,
        "git_commit": baked.git_commit,
        "kernel": baked.manifest.get("kernel"),
        "packages": len(baked.manifest["packages"]),
        "artifacts": baked.artifacts,
        "accelerator": ctx.accelerator,
        "verify": {"ok": verified.ok, "summary": verified.summary, "failed": verified.failed_ids()},
        "channels": [],
    }
    report = {
        "image": ctx.spec.name,
        "version": baked.version,
        "state": state,
        "target": "local",
        "run_id": ctx.run.id,
        "git_commit": baked.git_commit,
        "fingerprint": baked.fingerprint,
        "base": record["base"] | {"id": ctx.base.record["id"]},
        "kernel": record["kernel"],
        "packages": record["packages"],
        "accelerator": ctx.accelerator,
        "timings": {k: round(v, 1) for k, v in ctx.progress.timings.items()},
        "verify": {"summary": verified.summary, "controls": verified.controls},
        "definition": ctx.spec.to_dict(),
        "diff": image_diff(ctx, baked.manifest),
        "elapsed": round(ctx.progress.elapsed(), 1),
    }
    rpt.write(report, baked.stage)
    dest = ctx.catalogue.add(record, baked.stage)
    ctx.record = record
    ctx.progress.say(f"catalogue: {record['id']} recorded as {state} ({dest})")


def image_diff(ctx: Context, manifest: dict[str, Any]) -> dict[str, Any]:
    """Packages added, removed, upgraded against the previous image of the same name."""
    import json

    previous = ctx.catalogue.latest(ctx.spec.name)
    if previous is None:
        return {"against": None, "changes": []}
    old_path = ctx.catalogue.image_dir(ctx.spec.name, previous["version"]) / "manifest.json"
    if not old_path.is_file():
        return {"against": previous["version"], "changes": []}
    changes = plan.diff(
        debindex.installed_from_manifest(json.loads(old_path.read_text())),
        debindex.installed_from_manifest(manifest),
        ctx.indexes.security_versions() if ctx.indexes else {},
    )
    return {
        "against": previous["version"],
        "changes": [
            {"name": c.name, "change": c.kind, "from": c.old, "to": c.new, "security": c.security}
            for c in changes
        ],
    }


def step_publish(ctx: Context) -> None:
    assert ctx.record is not None and ctx.verified is not None
    if not ctx.verified.ok:
        failed = ctx.verified.failed_ids()
        shown = ", ".join(failed[:15]) + (" …" if len(failed) > 15 else "")
        raise VerifyFailed(
            f"{ctx.record['id']} failed verification: {len(failed)} control(s) failed: {shown}",
            f"not published; the report is in the catalogue: "
            f"{ctx.catalogue.image_dir(ctx.spec.name, ctx.record['version']) / 'report.md'}",
        )
    if not ctx.options.publish:
        return
    channels = list(ctx.options.channels or ctx.spec.publish.channels)
    ctx.record = ctx.catalogue.point(
        ctx.spec.name, ctx.record["version"], channels, by=getpass.getuser()
    )
    ctx.progress.say(f"publish: {ctx.record['id']} → {', '.join(channels)}")


Step = Callable[[Context], None]
# The local bake, in order. `deploy` (later) is this plus roll.
BAKE_SEQUENCE: tuple[tuple[str, Step], ...] = (
    ("base", step_base),
    ("accelerator", step_accelerator),
    ("indexes", step_indexes),
    ("host-patch", step_host_patch),
    ("bake", step_bake),
    ("sbom", step_sbom),
    ("verify", step_verify),
    ("record", step_record),
    ("publish", step_publish),
)


def bake(
    project: Project, spec: ImageSpec, options: BakeOptions, progress: Progress | None = None
) -> Record:
    progress = progress or Progress()
    catalogue = Catalogue(project.state_dir / "catalogue")
    with (
        terminate_as_exception(),
        image_lock(project.state_dir, spec.name),
        run_dir(project.state_dir, spec.name, "bake", keep=options.keep_run) as run,
    ):
        ctx = Context(project, spec, options, catalogue, run, progress)
        progress.say(f"bake: {spec.name} on the local target (run {run.id})")
        for _name, step in BAKE_SEQUENCE:
            step(ctx)
        assert ctx.record is not None
        progress.say(f"bake: {ctx.record['id']} {ctx.record['state']} in {progress.elapsed():.1f}s")
        return ctx.record


def verify_only(
    project: Project,
    spec: ImageSpec,
    version: str | None,
    use_base: bool,
    progress: Progress | None = None,
    connection: Callable[[Path], verify_stage.Connection] = verify_stage.over_ssh,
) -> verify_stage.Verified:
    """Verify an image already in the catalogue (or the image's base) without changing it."""
    progress = progress or Progress()
    catalogue = Catalogue(project.state_dir / "catalogue")
    with terminate_as_exception(), run_dir(project.state_dir, spec.name, "verify") as run:
        ctx = Context(project, spec, BakeOptions(), catalogue, run, progress)
        if use_base:
            step_base(ctx)
            assert ctx.base is not None
            disk, kernel, initrd = (
                ctx.base.file("disk"),
                ctx.base.file("kernel"),
                ctx.base.file("initrd"),
            )
            label = ctx.base.record["id"]
        else:
            record = catalogue.image(spec.name, version) if version else catalogue.latest(spec.name)
            if record is None:
                raise BakehouseError(
                    f"no baked version of {spec.name}",
                    f"bake one: invoke bake --image {spec.name}",
                    exit_code=2,
                )
            folder = catalogue.image_dir(spec.name, record["version"])
            disk, kernel, initrd = (
                folder / "disk.qcow2",
                folder / "vmlinuz",
                folder / "initrd.img",
            )
            label = record["id"]
        probe_accelerator(ctx, kernel, initrd)
        step_indexes(ctx)
        local = spec.targets.local
        with progress.phase("verify", f"{label} (snapshot boot, tests/hardening)"):
            result = verify_stage.verify_local(
                spec,
                project.root,
                run,
                disk,
                kernel,
                initrd,
                str(ctx.accelerator["accelerator"]),
                progress,
                ctx.indexes,
                memory_mib=local.memory,
                cpus=local.cpus,
                boot_timeout=local.ssh_timeout,
                connection=connection,
            )
        return result
