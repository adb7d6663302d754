"""Bake reports: JSON for machines, Markdown for people (pasted into a pipeline summary)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def markdown(report: dict[str, Any]) -> str:
    v = report.get("verify", {})
    summary = v.get("summary", {})
    accel = report.get("accelerator", {})
    base = report.get("base", {})
    lines = [
        f"# {report['image']} {report['version']}: {report['state']}",
        "",
        f"- target: {report['target']} (accelerator: {accel.get('accelerator')} — "
        f"{accel.get('reason', '')})",
        f"- run: `{report['run_id']}`, git commit `{report.get('git_commit')}`",
        f"- base: `{base.get('id')}` (kernel {base.get('kernel')})",
        f"- fingerprint: `{report.get('fingerprint')}`",
        f"- packages: {report.get('packages')}, kernel {report.get('kernel')}",
        f"- controls: {summary.get('passed', 0)} passed, {summary.get('failed', 0)} failed, "
        f"{summary.get('waived', 0)} waived, {summary.get('skipped', 0)} not applicable",
        "",
        "## Timings (s)",
        "",
        "| phase | seconds |",
        "|---|---:|",
    ]
    lines += [f"| {k} | {v:.1f} |" for k, v in report.get("timings", {}).items()]
    failed = [c for c in v.get("controls", []) if c["outcome"] == "failed"]
    waived = [c for c in v.get("controls", []) if c["outcome"] == "waived"]
    if failed:
        lines += [
            "",
            "## Failed controls",
            "",
            "| id | title | reference | detail |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {c['id']} | {c['title']} | {c['reference']} | "
            f"{c['message'].splitlines()[0] if c['message'] else ''} |"
            for c in failed
        ]
    if waived:
        lines += ["", "## Waived controls", "", "| id | title | reason |", "|---|---|---|"]
        lines += [
            f"| {c['id']} | {c['title']} | {c['message'].removeprefix('waived: ')} |"
            for c in waived
        ]
    diff = report.get("diff") or {}
    if diff.get("against"):
        changes = diff.get("changes", [])
        lines += ["", f"## Package changes since {diff['against']}", ""]
        if changes:
            lines += ["| package | change | from | to | security |", "|---|---|---|---|---|"]
            lines += [
                f"| {c['name']} | {c['change']} | {c['from'] or ''} | {c['to'] or ''} | "
                f"{'yes' if c['security'] else ''} |"
                for c in changes
            ]
        else:
            lines.append("No package changes.")
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    js = folder / "report.json"
    md = folder / "report.md"
    js.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    md.write_text(markdown(report))
    return js, md
