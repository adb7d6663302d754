"""Image definitions: select, show, render to Packer templates and validate them (every target)."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bakehouse import render as rnd
from bakehouse import targets as registry
from bakehouse.errors import BakehouseError, SpecError, UsageError, as_json
from bakehouse.project import Project
from bakehouse.spec import Catalog, ImageSpec


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


def shard(project: Project, images: list[str] | None, value: str | None) -> list[str]:
    """The images asked for (default: all), and with ``--shard K/N`` only the K-th of N runners'
    share of them (a CodeBuild batch). Every image lands in exactly one share (by its place in
    name order), so each is decided once, by one runner, whatever the others decide."""
    names = images or select(project, None)
    if value is None:
        return names
    k, _, n = value.partition("/")
    if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise UsageError(
            f"--shard {value}: not K/N with 1 <= K <= N",
            "e.g. --shard 2/4: the second of four runners",
        )
    ordered = sorted(names)
    return ordered[int(k) - 1 :: int(n)]


def targets(target: str | None) -> list[str]:
    return list(registry.names()) if target is None else [registry.check(target)]


def show_image(project: Project, name: str, today: dt.date | None = None) -> ImageSpec:
    select(project, name)
    return catalog(project).load(name, today)


@dataclass
class Rendered:
    image: str
    target: str
    path: Path
    changed: bool
    shown: str  # the path as the project names it
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "target": self.target,
            "path": self.shown,
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
            shown = str(
                path.relative_to(project.root) if path.is_relative_to(project.root) else path
            )
            out.append(Rendered(name, tgt, path, rnd.write(text, path), shown))
    return out


@dataclass
class Validation:
    image: str
    checked: str  # what was checked: the schema, and Packer's own checks
    error: BakehouseError | None = None
    rendered: list[Rendered] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and all(not r.problems for r in self.rendered)

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "ok": self.ok,
            "error": self.error.message if self.error else None,
            "hint": self.error.hint if self.error else None,
            # every problem of the definition (file, line, key, message, hint)
            "errors": as_json(self.error)["errors"] if self.error else [],
            "rendered": [r.to_dict() for r in self.rendered],
        }


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
    checked = "schema, packer validate, packer fmt" if with_packer else "schema"
    for name in names:
        v = Validation(name, checked)
        results.append(v)
        try:
            rendered = render_images(project, name, target, version or rnd.DEFAULT_PACKER)
        except SpecError as exc:
            v.error = exc
            continue
        v.rendered = rendered
    if with_packer:
        _packer_check([r for v in results for r in v.rendered], project.scripts_dir)
    return results


def _packer_check(rendered: list[Rendered], scripts_dir: Path) -> None:
    """``packer validate`` and ``fmt -check`` of every rendered file, a few Packers at a time
    (each is a process that mostly waits on its plugins' start-up)."""
    import concurrent.futures

    from bakehouse import packer

    def check(r: Rendered) -> None:
        r.problems = packer.validate(r.path, r.target, scripts_dir)

    workers = max(2, min(8, (os.cpu_count() or 1) * 2))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(check, rendered))
