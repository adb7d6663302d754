"""The CIS benchmark tables: which control checks each recommendation, or why none does.

Each ``cis-*.yaml`` here lists every automated Level 1 - Server recommendation of one CIS
benchmark with the controls that check it, or a waiver, or why it does not apply, or what is
still missing, and names the releases it is reported for (``reports``: Debian 13 against the
Debian 12 benchmark, as CIS has published none for it yet). The suite reports compliance per
recommendation and per section against the table of the image's release (from bakehouse's
context; the Debian 12 one standalone); ``python -m tests.hardening.cis`` renders each table
into docs/.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
TABLE = HERE / "cis-debian-12.yaml"  # standalone (no context naming the release)
DOCS = Path(__file__).resolve().parents[2] / "docs"
KINDS = ("controls", "waived", "not_applicable", "missing")
STATUSES = ("passed", "failed", "waived", "not applicable", "not covered")


@dataclass(frozen=True)
class Recommendation:
    id: str
    title: str
    controls: tuple[str, ...]
    kind: str  # one of KINDS
    reason: str

    @property
    def section(self) -> str:
        return self.id.split(".")[0]


@dataclass(frozen=True)
class Benchmark:
    name: str
    short: str  # "CIS Debian 12": the prefix of a control's reference
    reports: tuple[str, ...]  # the releases judged against it ("debian-12", "ubuntu-24.04")
    path: Path
    profile: str
    sections: dict[str, str]
    recommendations: tuple[Recommendation, ...]
    manual: tuple[Recommendation, ...] = ()  # manual ones an image settles (not counted)

    @property
    def doc(self) -> Path:
        return DOCS / self.path.with_suffix(".md").name

    def by_control(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for rec in (*self.recommendations, *self.manual):
            for control in rec.controls:
                out.setdefault(control, []).append(rec.id)
        return out


def _recommendation(path: Path, entry: dict[str, Any]) -> Recommendation:
    kinds = [k for k in KINDS if k in entry]
    if len(kinds) != 1:
        raise ValueError(f"{path}: {entry.get('id')}: needs exactly one of {', '.join(KINDS)}")
    kind = kinds[0]
    controls = tuple(entry["controls"]) if kind == "controls" else ()
    reason = "" if kind == "controls" else str(entry[kind])
    return Recommendation(str(entry["id"]), entry["title"], controls, kind, reason)


def load(path: Path = TABLE) -> Benchmark:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return Benchmark(
        data["benchmark"],
        data["short"],
        tuple(data["reports"]),
        path,
        data["profile"],
        dict(data["sections"]),
        tuple(_recommendation(path, e) for e in data["recommendations"]),
        tuple(_recommendation(path, e) for e in data.get("manual", [])),
    )


def tables() -> list[Benchmark]:
    return [load(p) for p in sorted(HERE.glob("cis-*.yaml"))]


def for_release(release: str) -> Benchmark:
    """The table a release (``family-version``) is reported against; a release no table names
    is an error, never a silent fallback to another distribution's benchmark."""
    found = [t for t in tables() if release in t.reports]
    if len(found) != 1:
        known = sorted(r for t in tables() for r in t.reports)
        raise LookupError(
            f"{len(found)} CIS tables report release {release!r} (one must; known: "
            f"{', '.join(known)})"
        )
    return found[0]


def status(rec: Recommendation, outcomes: dict[str, str]) -> str:
    """A recommendation's status from its controls' outcomes (passed, failed, error, waived,
    skipped); a control that did not run leaves it failed: nothing is assumed."""
    if rec.kind == "waived":
        return "waived"
    if rec.kind == "not_applicable":
        return "not applicable"
    if rec.kind == "missing":
        return "not covered"
    seen = [outcomes.get(c, "not run") for c in rec.controls]
    if any(o not in ("passed", "skipped", "waived") for o in seen):
        return "failed"
    if all(o == "skipped" for o in seen):
        return "not applicable"
    if any(o == "waived" for o in seen):
        return "waived"
    return "passed"


def compliance(benchmark: Benchmark, outcomes: dict[str, str]) -> dict[str, Any]:
    """Per recommendation and per section, for the evidence and the bake report."""
    rows = []
    sections: dict[str, dict[str, int]] = {}
    for rec in benchmark.recommendations:
        state = status(rec, outcomes)
        rows.append(
            {
                "id": rec.id,
                "title": rec.title,
                "status": state,
                "controls": list(rec.controls),
                "reason": rec.reason,
            }
        )
        counts = sections.setdefault(rec.section, dict.fromkeys(STATUSES, 0))
        counts[state] += 1
    return {
        "benchmark": benchmark.name,
        "profile": benchmark.profile,
        "sections": [
            {"section": s, "title": benchmark.sections[s], **counts}
            for s, counts in sorted(sections.items(), key=lambda x: int(x[0]))
        ],
        "recommendations": rows,
    }


def _how(rec: Recommendation) -> str:
    if rec.kind == "controls":
        return ", ".join(f"`{c}`" for c in rec.controls)
    label = {"waived": "waived", "not_applicable": "not applicable"}
    return f"{label.get(rec.kind, 'not covered')}: {rec.reason}".replace("|", "/")


def render(benchmark: Benchmark) -> str:
    kinds = {"controls": 0, "waived": 0, "not_applicable": 0, "missing": 0}
    for rec in benchmark.recommendations:
        kinds[rec.kind] += 1
    lines = [
        f"# {benchmark.name}: {benchmark.profile} coverage",
        "",
        f"<!-- rendered from tests/hardening/{benchmark.path.name} by "
        "`python -m tests.hardening.cis`; edit that file, not this one -->",
        "",
        "Every automated Level 1 - Server recommendation of the benchmark, and how a bakehouse "
        "image settles it: the hardening controls that check it on every bake (ids as in the "
        "bake report and the JUnit file), or a waiver with its reason, or why it does not apply, "
        "or what is not built yet. A recommendation passes only when every control listed for "
        "it passes; the bake report counts them per section.",
        "",
        f"{len(benchmark.recommendations)} recommendations: {kinds['controls']} checked by "
        f"controls, {kinds['waived']} waived, {kinds['not_applicable']} not applicable, "
        f"{kinds['missing']} not covered yet.",
        "",
        f"Images of {_titles(benchmark.reports)} are reported against it.",
    ]
    for section, title in sorted(benchmark.sections.items(), key=lambda x: int(x[0])):
        lines += ["", f"## {section} {title}", "", "| id | recommendation | bakehouse |"]
        lines += ["|---|---|---|"]
        for rec in benchmark.recommendations:
            if rec.section != section:
                continue
            lines.append(f"| {rec.id} | {rec.title} | {_how(rec)} |")
    if benchmark.manual:
        lines += [
            "",
            "## Manual recommendations an image settles",
            "",
            "Not counted above (the benchmark leaves them to an auditor's judgement).",
            "",
            "| id | recommendation | bakehouse |",
            "|---|---|---|",
        ]
        lines += [f"| {r.id} | {r.title} | {_how(r)} |" for r in benchmark.manual]
    return "\n".join(lines) + "\n"


def _titles(releases: tuple[str, ...]) -> str:
    names = [f"{r.split('-', 1)[0].capitalize()} {r.split('-', 1)[1]}" for r in releases]
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


if __name__ == "__main__":
    for table in tables():
        table.doc.write_text(render(table))
        sys.stdout.write(f"wrote {table.doc}\n")
