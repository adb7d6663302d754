"""The one report writer: every report bakehouse leaves (a bake, a nightly run, a deploy) is
written as JSON for machines, Markdown for people (pasted into a pipeline's summary) and JUnit
for CI test views, from one :class:`Report`. The builders below turn plain data into reports;
they know nothing of targets or lifecycle steps."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# quoteattr escapes the XML this module writes; nothing is parsed here (B406 does not apply)
from xml.sax.saxutils import quoteattr  # nosec B406

from bakehouse.files import dumps


@dataclass(frozen=True)
class Case:
    """One JUnit test case: a control, a nightly image, a deploy step."""

    name: str
    outcome: str  # passed | failed | skipped
    message: str = ""
    seconds: float = 0.0
    classname: str = "bakehouse"


@dataclass
class Report:
    stem: str  # file names: <stem>.json, <stem>.md, <stem>.junit.xml
    suite: str  # the JUnit test suite's name
    data: Any
    markdown: str
    cases: list[Case] = field(default_factory=list)


_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9, 10, 13))


def _xml_text(text: str) -> str:
    """Characters XML 1.0 cannot hold (terminal colour codes in a log tail) dropped."""
    return text.translate(_CONTROL)


def junit(suite: str, cases: list[Case]) -> str:
    failures = sum(c.outcome == "failed" for c in cases)
    skipped = sum(c.outcome == "skipped" for c in cases)
    body = []
    for c in cases:
        inner = ""
        if c.outcome == "failed":
            inner = f"<failure message={quoteattr(_xml_text(c.message))}/>"
        elif c.outcome == "skipped":
            inner = f"<skipped message={quoteattr(_xml_text(c.message))}/>"
        body.append(
            f"<testcase classname={quoteattr(_xml_text(c.classname))} "
            f"name={quoteattr(_xml_text(c.name))} "
            f'time="{c.seconds:.1f}">{inner}</testcase>'
        )
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name={quoteattr(suite)} '
        f'tests="{len(cases)}" failures="{failures}" skipped="{skipped}">'
        + "".join(body)
        + "</testsuite>\n"
    )


def write(report: Report, folder: Path) -> dict[str, Path]:
    """Write the three files into ``folder``; returns them by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": folder / f"{report.stem}.json",
        "markdown": folder / f"{report.stem}.md",
        "junit": folder / f"{report.stem}.junit.xml",
    }
    paths["json"].write_text(dumps(report.data))
    paths["markdown"].write_text(report.markdown)
    paths["junit"].write_text(junit(report.suite, report.cases))
    return paths


def _cell(text: Any) -> str:
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


# ---- a bake --------------------------------------------------------------------------------------


def bake(data: dict[str, Any]) -> Report:
    """``data``: the bake report (image, version, state, target, base, verify controls, diff…)."""
    v = data.get("verify", {})
    summary = v.get("summary", {})
    base = data.get("base", {})
    lines = [
        f"# {data['image']} {data['version']}: {data['state']}",
        "",
        f"- target: {data['target']}"
        + (f" ({', '.join(data['where'])})" if data.get("where") else ""),
        f"- run: `{data['run_id']}`, git commit `{data.get('git_commit')}`",
        f"- base: `{base.get('id') or base.get('key')}`",
        f"- fingerprint: `{data.get('fingerprint')}`",
        f"- packages: {data.get('packages')}, kernel {data.get('kernel')}",
        f"- controls: {summary.get('passed', 0)} passed, {summary.get('failed', 0)} failed, "
        f"{summary.get('error', 0)} could not be judged, "
        f"{summary.get('waived', 0)} waived, {summary.get('skipped', 0)} not applicable",
    ]
    if v.get("error"):
        lines.append(f"- verification did not finish: {_cell(v['error'])}")
    lines += compliance_table(v.get("compliance") or {})
    lines += ["", "## Timings (s)", "", "| phase | seconds |", "|---|---:|"]
    lines += [f"| {k} | {s:.1f} |" for k, s in data.get("timings", {}).items()]
    controls = v.get("controls", [])
    failed = [c for c in controls if c["outcome"] in ("failed", "error")]
    waived = [c for c in controls if c["outcome"] == "waived"]
    if failed:
        lines += ["", "## Failed controls", "", "| id | title | reference | outcome | detail |"]
        lines += ["|---|---|---|---|---|"]
        lines += [
            f"| {c['id']} | {_cell(c['title'])} | {_cell(c['reference'])} | "
            f"{'failed' if c['outcome'] == 'failed' else 'not judged (fact unreadable)'} | "
            f"{_cell(c['message'].splitlines()[0] if c['message'] else '')} |"
            for c in failed
        ]
    if waived:
        lines += ["", "## Waived controls", "", "| id | title | reason |", "|---|---|---|"]
        lines += [
            f"| {c['id']} | {_cell(c['title'])} | {_cell(c['message'].removeprefix('waived: '))} |"
            for c in waived
        ]
    diff = data.get("diff") or {}
    if diff.get("against"):
        lines += ["", f"## Package changes since {diff['against']}", ""]
        lines += changes_table(diff.get("changes", []))
    cases = [
        Case(
            c["id"],
            "failed" if c["outcome"] in ("failed", "error") else "passed",
            c.get("message", ""),
            classname=f"hardening.{c.get('reference') or 'bakehouse'}",
        )
        if c["outcome"] in ("passed", "failed", "error")
        else Case(c["id"], "skipped", c.get("message", ""), classname="hardening")
        for c in controls
    ]
    return Report("report", f"bakehouse-bake-{data['image']}", data, "\n".join(lines) + "\n", cases)


def compliance_table(compliance: dict[str, Any]) -> list[str]:
    """The CIS benchmark, section by section: how many recommendations passed, failed, are
    waived, do not apply, or are not covered (the per-recommendation list is compliance.json)."""
    sections = compliance.get("sections") or []
    if not sections:
        return []
    keys = ("passed", "failed", "waived", "not applicable", "not covered")
    lines = [
        "",
        f"## {compliance.get('benchmark')}, {compliance.get('profile')}",
        "",
        "| section | " + " | ".join(keys) + " |",
        "|---|" + "---:|" * len(keys),
    ]
    totals = dict.fromkeys(keys, 0)
    for s in sections:
        for k in keys:
            totals[k] += int(s.get(k, 0))
        cells = " | ".join(str(s.get(k, 0)) for k in keys)
        lines.append(f"| {s['section']} {_cell(str(s.get('title', '')))} | {cells} |")
    lines.append("| **all** | " + " | ".join(f"**{totals[k]}**" for k in keys) + " |")
    return lines


def changes_table(changes: list[dict[str, Any]]) -> list[str]:
    if not changes:
        return ["No package changes."]
    lines = ["| package | change | from | to | security |", "|---|---|---|---|---|"]
    lines += [
        f"| {c['name']} | {c['change']} | {c['from'] or ''} | {c['to'] or ''} | "
        f"{'yes' if c['security'] else ''} |"
        for c in changes
    ]
    return lines


# ---- a nightly run -------------------------------------------------------------------------------


def nightly(rows: list[dict[str, Any]], target: str, when: dt.datetime) -> Report:
    """``rows``: one per image: the decision (image, bake, reason, …) and the outcome (ran, ok,
    seconds, result, log, run_id). The JSON names its kind, target and time, so a folder of
    reports can be read back (the report site)."""
    lines = [
        f"## bakehouse nightly ({target}) {when:%Y-%m-%d %H:%M} UTC",
        "",
        "| image | decision | reason | result | time |",
        "|---|---|---|---|---:|",
    ]
    cases = []
    for r in rows:
        result = ("ok" if r["ok"] else "FAILED") if r["ran"] else "skipped"
        lines.append(
            f"| {r['image']} | {'bake' if r['bake'] else 'skip'} | {_cell(r['reason'])} | "
            f"{result} | {r['seconds']:.0f}s |"
        )
        if r["ran"]:
            outcome, message = ("passed", "") if r["ok"] else ("failed", r["result"])
        else:
            outcome, message = "skipped", r["reason"]
        cases.append(Case(r["image"], outcome, message, r["seconds"], classname="nightly"))
    data = {"kind": "nightly", "target": target, "at": when.isoformat(), "images": rows}
    return Report("nightly", "bakehouse-nightly", data, "\n".join(lines) + "\n", cases)


# ---- a deploy ------------------------------------------------------------------------------------


def deploy(data: dict[str, Any]) -> Report:
    """``data``: image, target, channel, steps [{step, ok, detail}], version, state, where."""
    lines = [
        f"## bakehouse deploy: {data['image']} ({data['target']}) -> {data['channel']}",
        "",
        "| step | result | detail |",
        "|---|---|---|",
    ]
    lines += [
        f"| {s['step']} | {'ok' if s['ok'] else 'FAILED'} | {_cell(s.get('detail', ''))} |"
        for s in data["steps"]
    ]
    if data.get("version"):
        lines += ["", f"image `{data['image']}-{data['version']}`: {data.get('state')}"]
    cases = [
        Case(s["step"], "passed" if s["ok"] else "failed", str(s.get("detail", "")), 0.0, "deploy")
        for s in data["steps"]
    ]
    return Report("deploy", "bakehouse-deploy", data, "\n".join(lines) + "\n", cases)
