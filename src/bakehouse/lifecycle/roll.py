"""Roll a fleet onto the image a channel delivers, on any target that has fleets.

The rule is here, once: only a published image is rolled out — never a revoked, failed or
unverified one, whatever the channel says (the aws target checks the AMIs' own tags as well).
Every roll that changes something is recorded (who, when, image, groups, versions before and
after, outcome), also when it fails or is interrupted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from bakehouse.catalogue import Record
from bakehouse.errors import BakehouseError, Terminated, UsageError
from bakehouse.lifecycle import who
from bakehouse.runs import terminate_as_exception
from bakehouse.spec import ImageSpec
from bakehouse.targets.base import RollOutcome, Say, Target


@dataclass
class RollResult:
    image: str
    target: str
    channel: str
    record: Record
    outcome: RollOutcome
    dry_run: bool

    @property
    def ok(self) -> bool:
        return self.outcome.ok

    def summary(self) -> str:
        groups = self.outcome.groups
        done = sum(g.get("outcome") == "updated" for g in groups)
        return f"{done}/{len(groups)} group(s) on {self.record['id']}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "target": self.target,
            "channel": self.channel,
            "version": self.record["version"],
            "dry_run": self.dry_run,
            "ok": self.ok,
            "skipped": self.outcome.skipped or None,
            "plan": self.outcome.plans,
            "groups": self.outcome.groups,
        }


def rollable(target: Target, spec: ImageSpec, channel: str) -> Record:
    """The record the channel delivers, if it may be rolled out."""
    current = target.channels(spec).get(channel, {}).get("current")
    if current is None:
        raise UsageError(
            f"channel {channel} of {spec.name} delivers nothing on the {target.name} target",
            f"publish a verified image: invoke publish --image {spec.name} --channel {channel} "
            f"--target {target.name}",
        )
    record = target.catalogue.image(spec.name, str(current))
    if record["state"] != "published":
        why = (record.get("revoked") or {}).get("reason")
        raise UsageError(
            f"{record['id']} is {record['state']}"
            + (f" ({why})" if why else "")
            + "; only published images are rolled out",
            "publish a verified version to the channel first",
        )
    return record


def roll(
    target: Target,
    spec: ImageSpec,
    channel: str | None,
    *,
    dry_run: bool,
    wait: bool,
    say: Say,
) -> RollResult:
    chan = channel or spec.publish.channels[0]
    record = rollable(target, spec, chan)
    entry: dict[str, Any] = {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "by": who(),
        "image": spec.name,
        "version": record["version"],
        "channel": chan,
    }
    # SIGTERM (a cancelled CI job) rolls back like Ctrl-C; the record is written inside the
    # handler's block too, so a second signal cannot stop it being written
    with terminate_as_exception():
        try:
            outcome = target.roll(spec, chan, record, dry_run=dry_run, wait=wait, say=say)
        except (KeyboardInterrupt, Terminated) as exc:
            if not dry_run:
                why = "" if isinstance(exc, KeyboardInterrupt) else f" ({exc.message})"
                target.catalogue.add_roll(spec.name, entry | {"outcome": f"interrupted{why}"})
            raise
        except BakehouseError as exc:
            if not dry_run:
                error = {"outcome": f"error: {exc.message}"}
                target.catalogue.add_roll(spec.name, entry | error)
            raise
    if not dry_run and not outcome.skipped:
        entry |= {"groups": outcome.groups, "outcome": "success" if outcome.ok else "failed"}
        target.catalogue.add_roll(spec.name, entry | outcome.record)
    return RollResult(spec.name, target.name, chan, record, outcome, dry_run)
