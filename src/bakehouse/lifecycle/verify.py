"""Verify again, on any target: boot (or launch) a recorded image — or its unhardened base —
without changing it, and run tests/hardening against it; or open a shell in it. Nothing is
recorded or published."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bakehouse.catalogue import Record
from bakehouse.errors import UsageError
from bakehouse.progress import Progress
from bakehouse.project import Project
from bakehouse.runs import run_dir, terminate_as_exception
from bakehouse.spec import ImageSpec
from bakehouse.suite import Verified
from bakehouse.targets.base import Target


@dataclass
class VerifyResult:
    image: str
    target: str
    what: str  # the version, or "base"
    verified: Verified

    @property
    def ok(self) -> bool:
        return self.verified.ok

    def to_dict(self) -> dict[str, Any]:
        v = self.verified
        return {
            "image": self.image,
            "target": self.target,
            "what": self.what,
            "ok": v.ok,
            "summary": v.summary,
            "controls": v.controls,
        }


def recorded(target: Target, spec: ImageSpec, version: str | None, base: bool) -> Record | None:
    """The recorded version to boot (default: the newest), or None for the base."""
    if base and version:
        raise UsageError("--base and --version exclude each other", "choose one of them")
    if base:
        return None
    record = (
        target.catalogue.image(spec.name, version)
        if version
        else target.catalogue.latest(spec.name)
    )
    if record is None:
        what = f"version {version} of {spec.name}" if version else f"baked version of {spec.name}"
        raise UsageError(
            f"no {what} on the {target.name} target",
            f"invoke images.history --image {spec.name} lists them; "
            f"invoke bake --image {spec.name} bakes one",
        )
    return record


def shell(
    project: Project,
    target: Target,
    spec: ImageSpec,
    version: str | None = None,
    base: bool = False,
    command: str | None = None,
    progress: Progress | None = None,
) -> int:
    """Boot an image (or its base) unchanged and open a shell in it; the VM goes when the
    session ends. The session's exit status."""
    record = recorded(target, spec, version, base)
    progress = progress or Progress()
    with terminate_as_exception(), run_dir(project.state_dir, spec.name, "shell") as run:
        return target.shell(spec, record, run, progress, command)


def verify(
    project: Project,
    target: Target,
    spec: ImageSpec,
    version: str | None = None,
    base: bool = False,
    progress: Progress | None = None,
) -> VerifyResult:
    from bakehouse.lifecycle.bake import previous_timings

    record = recorded(target, spec, version, base)
    progress = progress or Progress()
    progress.estimates = previous_timings(target, spec)  # the bakes' own verify phases
    with terminate_as_exception(), run_dir(project.state_dir, spec.name, "verify") as run:
        verified = target.verify_recorded(spec, record, run, progress)
    return VerifyResult(spec.name, target.name, record["version"] if record else "base", verified)
