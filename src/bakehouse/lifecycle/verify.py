"""Verify again, on any target: boot (or launch) a recorded image — or its unhardened base —
without changing it, and run tests/hardening against it. Nothing is recorded or published."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


def verify(
    project: Project,
    target: Target,
    spec: ImageSpec,
    version: str | None = None,
    base: bool = False,
    progress: Progress | None = None,
) -> VerifyResult:
    if base and version:
        raise UsageError("--base and --version exclude each other", "verify one thing at a time")
    record = None
    if not base:
        record = (
            target.catalogue.image(spec.name, version)
            if version
            else target.catalogue.latest(spec.name)
        )
        if record is None:
            raise UsageError(
                f"no baked version of {spec.name} on the {target.name} target",
                f"bake one: invoke bake --image {spec.name} --target {target.name}",
            )
    progress = progress or Progress()
    with terminate_as_exception(), run_dir(project.state_dir, spec.name, "verify") as run:
        verified = target.verify_recorded(spec, record, run, progress)
    return VerifyResult(spec.name, target.name, record["version"] if record else "base", verified)
