"""What is known about images on a target: the list, one image's history, package diffs."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from bakehouse import debindex, plan
from bakehouse.catalogue import Record
from bakehouse.errors import BakehouseError, UsageError
from bakehouse.lifecycle.bake import indexes_for
from bakehouse.project import Project
from bakehouse.spec import Catalog, ImageSpec
from bakehouse.targets.base import Target


@dataclass
class ImageRow:
    name: str
    description: str
    files: list[str]
    target: str
    newest: Record | None
    channels: dict[str, str | None]
    release: str = ""  # debian-13, ubuntu-24.04

    def to_dict(self) -> dict[str, Any]:
        newest = self.newest
        return {
            "name": self.name,
            "description": self.description,
            "files": self.files,
            "target": self.target,
            "release": self.release,
            "latest": {"version": newest["version"], "state": newest["state"]} if newest else None,
            "channels": self.channels,
        }


def list_images(catalog: Catalog, target: Target) -> list[ImageRow]:
    rows = []
    for spec in catalog.load_all():
        current = {c: e.get("current") for c, e in sorted(target.channels(spec).items())}
        rows.append(
            ImageRow(
                spec.name,
                spec.description,
                list(spec.files),
                target.name,
                target.catalogue.latest(spec.name),
                current,
                spec.base.local.release.id,
            )
        )
    return rows


@dataclass
class History:
    image: str
    target: str
    records: list[Record]
    channels: dict[str, Any]
    rolls: list[Record] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "target": self.target,
            "images": self.records,
            "channels": self.channels,
            "rolls": self.rolls,
        }


def history(target: Target, spec: ImageSpec) -> History:
    return History(
        spec.name,
        target.name,
        target.catalogue.images(spec.name),
        target.channels(spec),
        target.catalogue.rolls(spec.name),
    )


@dataclass
class Diff:
    image: str
    target: str
    old: str
    new: str
    changes: list[plan.Change]

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "target": self.target,
            "old": self.old,
            "new": self.new,
            "changes": [
                {
                    "name": c.name,
                    "change": c.kind,
                    "from": c.old,
                    "to": c.new,
                    "security": c.security,
                }
                for c in self.changes
            ],
        }


def diff(
    project: Project, target: Target, spec: ImageSpec, old: str | None, new: str | None
) -> Diff:
    """Packages added, removed and upgraded between two versions (default: the newest two)."""
    catalogue = target.catalogue
    versions = [r["version"] for r in catalogue.images(spec.name)]
    for flag, value in (("--old", old), ("--new", new)):
        if value is not None and value not in versions:
            raise UsageError(
                f"{flag} {value}: no such version of {spec.name} on the {target.name} target",
                f"versions: {', '.join(versions) or 'none'}",
            )
    new = new or (versions[-1] if versions else None)
    if new is None or (old is None and versions.index(new) == 0):
        raise UsageError(
            f"{spec.name} has fewer than two baked versions on the {target.name} target",
            "bake it again first, or name both with --old and --new",
        )
    old = old or versions[versions.index(new) - 1]
    if old == new:
        raise UsageError(f"--old and --new are both {old}", "name two different versions")

    def manifest(version: str) -> dict[str, str]:
        record = catalogue.image(spec.name, version)
        if "manifest" not in record.get("artifacts", {}):
            raise UsageError(f"{spec.name} {version} has no package manifest to compare")
        raw = catalogue.checked_artifact(record, "manifest")
        return debindex.installed_from_manifest(json.loads(raw))

    security: dict[str, str] = {}
    with contextlib.suppress(BakehouseError):  # without the indexes, no security marks
        security = indexes_for(project, spec).security_versions()
    return Diff(spec.name, target.name, old, new, plan.diff(manifest(old), manifest(new), security))
