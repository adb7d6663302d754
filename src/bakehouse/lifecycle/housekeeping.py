"""Housekeeping on any target: prune old images by retention (never one in use; a dry run
unless told otherwise), and gc of what killed or finished runs left behind."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from bakehouse.errors import UsageError
from bakehouse.runs import KEEP_FAILED, DeadRun, dead, looked_at, remove_dead, to_collect
from bakehouse.spec import ImageSpec
from bakehouse.targets.base import Leftover, PruneItem, Target


@dataclass
class PruneResult:
    image: str
    target: str
    items: list[PruneItem]
    removed: list[str] = field(default_factory=list)
    executed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "target": self.target,
            "executed": self.executed,
            "removed": self.removed,
            "plan": [
                {
                    "where": i.where,
                    "id": i.ident,
                    "version": i.version,
                    "state": i.state,
                    "created": i.created.isoformat(),
                    "action": i.action,
                    "reason": i.reason,
                }
                for i in self.items
            ],
        }


def prune(target: Target, spec: ImageSpec, execute: bool) -> PruneResult:
    items = target.prune_plan(spec, dt.datetime.now(dt.UTC))
    result = PruneResult(spec.name, target.name, items, executed=execute)
    if execute:
        result.removed = target.prune(items)
    return result


@dataclass
class GcResult:
    target: str
    leftovers: list[Leftover]
    removed: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "removed": self.removed,
            "leftovers": [
                {
                    "where": x.where,
                    "kind": x.kind,
                    "id": x.ident,
                    "run_id": x.run_id,
                    "detail": x.detail,
                    "bytes": x.size,
                    "processes": [{"pid": pid, "cmd": cmd[:200]} for pid, cmd in x.handle.processes]
                    if isinstance(x.handle, DeadRun)
                    else [],
                }
                for x in self.leftovers
            ],
        }


def gc(
    target: Target,
    specs: list[ImageSpec],
    execute: bool,
    older_than_hours: int = 6,
    keep_failed: int = KEEP_FAILED,
) -> GcResult:
    """Dead runs on this machine (their folders and processes: Packer, qemu) and failed runs'
    folders beyond the newest ``keep_failed``, then whatever the target keeps elsewhere (cloud
    instances, key pairs, groups, unverified AMIs)."""
    if keep_failed < 0:
        raise UsageError(f"--keep-failed {keep_failed}: a count of runs, 0 or more")
    runs = [
        Leftover(
            "here",
            "failed run" if r.failed is not None and not r.processes else "run",
            r.run_id,
            r.run_id,
            f"failed ({r.failed.get('error', '?')}); "
            + (
                "its files kept to look at (--keep-on-failure)"
                if looked_at(r)
                else f"kept for its logs, older than the newest {keep_failed}"
            )
            if r.failed is not None and not r.processes
            else f"owner pid {r.owner_pid} gone; {len(r.processes)} process(es) still running",
            r.size,
            r,
        )
        for r in to_collect(dead(target.project.state_dir), keep_failed)
    ]
    found = runs + target.leftovers(specs, dt.timedelta(hours=older_than_hours))
    if execute:
        for item in runs:
            remove_dead(item.handle)
        target.collect(found[len(runs) :])
    return GcResult(target.name, found, execute)
