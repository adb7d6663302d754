"""The CIS benchmark table: which control checks each recommendation, or why none does.

``cis-debian-12.yaml`` lists every automated Level 1 - Server recommendation of the CIS Debian
Linux 12 Benchmark with the controls that check it, or a waiver, or why it does not apply, or
what is still missing. The suite uses it to report compliance per recommendation and per
section; ``python -m tests.hardening.cis`` renders docs/cis-debian-12.md from it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

TABLE = Path(__file__).with_name("cis-debian-12.yaml")
DOC = Path(__file__).resolve().parents[2] / "docs" / "cis-debian-12.md"
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
    profile: str
    sections: dict[str, str]
    recommendations: tuple[Recommendation, ...]
    manual: tuple[Recommendation, ...] = ()  # manual ones an image settles (not counted)

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
        data["profile"],
        dict(data["sections"]),
        tuple(_recommendation(path, e) for e in data["recommendations"]),
        tuple(_recommendation(path, e) for e in data.get("manual", [])),
    )


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
        "<!-- rendered from tests/hardening/cis-debian-12.yaml by "
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


if __name__ == "__main__":
    DOC.write_text(render(load()))
    sys.stdout.write(f"wrote {DOC}\n")
