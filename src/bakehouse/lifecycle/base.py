"""The base an image bakes from, on any target: built and cached (local), or resolved to one
owner-pinned AMI (aws)."""

from __future__ import annotations

from bakehouse.progress import Progress
from bakehouse.project import Project
from bakehouse.runs import run_dir, terminate_as_exception
from bakehouse.spec import ImageSpec
from bakehouse.targets.base import Target


def base(
    project: Project,
    target: Target,
    spec: ImageSpec,
    rebuild: bool = False,
    progress: Progress | None = None,
) -> str:
    with (
        terminate_as_exception(),
        run_dir(project.state_dir, f"base-{spec.name}", "base") as run,
    ):
        return target.base(spec, rebuild, run, progress or Progress())
