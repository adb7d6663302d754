"""What the command line does, as plain functions: the tasks only parse flags and call these."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bakehouse import render as rnd
from bakehouse.errors import BakehouseError, SpecError, UsageError
from bakehouse.project import Project
from bakehouse.spec import REGION_RE, Catalog, ImageSpec


def catalog(project: Project) -> Catalog:
    return Catalog(project.images_dir, project.scripts_dir)


def select(project: Project, image: str | None) -> list[str]:
    names = catalog(project).names()
    if image is None:
        if not names:
            raise UsageError("no image definitions in images/", "add images/<name>.yaml")
        return names
    if image not in names:
        raise SpecError(
            f"no image named {image!r}",
            f"known images: {', '.join(names)}",
            file=f"images/{image}.yaml",
        )
    return [image]


def targets(target: str | None) -> list[str]:
    if target is None:
        return list(rnd.TARGETS)
    if target not in rnd.TARGETS:
        raise UsageError(f"unknown target {target!r}", f"targets: {', '.join(rnd.TARGETS)}")
    return [target]


def list_images(project: Project, today: dt.date | None = None) -> list[dict[str, Any]]:
    cat = catalog(project)
    rows: list[dict[str, Any]] = []
    for name in cat.names():
        spec = cat.load(name, today)
        rows.append(
            {
                "name": spec.name,
                "description": spec.description,
                "files": list(spec.files),
                "packages": list(spec.packages),
                "channels": list(spec.publish.channels),
            }
        )
    return rows


def show_image(project: Project, name: str, today: dt.date | None = None) -> ImageSpec:
    select(project, name)
    return catalog(project).load(name, today)


@dataclass
class Rendered:
    image: str
    target: str
    path: Path
    changed: bool
    problems: list[str] = field(default_factory=list)

    def to_dict(self, root: Path) -> dict[str, Any]:
        return {
            "image": self.image,
            "target": self.target,
            "path": str(self.path.relative_to(root))
            if self.path.is_relative_to(root)
            else str(self.path),
            "changed": self.changed,
            "ok": not self.problems,
            "problems": self.problems,
        }


def render_images(
    project: Project,
    image: str | None,
    target: str | None,
    packer_version: rnd.PackerVersion | None = None,
) -> list[Rendered]:
    """Render every selected image × target into build/<image>/<target>.pkr.hcl."""
    names = select(project, image)
    tgts = targets(target)
    if packer_version is None:
        from bakehouse import packer

        packer_version = packer.version()
    cat = catalog(project)
    out: list[Rendered] = []
    for name in names:
        spec = cat.load(name)
        for tgt in tgts:
            text = rnd.render(spec, tgt, project.packer_dir, packer_version)
            path = rnd.output_path(project.build_dir, spec, tgt)
            out.append(Rendered(name, tgt, path, rnd.write(text, path)))
    return out


@dataclass
class Validation:
    image: str
    error: BakehouseError | None = None
    rendered: list[Rendered] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and all(not r.problems for r in self.rendered)


def validate_images(
    project: Project, image: str | None, target: str | None, with_packer: bool = True
) -> list[Validation]:
    """Schema-check every selected image, then render it and let Packer check the result."""
    names = select(project, image)
    targets(target)  # reject a bad target before any work
    results: list[Validation] = []
    version = None
    if with_packer:
        from bakehouse import packer

        version = packer.version()
    for name in names:
        v = Validation(name)
        results.append(v)
        try:
            rendered = render_images(project, name, target, version or rnd.DEFAULT_PACKER)
        except SpecError as exc:
            v.error = exc
            continue
        v.rendered = rendered
        if with_packer:
            from bakehouse import packer

            for r in rendered:
                r.problems = packer.validate(r.path, r.target, project.scripts_dir)
    return results


def with_regions(spec: ImageSpec, regions: list[str]) -> ImageSpec:
    """``spec`` with its AWS regions replaced (the --region flags), validated like the file."""
    import dataclasses
    import re

    for region in regions:
        if not re.fullmatch(REGION_RE, region):
            raise UsageError(f"--region {region!r} is not an AWS region", "e.g. eu-west-1")
    aws = dataclasses.replace(spec.targets.aws, regions=tuple(dict.fromkeys(regions)))
    return dataclasses.replace(spec, targets=dataclasses.replace(spec.targets, aws=aws))
