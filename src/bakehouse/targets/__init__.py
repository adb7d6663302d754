"""Targets: the places images are baked for, by name.

Each entry names the module and class that implement :class:`bakehouse.targets.base.Target`;
modules are imported only when a target is used, so listing commands stays fast and the cloud
SDKs load only for the clouds. A new target is a module plus one line here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from bakehouse.errors import UsageError

if TYPE_CHECKING:
    from bakehouse.project import Project
    from bakehouse.targets.base import Target, TargetOptions

REGISTRY: dict[str, str] = {
    "local": "bakehouse.targets.local:LocalTarget",
    "aws": "bakehouse.targets.aws:AwsTarget",
}
DEFAULT = "local"


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def check(name: str) -> str:
    """``name`` if it is a target, else a usage error (exit 2) listing the targets."""
    if name not in REGISTRY:
        raise UsageError(f"--target {name!r} is not a target", f"targets: {', '.join(REGISTRY)}")
    return name


def get(name: str, project: Project, options: TargetOptions | None = None) -> Target:
    module, _, cls = REGISTRY[check(name)].partition(":")
    target: Target = getattr(importlib.import_module(module), cls)(project, options)
    return target
