"""What the commands print: tables for people, JSON for pipelines, from one place.

Every lifecycle result has ``to_dict()`` (the JSON) and a text form here. Results go to stdout;
progress and errors go to stderr, so ``--json`` output can be piped.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from bakehouse.errors import printable

if TYPE_CHECKING:
    from bakehouse.lifecycle.bake import BakeResult
    from bakehouse.lifecycle.channels import PublishResult, RevokeResult
    from bakehouse.lifecycle.definitions import Rendered, Validation
    from bakehouse.lifecycle.deploy import DeployResult
    from bakehouse.lifecycle.history import Diff, History, ImageRow
    from bakehouse.lifecycle.housekeeping import GcResult, PruneResult
    from bakehouse.lifecycle.nightly import NightlyPlan, NightlyResult
    from bakehouse.lifecycle.roll import RollResult
    from bakehouse.lifecycle.verify import VerifyResult
    from bakehouse.site import SiteResult
    from bakehouse.spec import ImageSpec

R = TypeVar("R")


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def show(result: R, as_json: bool, text: Callable[[R], str]) -> None:
    """Print ``result`` (or a list of results): ``to_dict()`` as JSON, or its text form."""
    if as_json:
        emit_json([_data(r) for r in result] if isinstance(result, list) else _data(result))
    else:
        sys.stdout.write(printable(text(result).rstrip("\n")) + "\n")


def _data(result: Any) -> Any:
    to_dict = getattr(result, "to_dict", None)
    return to_dict() if to_dict else result


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    return "\n".join(lines)


# ---- definitions ---------------------------------------------------------------------------------


def images(rows: list[ImageRow]) -> str:
    """One line per image, within 100 columns: its release, the newest bake and its state, and
    where its channels point now (a channel on the newest version is named alone). What an
    image extends is in images.show; the target is the one listed (--target)."""
    body = []
    for r in rows:
        version = r.newest["version"] if r.newest else None
        channels = [c if v == version else f"{c}={v}" for c, v in r.channels.items() if v]
        state = r.newest["state"] if r.newest else "-"
        body.append([r.name, r.release, version or "-", state, " ".join(channels) or "-"])
    return table(body, ["IMAGE", "RELEASE", "NEWEST", "STATE", "CHANNELS"])


SIZES = ("disk_size", "data_disk_size", "memory")  # MiB inside; written as 4G or 512M


def size(mib: int) -> str:
    return f"{mib // 1024}G" if mib % 1024 == 0 else f"{mib}M"


def definition(spec: ImageSpec) -> str:
    """The resolved definition as YAML, written the way a definition writes it (sizes as 4G);
    --json keeps the numbers (MiB)."""
    import yaml

    def written(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: size(v) if k in SIZES and isinstance(v, int) else written(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [written(v) for v in value]
        return value

    data = written(spec.to_dict())
    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


def rendered(results: list[Rendered]) -> str:
    return "\n".join(
        f"{r.image}/{r.target}: {r.shown} ({'written' if r.changed else 'unchanged'})"
        for r in results
    )


def validation(results: list[Validation]) -> str:
    """The ok lines (stdout); the failures go to stderr."""
    lines, errors = [], []
    for v in results:
        if v.error is not None:
            errors.append(f"FAIL {v.image}: {v.error.render()}")
        for r in v.rendered:
            if r.problems:
                errors.append(f"FAIL {v.image}/{r.target}:\n  " + "\n  ".join(r.problems))
            else:
                lines.append(f"ok   {v.image}/{r.target} ({v.checked})")
    if errors:
        print(printable("\n".join(errors)), file=sys.stderr)
    return "\n".join(lines)


def exit_for(results: list[Validation]) -> None:
    """Exit 2 when a definition is bad, 1 when only Packer's checks failed."""
    from invoke.exceptions import Exit

    from bakehouse.errors import EXIT_FAILED, EXIT_USAGE

    if any(v.error for v in results):
        raise Exit(code=EXIT_USAGE)
    if not all(v.ok for v in results):
        raise Exit(code=EXIT_FAILED)


# ---- bake, verify, publish, revoke ---------------------------------------------------------------


def bake(r: BakeResult) -> str:
    record = r.record
    where = " ".join(r.where)
    channels = f", channels {', '.join(r.channels)}" if r.channels else ""
    return f"{record['id']}: {record['state']} on {r.target}{channels}" + (
        f"\n{where}" if where else ""
    )


def verify(r: VerifyResult) -> str:
    s = r.verified.summary
    lines = [
        f"{'passed' if r.ok else 'FAILED'}: {r.image} {r.what} on {r.target}: "
        f"{s.get('passed', 0)} passed, {s.get('failed', 0)} failed, "
        f"{s.get('error', 0)} could not be judged, {s.get('waived', 0)} waived, "
        f"{s.get('skipped', 0)} not applicable"
    ]
    lines += [
        f"  {'failed' if c['outcome'] == 'failed' else 'not judged'}: {c['id']}"
        + ("" if c["outcome"] == "failed" else f" ({c['message'][:160]})")
        for c in r.verified.controls
        if c["outcome"] in ("failed", "error")
    ]
    return "\n".join(lines)


def publish(r: PublishResult) -> str:
    lines = [f"{r.record['id']}: {r.record['state']} on {r.target}"]
    lines += [f"  {m.channel}: {m.before or '-'} → {m.after}" for m in r.moves]
    return "\n".join(lines)


def revoke(r: RevokeResult) -> str:
    head = "would revoke" if r.dry_run else "revoked"
    lines = [f"{head} {r.subject or r.record['id']} on {r.target}: {r.reason}"]
    for m in r.moves:
        after = m.after or "removed (no earlier verified version)"
        lines.append(f"  channel {m.channel}: {m.before} → {after}")
    if not r.moves and not r.subject:
        lines.append("  no channel points at it")
    lines += [f"  {n}" for n in r.notes]
    if r.dry_run:
        lines.append("dry run: nothing changed")
    return "\n".join(lines)


# ---- history -------------------------------------------------------------------------------------


def history(h: History) -> str:
    if not h.records:
        return f"no baked versions of {h.image} on the {h.target} target yet"
    rows = []
    for r in h.records:
        s = r.get("verify", {}).get("summary", {})
        base = str(r.get("base", {}).get("id") or r.get("base", {}).get("key", ""))
        rows.append(
            [
                r["version"],
                r["state"],
                base[:13],  # base-<8 of the key>, or an AMI id's start: --json has it whole
                f"{s.get('passed', 0)}/{s.get('failed', 0)}/{s.get('waived', 0)}",
                " ".join(r.get("channels", [])) or "-",
                str(r["created"])[:16].replace("T", " "),  # UTC, to the minute
            ]
        )
    out = [
        f"{h.image} on {h.target}",
        table(rows, ["VERSION", "STATE", "BASE", "PASS/FAIL/WAIVED", "CHANNELS", "CREATED (UTC)"]),
    ]
    for r in h.records:
        if r.get("revoked"):
            rv = r["revoked"]
            out.append(f"\nrevoked {r['version']} at {rv['at']} by {rv['by']}: {rv['reason']}")
    for roll in h.rolls:
        out.append(
            f"\nroll {roll['at']} by {roll['by']}: {roll.get('version', '')} channel "
            f"{roll['channel']}: {roll.get('outcome')}"
        )
        for g in roll.get("groups", []):
            after = f"v{g['after']}" if g.get("after") else "-"
            out.append(
                f"  {g['region']}/{g['group']}: v{g['before']} -> {after}  {g.get('outcome')}"
            )
    for name, entry in sorted(h.channels.items()):
        out.append(f"\nchannel {name}: now {entry['current']}")
        for e in entry.get("history", []):
            out.append(f"  {e['at']}  {e.get('previous') or '-'} → {e['version']}  by {e['by']}")
    return "\n".join(out)


def diff(d: Diff) -> str:
    head = f"{d.image} on {d.target}: {d.old} -> {d.new}: {len(d.changes)} change(s)"
    if not d.changes:
        return head
    rows = [
        [c.name, c.kind, c.old or "", c.new or "", "yes" if c.security else ""] for c in d.changes
    ]
    return head + "\n" + table(rows, ["PACKAGE", "CHANGE", "FROM", "TO", "SECURITY"])


# ---- nightly, deploy, roll -----------------------------------------------------------------------


def nightly(r: NightlyResult) -> str:
    rows = []
    for o in r.outcomes:
        d = o.decision
        result = ("ok" if o.ok else "FAILED") if o.ran else ("-" if r.dry_run else "skipped")
        rows.append(
            [
                d.image,
                "bake" if d.bake else "skip",
                d.reason,
                str(d.pending),
                str(d.security),
                result,
                f"{o.seconds:.0f}s" if o.ran else "",
            ]
        )
    lines = [
        f"nightly on the {r.target} target" + (" (dry run: nothing baked)" if r.dry_run else ""),
        table(rows, ["IMAGE", "DECISION", "REASON", "PENDING", "SECURITY", "RESULT", "TIME"]),
    ]
    lines += [f"note: {n}" for n in sorted({n for o in r.outcomes for n in o.decision.notes})]
    if r.reports:
        lines.append(f"reports: {r.reports}")
    return "\n".join(lines)


def plan(p: NightlyPlan) -> str:
    rows = [[d.image, "bake" if d.bake else "skip", d.reason] for d in p.decisions]
    bakes = sum(d.bake for d in p.decisions)
    head = f"nightly plan on the {p.target} target: {bakes} image(s) to bake"
    return "\n".join([head, table(rows, ["IMAGE", "DECISION", "REASON"])])


def deploy(r: DeployResult) -> str:
    lines = [f"deploy {r.image} on {r.target} -> {r.channel}"]
    lines += [
        f"  {s['step']}: {'ok' if s['ok'] else 'FAILED'}  {s.get('detail', '')}" for s in r.steps
    ]
    if r.record:
        lines.append(f"{r.record.get('id')}: {r.record.get('state')}")
    return "\n".join(lines)


def roll(r: RollResult) -> str:
    if r.outcome.skipped:
        return f"{r.record['id']} on channel {r.channel}: {r.outcome.skipped}"
    if r.dry_run:
        return roll_plan(r)
    rows = [
        [
            g["region"],
            g["group"],
            f"v{g['before']}",
            f"v{g['after']}" if g.get("after") else "-",
            g["outcome"],
        ]
        for g in r.outcome.groups
    ]
    return table(rows, ["REGION", "GROUP", "BEFORE", "AFTER", "OUTCOME"])


def roll_plan(r: RollResult) -> str:
    rows = [
        [
            str(p["wave"]),
            p["region"],
            p["group"],
            f"{p['launch_template']} v{p['current_version']} ({p['group_points_at']})",
            ",".join(p["current_amis"]) or "-",
            str(p["instances"]),
            f"v{p['new_version']} {p['new_image']}",
            f"v{p['current_version']}",
        ]
        for p in r.outcome.plans
    ]
    header = ["WAVE", "REGION", "GROUP", "LAUNCH TEMPLATE", "RUNNING AMIS", "INSTANCES", "NEW"]
    lines = [table(rows, [*header, "ROLLBACK TO"])]
    for wave in sorted({p["wave"] for p in r.outcome.plans}):
        prefs = next(p["preferences"] for p in r.outcome.plans if p["wave"] == wave)
        lines.append(f"wave {wave} preferences: {json.dumps(prefs, sort_keys=True)}")
    lines.append("dry run: nothing changed")
    return "\n".join(lines)


# ---- housekeeping --------------------------------------------------------------------------------


def prune(r: PruneResult) -> str:
    if not r.items:
        return f"no images of {r.image} on the {r.target} target"
    rows = [
        [i.where, i.ident, i.version, i.state, i.created.date().isoformat(), i.action, i.reason]
        for i in r.items
    ]
    lines = [table(rows, ["WHERE", "ID", "VERSION", "STATE", "CREATED", "ACTION", "WHY"])]
    if r.executed:
        lines.append(f"pruned {len(r.removed)} image(s)")
    elif any(i.action == "delete" for i in r.items):
        lines.append("dry run: nothing removed; run again with --yes")
    return "\n".join(lines)


def gc(r: GcResult) -> str:
    if not r.leftovers:
        return "nothing to collect"
    rows = [
        [x.where, x.kind, x.ident, f"{x.size / 2**20:.0f} MiB" if x.size else "-"]
        for x in r.leftovers
    ]
    shown = table(rows, ["WHERE", "KIND", "ID", "SIZE"]).splitlines()
    lines = shown[:1]
    for line, x in zip(shown[1:], r.leftovers, strict=True):
        # what it is and why it is here, under it: the table stays within 100 columns
        why = x.detail + (f" (run {x.run_id})" if x.run_id and x.run_id != x.ident else "")
        lines += [line, f"    {why}" if len(why) <= 96 else f"    {why[:95]}…"]
    if r.removed:
        lines.append(f"removed {len(r.leftovers)} leftover(s)")
    else:
        lines.append(
            f"dry run: nothing removed; run `invoke gc --target {r.target} --yes` to remove"
        )
    return "\n".join(lines)


def site(r: SiteResult) -> str:
    lines = [
        f"report: {r.images} image(s), {r.versions} version(s), {r.runs} run(s): "
        f"{len(r.pages)} pages in {r.out}",
        f"open {r.index.resolve().as_uri()}",
    ]
    lines += [f"could not read: {p}" for p in r.problems]
    if r.opened is False:
        lines.append("no browser could be started here: open the file above yourself")
    return "\n".join(lines)


def trust(result: dict[str, Any]) -> str:
    paths = result["documents"]
    if not paths:
        return "trust: every document in the state folder carries this machine's seal"
    verb = "sealed" if result["sealed"] else "not sealed (check them, then --yes seals them)"
    return "\n".join([f"trust: {len(paths)} document(s) {verb}:", *paths])
