"""Patch-aware rebuilds: gather the facts for every image, decide (plan.py), bake what needs it.

The decision needs no VM and no Packer: the inputs fingerprint comes from rendering (pure) and
hashing the scripts and the hardening suite, the base key from the base's inputs, and pending
updates from comparing the newest image's manifest with the current package indexes (fetched
once per suite configuration and cached by hash).
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import functools
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bakehouse import debindex, plan, proc
from bakehouse import render as rnd
from bakehouse.catalogue import Catalogue
from bakehouse.project import Project
from bakehouse.spec import ImageSpec
from bakehouse.stages import base as base_stage
from bakehouse.stages.bake import fingerprint


def suite_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted((root / "tests" / "hardening").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=4)
def _tool_versions() -> tuple[str, str]:
    from bakehouse import packer

    return str(packer.version()), base_stage.mmdebstrap_version()


def local_inputs(project: Project, spec: ImageSpec) -> tuple[str, str]:
    """(inputs fingerprint, base key) of a local bake of ``spec``, as a bake computes them."""
    from bakehouse.render import PackerVersion

    packer_version, mmdebstrap = _tool_versions()
    template = rnd.render(spec, "local", project.packer_dir, PackerVersion.parse(packer_version))
    customize, shared = base_stage.base_scripts(project.packer_dir)
    base_key = base_stage.content_key(
        base_stage.inputs(spec.base.local, customize, mmdebstrap, shared)
    )
    return fingerprint(
        spec, template, project.scripts_dir, base_key, suite_hash(project.root)
    ), base_key


def gather(
    project: Project,
    specs: list[ImageSpec],
    forced: set[str] | None = None,
    indexes: dict[tuple[Any, ...], debindex.Indexes] | None = None,
) -> list[plan.Facts]:
    catalogue = Catalogue(project.state_dir / "catalogue")
    cache = debindex.IndexCache(project.state_dir / "cache" / "indexes")
    indexes = {} if indexes is None else indexes
    out = []
    for spec in specs:
        local = spec.base.local
        key = (local.mirror, local.security_mirror, local.suite, local.components)
        if key not in indexes:
            indexes[key] = cache.load(debindex.suites_for(*key))
        ix = indexes[key]
        fp, base_key = local_inputs(project, spec)
        last = catalogue.latest(spec.name)
        pending: tuple[debindex.Pending, ...] = ()
        if last is not None:
            manifest = catalogue.image_dir(spec.name, last["version"]) / "manifest.json"
            if manifest.is_file():
                installed = debindex.installed_from_manifest(json.loads(manifest.read_text()))
                pending = tuple(debindex.pending(installed, ix))
        out.append(
            plan.Facts(
                spec.name,
                fp,
                base_key,
                spec.patch.rebuild_on,
                spec.patch.max_age_days,
                last,
                pending,
                ix.offline,
                spec.name in (forced or set()),
            )
        )
    return out


@dataclass
class Outcome:
    image: str
    decision: plan.Decision
    ran: bool = False
    ok: bool = True
    seconds: float = 0.0
    result: str = ""
    log: str = ""


def bake_argv(image: str, channels: list[str] | None = None) -> list[str]:
    argv = [sys.executable, "-m", "bakehouse", "bake", "--image", image]
    for channel in channels or []:
        argv += ["--channel", channel]
    return argv


def run(
    project: Project,
    decisions: list[plan.Decision],
    workers: int,
    logs: Path,
    channels: list[str] | None = None,
    say: Any = print,
) -> list[Outcome]:
    """Bake every image that needs it, ``workers`` at a time; one failing does not stop the rest."""
    logs.mkdir(parents=True, exist_ok=True)
    outcomes = {d.image: Outcome(d.image, d) for d in decisions}

    def one(image: str) -> None:
        out = outcomes[image]
        log = logs / f"{image}.log"
        out.log = str(log)
        start = time.monotonic()
        code = proc.stream(
            bake_argv(image, channels),
            log=log,
            cwd=project.root,
            env={"BAKEHOUSE_STATE_DIR": str(project.state_dir)},
            timeout=4 * 3600,
        )
        out.ran, out.ok, out.seconds = True, code == 0, time.monotonic() - start
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        out.result = tail[0][:200]
        say(
            f"nightly: {image}: {'ok' if out.ok else 'FAILED'} in {out.seconds:.0f}s — {out.result}"
        )

    todo = [d.image for d in decisions if d.bake]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for future in [pool.submit(one, image) for image in todo]:
            future.result()
    return [outcomes[d.image] for d in decisions]


def default_workers() -> int:
    """Each bake runs a 2-vCPU VM: one bake per two cores."""
    return max(1, (os.cpu_count() or 2) // 2)


def junit(outcomes: list[Outcome]) -> str:
    from xml.sax.saxutils import quoteattr  # nosec B406

    failures = sum(1 for o in outcomes if o.ran and not o.ok)
    cases = []
    for o in outcomes:
        body = ""
        if o.ran and not o.ok:
            body = f"<failure message={quoteattr(o.result)}/>"
        elif not o.ran:
            body = f"<skipped message={quoteattr(o.decision.reason)}/>"
        cases.append(
            f'<testcase classname="nightly" name={quoteattr(o.image)} '
            f'time="{o.seconds:.1f}">{body}</testcase>'
        )
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="bakehouse-nightly" '
        f'tests="{len(outcomes)}" failures="{failures}">' + "".join(cases) + "</testsuite>\n"
    )


def markdown(outcomes: list[Outcome], when: dt.datetime) -> str:
    lines = [
        f"## bakehouse nightly {when:%Y-%m-%d %H:%M} UTC",
        "",
        "| image | decision | reason | result | time |",
        "|---|---|---|---|---:|",
    ]
    for o in outcomes:
        result = ("ok" if o.ok else "FAILED") if o.ran else "skipped"
        lines.append(
            f"| {o.image} | {'bake' if o.decision.bake else 'skip'} | "
            f"{o.decision.reason} | {result} | {o.seconds:.0f}s |"
        )
    return "\n".join(lines) + "\n"


def write_reports(outcomes: list[Outcome], folder: Path, when: dt.datetime) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nightly.json").write_text(
        json.dumps(
            [
                {
                    **o.decision.to_dict(),
                    "ran": o.ran,
                    "ok": o.ok,
                    "seconds": round(o.seconds, 1),
                    "result": o.result,
                    "log": o.log,
                }
                for o in outcomes
            ],
            indent=2,
        )
        + "\n"
    )
    (folder / "nightly.md").write_text(markdown(outcomes, when))
    (folder / "nightly.junit.xml").write_text(junit(outcomes))
