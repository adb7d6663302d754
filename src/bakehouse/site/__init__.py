"""The report site: everything the catalogues know, as static pages people look at.

:func:`collect` reads each target's catalogue (records, the evidence kept with each version, its
SBOM), its channels and rolls, what nightly would decide now (pending updates from the signed
indexes), and the reports of nightly and deploy runs; :func:`write` renders that with the
templates in ``site/templates`` into a folder of plain HTML: no script, no external asset, so
it works offline, as a CI artifact and on any static host. Pictures are inline SVG
(:mod:`bakehouse.site.svg`). Layout::

    index.html                                   every image × target × region
    runs.html                                    nightly and deploy runs
    <target>/<image>/index.html                  lineage, channel timeline, versions
    <target>/<image>/<version>/index.html        controls, package diff, timings, lineage
    <target>/<image>/<version>/sbom.cdx.json     the SBOM, to download

Evidence that cannot be read (missing, or not the file its record's sha256 names) is shown as
unreadable on its page, never as passed.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup

from bakehouse.catalogue import Record
from bakehouse.distro import FAMILIES
from bakehouse.errors import BakehouseError, CatalogueError
from bakehouse.files import write_bytes
from bakehouse.names import VERSION_RE
from bakehouse.project import Project
from bakehouse.site import svg
from bakehouse.site.svg import Node
from bakehouse.spec import ImageSpec
from bakehouse.targets.base import Target

TEMPLATES = Path(__file__).parent / "templates"

# a control's outcome in the suite's JUnit -> what the site says (always in words)
STATUS = {
    "passed": "passed",
    "failed": "FAILED",
    "error": "NOT JUDGED",
    "waived": "waived",
    "skipped": "not applicable",
}
# "CIS Debian 12 1.6.1, 1.6.4" -> section 1 of an OS benchmark (a distribution family's);
# "CIS nginx 2.1.1" or "CIS PostgreSQL 16 3.1.2" (a role's own benchmark) is not one of them
CIS_SECTION = re.compile(
    rf"^CIS (?:{'|'.join(re.escape(f.title) for f in FAMILIES.values())}) "
    r"\d+(?:\.\d+)? (\d+)(?:\.\d+)*"
)
VERSION = re.compile(rf"^{VERSION_RE}$")


# ---- the data ----------------------------------------------------------------------------------


@dataclass
class Version:
    target: str
    image: str
    record: Record
    report: dict[str, Any] | None = None  # the bake's report.json (all the evidence)
    sbom: bytes | None = None
    problems: list[str] = field(default_factory=list)  # evidence that could not be read
    channels: list[str] = field(default_factory=list)  # the channels that deliver it now

    @property
    def version(self) -> str:
        return str(self.record["version"])

    @property
    def state(self) -> str:
        return str(self.record.get("state", "unknown"))

    @property
    def href(self) -> str:
        return f"{self.target}/{self.image}/{self.version}/index.html"


@dataclass
class Image:
    target: str
    spec: ImageSpec
    versions: list[Version]
    channels: dict[str, Any]
    rolls: list[Record]
    decision: dict[str, Any] | None = None  # what nightly would decide now
    decision_error: str = ""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def href(self) -> str:
        return f"{self.target}/{self.name}/index.html"

    @property
    def newest(self) -> Version | None:
        return self.versions[-1] if self.versions else None

    def regions(self) -> list[tuple[str, Version | None, str]]:
        """One row per region: (region, the newest version with an AMI there, its AMI id);
        the definition's regions and every region a version has AMIs in. local: this machine,
        its newest version."""
        if self.target != "aws":
            return [("local", self.newest, "")]
        names = list(self.spec.targets.aws.regions)
        for v in self.versions:
            names += [str(a.get("region")) for a in v.record.get("amis") or []]
        rows = []
        for region in dict.fromkeys(names):
            found: tuple[Version | None, str] = (None, "")
            for v in self.versions:
                for ami in v.record.get("amis") or []:
                    if ami.get("region") == region:
                        found = (v, str(ami.get("ami_id", "")))
            rows.append((region, *found))
        return rows


@dataclass
class Run:
    kind: str  # nightly | deploy
    target: str
    at: str
    folder: Path
    data: dict[str, Any]

    @property
    def anchor(self) -> str:
        return re.sub(r"[^A-Za-z0-9-]", "-", f"{self.kind}-{self.target}-{self.at}")


@dataclass
class Site:
    generated: dt.datetime
    images: list[Image]
    runs: list[Run]
    problems: list[str] = field(default_factory=list)

    def last_nightly(self, target: str, image: str) -> tuple[Run, dict[str, Any]] | None:
        for run in self.runs:  # newest first
            if run.kind == "nightly" and run.target == target:
                for row in run.data.get("images", []):
                    if row.get("image") == image:
                        return run, row
        return None

    def by_run_id(self) -> dict[tuple[str, str], Version]:
        return {(v.target, str(v.record.get("run_id"))): v for i in self.images for v in i.versions}

    @functools.cached_property
    def _versions(self) -> dict[tuple[str, str, str], Version]:
        return {(v.target, v.image, v.version): v for i in self.images for v in i.versions}

    def version_of(self, target: str, image: str, version: str | None) -> Version | None:
        return self._versions.get((target, image, str(version)))


# ---- reading ------------------------------------------------------------------------------------


def _evidence(target: Target, record: Record, version: Version) -> None:
    catalogue = target.catalogue
    arts = record.get("artifacts", {})
    if "report-json" in arts:
        try:
            version.report = json.loads(catalogue.checked_artifact(record, "report-json"))
        except (CatalogueError, ValueError) as exc:
            version.problems.append(f"the bake report is unreadable: {_message(exc)}")
    else:
        version.problems.append("the record names no bake report")
    if "sbom" in arts:
        try:
            version.sbom = catalogue.checked_artifact(record, "sbom")
        except CatalogueError as exc:
            version.problems.append(f"the SBOM is unreadable: {exc.message}")


def _message(exc: Exception) -> str:
    return exc.message if isinstance(exc, BakehouseError) else str(exc)


def collect_target(
    project: Project, target: Target, specs: list[ImageSpec], pending: bool, now: dt.datetime
) -> tuple[list[Image], list[str]]:
    from bakehouse.lifecycle import nightly

    problems: list[str] = []
    decisions: dict[str, dict[str, Any]] = {}
    decision_error = "not checked (--no-pending)"
    if pending and specs:
        try:
            decided = nightly.decide(project, target, specs, None, now)
            decisions = {d.image: d.to_dict() for d in decided}
            decision_error = ""
        except BakehouseError as exc:
            decision_error = f"not known: {exc.message}"
            problems.append(f"{target.name}: pending updates {decision_error}")
    images = []
    for spec in specs:
        channels = target.channels(spec)
        current: dict[str, list[str]] = {}
        for channel, entry in channels.items():
            if entry.get("current"):
                current.setdefault(str(entry["current"]), []).append(channel)
        versions = []
        for record in target.catalogue.images(spec.name):
            if not VERSION.match(str(record.get("version", ""))):
                problems.append(
                    f"{target.name}/{spec.name}: a record with the version "
                    f"{str(record.get('version'))[:40]!r} is not shown (not YYYYMMDD.HHMMSS)"
                )
                continue
            version = Version(target.name, spec.name, record)
            version.channels = sorted(current.get(version.version, []))
            _evidence(target, record, version)
            problems += [
                f"{target.name}/{spec.name} {version.version}: {p}" for p in version.problems
            ]
            versions.append(version)
        images.append(
            Image(
                target.name,
                spec,
                versions,
                channels,
                target.catalogue.rolls(spec.name),
                decisions.get(spec.name),
                decision_error if spec.name not in decisions else "",
            )
        )
    return images, problems


# what each row of a run report must hold, and of what type, to be shown
NIGHTLY_ROW: dict[str, type] = {"image": str, "bake": bool, "reason": str, "ran": bool, "ok": bool}
DEPLOY: dict[str, type] = {"image": str, "channel": str, "steps": list}
DEPLOY_STEP: dict[str, type] = {"step": str, "ok": bool}


def _shaped(item: Any, shape: Mapping[str, type], what: str) -> None:
    if not isinstance(item, dict):
        raise ValueError(f"{what} is not a mapping")
    for key, kind in shape.items():
        if not isinstance(item.get(key), kind):
            raise ValueError(f"{what}: {key} is missing or not {kind.__name__}")


def _check_run(data: dict[str, Any]) -> None:
    for key in ("target", "at"):
        if not isinstance(data.get(key), str):
            raise ValueError(f"{key} is missing")
    if data["kind"] == "nightly":
        if not isinstance(data.get("images"), list):
            raise ValueError("images is missing")
        for i, row in enumerate(data["images"]):
            _shaped(row, NIGHTLY_ROW, f"images[{i}]")
            if not isinstance(row.get("seconds", 0), int | float):
                raise ValueError(f"images[{i}]: seconds is not a number")
    else:
        _shaped(data, DEPLOY, "the deploy")
        for i, step in enumerate(data["steps"]):
            _shaped(step, DEPLOY_STEP, f"steps[{i}]")


def read_runs(roots: list[Path]) -> tuple[list[Run], list[str]]:
    """Every nightly and deploy report under ``roots`` (a report folder, or a folder of
    them), newest first; a report that does not parse is named, not skipped silently."""
    runs: list[Run] = []
    problems: list[str] = []
    seen: set[Path] = set()
    for root in roots:
        folders = [root, *sorted(p for p in root.iterdir() if p.is_dir())] if root.is_dir() else []
        for folder in folders:
            for kind in ("nightly", "deploy"):
                path = folder / f"{kind}.json"
                if not path.is_file() or path.resolve() in seen:
                    continue
                seen.add(path.resolve())
                try:
                    data = json.loads(path.read_text())
                    if not isinstance(data, dict) or data.get("kind") != kind:
                        raise ValueError(f"not a {kind} report of this bakehouse version")
                    _check_run(data)
                    runs.append(Run(kind, str(data["target"]), str(data["at"]), folder, data))
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    problems.append(f"{path}: {exc}")
    runs.sort(key=lambda r: r.at, reverse=True)
    return runs, problems


def collect(
    project: Project,
    targets: list[Target],
    specs: list[ImageSpec],
    run_roots: list[Path],
    *,
    pending: bool = True,
    now: dt.datetime | None = None,
) -> Site:
    now = now or dt.datetime.now(dt.UTC)
    images: list[Image] = []
    problems: list[str] = []
    for target in targets:
        found, trouble = collect_target(project, target, specs, pending, now)
        images += found
        problems += trouble
    runs, trouble = read_runs(run_roots)
    return Site(now, images, runs, problems + trouble)


# ---- what the pages show ------------------------------------------------------------------------


def age(created: str | None, now: dt.datetime) -> str:
    if not created:
        return "?"
    try:
        seconds = max(0.0, (now - dt.datetime.fromisoformat(str(created))).total_seconds())
    except (ValueError, TypeError):  # not a time, or one without its zone
        return "?"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def waivers(report: dict[str, Any] | None) -> dict[str, dict[str, str]]:
    definition = (report or {}).get("definition") or {}
    return {
        str(w["id"]): {"reason": str(w.get("reason", "")), "expires": str(w.get("expires", ""))}
        for w in (definition.get("hardening") or {}).get("waivers") or []
        if isinstance(w, dict) and "id" in w
    }


def control_groups(version: Version) -> list[dict[str, Any]]:
    """Every control of the evidence, grouped by the CIS section it answers to (the first CIS
    recommendation its reference names), then the controls beyond CIS; each with its count of
    every status."""
    report = version.report or {}
    verify = report.get("verify") or {}
    titles = {
        str(s.get("section")): str(s.get("title", ""))
        for s in (verify.get("compliance") or {}).get("sections") or []
        if isinstance(s, dict)
    }
    benchmark = (verify.get("compliance") or {}).get("benchmark") or "CIS"
    waived = waivers(report)
    groups: dict[str, dict[str, Any]] = {}
    for control in verify.get("controls") or []:
        section = ""
        for part in str(control.get("reference", "")).split(";"):
            found = CIS_SECTION.search(part.strip())
            if found:
                section = found.group(1)
                break
        if section:
            title = f"{benchmark} section {section}: {titles.get(section, '')}".rstrip(": ")
        else:
            title = "Beyond the OS benchmark: dev-sec baselines, role checks, bakehouse's own"
        group = groups.setdefault(section or "~", {"title": title, "controls": [], "counts": {}})
        outcome = str(control.get("outcome", ""))
        status = STATUS.get(outcome, f"unknown ({outcome})")
        row = {
            "id": control.get("id", ""),
            "title": control.get("title", ""),
            "reference": control.get("reference", ""),
            "status": status,
            "outcome": outcome if outcome in STATUS else "failed",
            "message": str(control.get("message", "")),
            "waiver": waived.get(str(control.get("id"))) if outcome == "waived" else None,
        }
        group["controls"].append(row)
        group["counts"][status] = group["counts"].get(status, 0) + 1
    return [
        groups[k] for k in sorted(groups, key=lambda s: (s == "~", int(s) if s.isdigit() else 0))
    ]


def timings(version: Version) -> list[tuple[str, float]]:
    """The phases of the bake and its verification, in the order they ran; a total is left
    out where its parts are there (local: Packer's steps are, so "bake" and "packer:total")."""
    values = (version.report or {}).get("timings") or version.record.get("timings") or {}
    if not isinstance(values, dict):
        return []
    parts = any(str(k).startswith("packer:") for k in values)
    skip = {"packer:total", "bake"} if parts else set()
    out = []
    for key, value in values.items():
        if key not in skip and isinstance(value, int | float) and value > 0:
            out.append((str(key), float(value)))
    return out


def lineage(image: Image, prefix: str = "", only: Version | None = None) -> Markup:
    """release → base → patched base (local) or base AMI (aws) → versions → channels (and
    regions on aws), revoked versions marked; ``only``: that version's line alone."""
    picture = svg.Lineage()
    release = image.spec.base.local.release
    releases = picture.column("release")
    releases.append(Node("release", release.id, release.codename))
    bases = picture.column("base" if image.target == "local" else "base AMI")
    patched = picture.column("patched base") if image.target == "local" else None
    versions = picture.column("versions" if only is None else "version")
    chosen = image.versions if only is None else [only]
    for v in chosen:
        base = v.record.get("base") or {}
        if image.target == "local":
            parent = base.get("parent")
            key = str(base.get("key") or base.get("id") or "?")
            origin = str(parent or key)
            if not any(n.key == f"base:{origin}" for n in bases):
                bases.append(Node(f"base:{origin}", f"base {origin[:12]}", "mmdebstrap"))
            picture.edge("release", f"base:{origin}")
            last = f"base:{origin}"
            if parent and patched is not None:
                if not any(n.key == f"patched:{key}" for n in patched):
                    patched.append(Node(f"patched:{key}", f"base {key[:12]}", "host-patched"))
                picture.edge(last, f"patched:{key}")
                last = f"patched:{key}"
        else:
            ami = str(base.get("ami_id") or base.get("key") or "?")
            if not any(n.key == f"base:{ami}" for n in bases):
                bases.append(Node(f"base:{ami}", ami, str(base.get("name") or "")[:32]))
            picture.edge("release", f"base:{ami}")
            last = f"base:{ami}"
        marked = v.state in ("revoked", "failed")
        note = v.state + (f" · {', '.join(v.channels)}" if v.channels else "")
        versions.append(
            Node(f"v:{v.version}", v.version, note, f"{prefix}{v.version}/index.html", marked)
        )
        picture.edge(last, f"v:{v.version}")
    channels = picture.column("channels")
    for channel, entry in sorted(image.channels.items()):
        current = entry.get("current")
        if only is not None and current != only.version:
            continue
        channels.append(Node(f"c:{channel}", channel, f"→ {current or 'nothing'}"))
        if current:
            picture.edge(f"v:{current}", f"c:{channel}")
    if image.target == "aws":
        regions = picture.column("regions")
        for v in chosen:
            for ami in v.record.get("amis") or []:
                key = f"r:{ami.get('region')}"
                if not any(n.key == key for n in regions):
                    regions.append(Node(key, str(ami.get("region")), "AMI copies"))
                picture.edge(f"v:{v.version}", key)
    if patched is not None and not patched:
        picture.columns = [c for c in picture.columns if c[0] != "patched base"]
    return svg.lineage(picture, f"lineage of {image.name} on {image.target}")


def timeline(image: Image) -> list[dict[str, Any]]:
    """Every channel move, oldest first."""
    moves = []
    for channel, entry in image.channels.items():
        for move in entry.get("history", []):
            moves.append({"channel": channel, **move})
    return sorted(moves, key=lambda m: str(m.get("at", "")))


# ---- writing ------------------------------------------------------------------------------------


def environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["age"] = age
    return env


def write(site: Site, out: Path) -> list[Path]:
    """Render every page into ``out`` (made if missing; pages of an earlier run are
    replaced); returns the pages written. A page whose record or evidence is shaped in a way
    the templates cannot show is written as a page that says so, and named on the overview
    (written last, with every such problem)."""
    import jinja2

    env = environment()
    written: list[Path] = []

    def page(path: str, template: str, make: Callable[[], dict[str, Any]]) -> None:
        depth = path.count("/")
        common = {"site": site, "root": "../" * depth, "now": site.generated}
        try:
            html = env.get_template(template).render(**common, **make())
        except (jinja2.TemplateError, KeyError, TypeError, ValueError, AttributeError) as exc:
            problem = f"{path}: cannot be shown ({type(exc).__name__}: {exc})"
            site.problems.append(problem)
            html = env.get_template("unreadable.html.j2").render(**common, problem=problem)
        dest = out / path
        write_bytes(dest, html.encode())
        written.append(dest)

    page("runs.html", "runs.html.j2", lambda: {"by_run_id": site.by_run_id()})
    for image in site.images:
        page(
            image.href,
            "image.html.j2",
            lambda image=image: {  # type: ignore[misc]
                "image": image,
                "lineage": lineage(image),
                "timeline": timeline(image),
            },
        )
        for i, version in enumerate(image.versions):
            folder = f"{image.target}/{image.name}/{version.version}"
            if version.sbom is not None:
                write_bytes(out / folder / "sbom.cdx.json", version.sbom)

            def values(image: Image = image, i: int = i, version: Version = version) -> Any:
                bars = timings(version)
                return {
                    "image": image,
                    "version": version,
                    "previous": image.versions[i - 1] if i else None,
                    "groups": control_groups(version),
                    "chart": svg.bars(bars, "s", f"phase timings of {version.version}"),
                    "chart_has_bars": bool(bars),
                    "lineage": lineage(image, "../", version),
                }

            page(version.href, "version.html.j2", values)
    page("index.html", "index.html.j2", dict)
    return written


# ---- the command --------------------------------------------------------------------------------


@dataclass
class SiteResult:
    out: Path
    pages: list[Path]
    images: int
    versions: int
    runs: int
    problems: list[str]
    opened: bool | None = None

    @property
    def index(self) -> Path:
        return self.out / "index.html"

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "index": str(self.index),
            "pages": len(self.pages),
            "images": self.images,
            "versions": self.versions,
            "runs": self.runs,
            "problems": self.problems,
        }


MARK = ".bakehouse-report"  # in every site folder: what --out may replace


def build(
    project: Project,
    targets: list[Target],
    out: Path,
    run_roots: list[Path] | None,
    *,
    images: list[str] | None = None,
    pending: bool = True,
    open_browser: bool = False,
) -> SiteResult:
    """Collect and write the site into ``out``: written beside it first, then swapped in, so
    a failure leaves the previous site whole. ``run_roots``: folders of run reports (each must
    be there), or None for the state folder's ``reports/`` (when there is one)."""
    import shutil
    import tempfile
    import webbrowser

    from bakehouse.errors import UsageError
    from bakehouse.lifecycle import definitions

    for root in run_roots or []:
        if not root.is_dir():
            raise UsageError(
                f"--runs {root}: {'not a folder' if root.exists() else 'no such folder'}",
                "name a folder of nightly or deploy reports (what --report was given)",
            )
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder", "name a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARK).is_file():
        raise UsageError(
            f"--out {out}: a folder that holds something other than a report site",
            "name an empty or new folder, or the folder of an earlier report",
        )
    if run_roots is None:
        run_roots = [project.state_dir / "reports"]
    catalog = definitions.catalog(project)
    names = [n for image in images for n in definitions.select(project, image)] if images else None
    specs = [catalog.load(n) for n in names] if names else catalog.load_all()
    site = collect(project, targets, specs, run_roots, pending=pending)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        pages = write(site, staging)
        (staging / MARK).write_text("written by `invoke report`; the next one replaces it\n")
        staging.chmod(0o755)  # a site to publish, not a private temporary folder
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}-old-", dir=out.parent))
        if out.exists():
            out.replace(old)  # the earlier site (checked above to be one) moves aside
        staging.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result = SiteResult(
        out,
        [out / p.relative_to(staging) for p in pages],
        len(site.images),
        sum(len(i.versions) for i in site.images),
        len(site.runs),
        site.problems,
    )
    if open_browser:
        result.opened = webbrowser.open(result.index.resolve().as_uri())
    return result
