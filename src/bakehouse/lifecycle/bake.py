"""Bake, on any target: one declared sequence of steps sharing a context.

    bake → verify → record → publish

The target builds and verifies; this module decides the state (a verification that does not
finish is a failed one), keeps the evidence, writes the SBOM and the report, records the entry
whole, and publishes only a verified image. Ctrl-C or SIGTERM at any point stops what the
target started; once the artifact exists, it is recorded (as failed) before the error goes on.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bakehouse import debindex, plan, reports, sbom
from bakehouse.catalogue import Record, now_iso
from bakehouse.errors import BakehouseError, VerifyFailed
from bakehouse.files import describe
from bakehouse.lifecycle import who
from bakehouse.lifecycle.channels import check_channels
from bakehouse.progress import Progress, estimates_from
from bakehouse.project import Project
from bakehouse.runs import Run, image_lock, run_dir, terminate_as_exception
from bakehouse.spec import ImageSpec
from bakehouse.suite import Verified, summary_of
from bakehouse.targets.base import Baked, BakeRequest, Target


@dataclass
class BakeResult:
    record: Record
    target: str
    where: list[str]
    channels: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.record["state"] in ("verified", "published", "baked")

    def to_dict(self) -> dict[str, Any]:
        r = self.record
        return {
            "id": r["id"],
            "image": r["name"],
            "version": r["version"],
            "run_id": r.get("run_id"),
            "target": self.target,
            "state": r["state"],
            "where": self.where,
            "channels": self.channels,
            "verify": r.get("verify", {}),
        }


@dataclass
class Context:
    project: Project
    spec: ImageSpec
    target: Target
    request: BakeRequest
    run: Run
    progress: Progress
    baked: Baked | None = None
    verified: Verified | None = None
    error: BaseException | None = None
    record: Record | None = None
    channels: list[str] = field(default_factory=list)


def step_bake(ctx: Context) -> None:
    ctx.baked = ctx.target.bake(ctx.spec, ctx.request, ctx.run, ctx.progress)


def step_verify(ctx: Context) -> None:
    assert ctx.baked is not None
    if not ctx.request.verify:
        ctx.progress.say("verify: skipped (--no-verify): the image stays unverified, unpublished")
        return
    try:
        ctx.verified = ctx.target.verify(ctx.spec, ctx.baked, ctx.run, ctx.progress)
    except BaseException as exc:  # recorded as failed by step_record, then raised again
        ctx.error = exc


def state_of(ctx: Context) -> str:
    if not ctx.request.verify:
        return "baked"
    return (
        "verified" if ctx.verified is not None and ctx.verified.ok and not ctx.error else "failed"
    )


def step_record(ctx: Context) -> None:
    """Keep the evidence, SBOM and report with the entry, and record it whole."""
    assert ctx.baked is not None
    baked, spec = ctx.baked, ctx.spec
    state = state_of(ctx)
    keep_evidence(ctx.verified, baked)
    if baked.manifest is not None:
        rel = spec.base.local.release
        path = sbom.write(
            baked.manifest,
            spec.name,
            baked.version,
            baked.stage / "sbom.cdx.json",
            rel.family,
            rel.distro.sbom_id(rel),
        )
        baked.artifacts["sbom"] = describe(path)
    note = ", ".join(ctx.verified.failed_ids()) if ctx.verified else ""
    if ctx.error is not None:
        note = f"verification did not finish: {str(ctx.error) or type(ctx.error).__name__}"
    record: Record = {
        "kind": "image",
        "id": f"{spec.name}-{baked.version}",
        "name": spec.name,
        "version": baked.version,
        "target": ctx.target.name,
        "created": now_iso(),
        "run_id": ctx.run.id,
        "by": who(),
        "state": state,
        "history": [
            {"state": "baked", "at": now_iso(), "note": f"run {ctx.run.id}"},
            *(
                [{"state": state, "at": now_iso(), "note": note or "every control passed"}]
                if state != "baked"
                else []
            ),
        ],
        "base": baked.base,
        "fingerprint": baked.fingerprint,
        "git_commit": baked.git_commit,
        "kernel": baked.manifest.get("kernel") if baked.manifest else None,
        "packages": len(baked.manifest["packages"]) if baked.manifest else None,
        # how long each phase took: the next bake's estimates
        "timings": {k: round(v, 1) for k, v in ctx.progress.timings.items()},
        "artifacts": baked.artifacts,
        "verify": summary_of(ctx.verified, ctx.error),
        "channels": [],
        **baked.fields,
    }
    data = {
        "image": spec.name,
        "version": baked.version,
        "state": state,
        "target": ctx.target.name,
        "where": baked.where,
        "run_id": ctx.run.id,
        "git_commit": baked.git_commit,
        "fingerprint": baked.fingerprint,
        "base": baked.base,
        "kernel": record["kernel"],
        "packages": record["packages"],
        "timings": {k: round(v, 1) for k, v in ctx.progress.timings.items()},
        "verify": {
            "summary": ctx.verified.summary if ctx.verified else {},
            "controls": ctx.verified.controls if ctx.verified else [],
            "compliance": ctx.verified.compliance if ctx.verified else {},
            "error": record["verify"].get("error"),
        },
        "definition": spec.to_dict(),
        "diff": best_effort_diff(ctx, baked),
        "elapsed": round(ctx.progress.elapsed(), 1),
        **baked.fields,
    }
    written = reports.write(reports.bake(data), baked.stage)
    for kind, path in written.items():
        record["artifacts"][f"report-{kind}"] = describe(path)
    ctx.record = ctx.target.record(spec, record, baked, ctx.progress)
    if ctx.error is not None:
        raise ctx.error


def keep_evidence(verified: Verified | None, baked: Baked) -> None:
    if verified is None:
        return
    folder = baked.stage / "verify"
    folder.mkdir(exist_ok=True)
    for src in (verified.junit, verified.log, *verified.evidence):
        if src.is_file():
            shutil.copy2(src, folder / src.name)


def best_effort_diff(ctx: Context, baked: Baked) -> dict[str, Any]:
    """The diff is a convenience of the report: when it cannot be made (the previous record or
    its manifest unreadable), the bake is still recorded, and the report says why."""
    try:
        return image_diff(ctx, baked)
    except (BakehouseError, ValueError, KeyError, TypeError) as exc:
        return {"against": None, "changes": [], "error": str(exc) or type(exc).__name__}


def image_diff(ctx: Context, baked: Baked) -> dict[str, Any]:
    """Packages added, removed, upgraded against the previous image on the same target."""
    previous = ctx.target.catalogue.latest(ctx.spec.name)
    if previous is None or baked.manifest is None:
        return {"against": None, "changes": []}
    if "manifest" not in previous.get("artifacts", {}):
        return {"against": previous["version"], "changes": []}
    old = ctx.target.catalogue.checked_artifact(previous, "manifest")
    indexes = getattr(baked.context, "indexes", None)
    if not isinstance(indexes, debindex.Indexes):
        with contextlib.suppress(BakehouseError):  # the diff stands without security marks
            indexes = indexes_for(ctx.project, ctx.spec)
    security = indexes.security_versions() if isinstance(indexes, debindex.Indexes) else {}
    changes = plan.diff(
        debindex.installed_from_manifest(json.loads(old)),
        debindex.installed_from_manifest(baked.manifest),
        security,
    )
    return {
        "against": previous["version"],
        "changes": [
            {"name": c.name, "change": c.kind, "from": c.old, "to": c.new, "security": c.security}
            for c in changes
        ],
    }


_INDEXES: dict[tuple[Any, ...], debindex.Indexes] = {}


def indexes_for(
    project: Project, spec: ImageSpec, marks: debindex.Marks | None = None
) -> debindex.Indexes:
    """The signed package indexes of the image's distribution: fetched (and checked) once per
    command, cached on disk by content; ``marks``: the target's record of the newest index
    dates accepted (never older than those)."""
    local = spec.base.local
    folder = (project.state_dir / "cache" / "indexes").resolve()
    suites = tuple(local.index_suites(spec.base.arch))
    key = (folder, suites, id(marks))
    if key not in _INDEXES:
        _INDEXES[key] = debindex.state_cache(project.state_dir, marks).load(suites)
    return _INDEXES[key]


def step_publish(ctx: Context) -> None:
    from bakehouse.lifecycle.channels import point

    assert ctx.record is not None
    record = ctx.record
    if record["state"] == "failed":
        failed = record["verify"]["failed"]
        shown = ", ".join(failed[:15]) + (" …" if len(failed) > 15 else "")
        raise VerifyFailed(
            f"{record['id']} failed verification: {len(failed)} control(s) failed: {shown}",
            f"not published; the report is kept with the image ({ctx.target.name} catalogue: "
            f"{ctx.target.catalogue.store.location})",
        )
    if record["state"] != "verified" or not ctx.request.publish:
        return
    channels = list(ctx.request.channels or ctx.spec.publish.channels)
    ctx.record = point(ctx.target, ctx.spec, record, channels).record
    ctx.channels = channels
    ctx.progress.say(f"publish: {record['id']} → {', '.join(channels)}")


Step = Callable[[Context], None]
SEQUENCE: tuple[tuple[str, Step], ...] = (
    ("bake", step_bake),
    ("verify", step_verify),
    ("record", step_record),
    ("publish", step_publish),
)


def previous_timings(target: Target, spec: ImageSpec) -> dict[str, float]:
    """Estimates per phase from the image's last verified bakes on the target (none yet: no
    estimate, never a guess)."""
    try:
        records = target.catalogue.images(spec.name)
    except BakehouseError:  # an unreadable catalogue is the bake's to report, not progress's
        return {}
    return estimates_from(
        r["timings"]
        for r in records
        if r.get("state") in ("verified", "published") and isinstance(r.get("timings"), dict)
    )


def bake(
    project: Project,
    spec: ImageSpec,
    target: Target,
    request: BakeRequest | None = None,
    progress: Progress | None = None,
) -> BakeResult:
    request = request or BakeRequest()
    progress = progress or Progress()
    if request.channels:
        check_channels(list(request.channels))
    target.check(spec, request)
    with (
        terminate_as_exception(),
        image_lock(project.state_dir, spec.name, target.name),
        run_dir(
            project.state_dir,
            spec.name,
            f"bake-{target.name}",
            keep=request.keep_run,
            keep_whole_on_failure=request.keep_on_failure,
        ) as run,
    ):
        ctx = Context(project, spec, target, request, run, progress)
        progress.estimates = previous_timings(target, spec)
        progress.say(f"bake: {spec.name} on the {target.name} target (run {run.id})")
        for _name, step in SEQUENCE:
            step(ctx)
        assert ctx.record is not None
        progress.say(f"bake: {ctx.record['id']} {ctx.record['state']} in {progress.elapsed():.1f}s")
        return BakeResult(ctx.record, target.name, target.where(ctx.record), ctx.channels)
