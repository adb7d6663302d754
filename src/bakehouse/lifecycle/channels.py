"""Channels and states on any target: publish (point channels at a verified image, e.g. promote
``latest`` to ``stable`` without a bake) and revoke (take a bad image back).

The rules are here, once; the target only carries them out (a channels file, SSM parameters):

- only a verified (or already published) image is pointed at; the target's own path checks
  again on its side (the aws target reads the AMIs' state tags);
- a revoked image is marked (state, reason, who, when; the target adds its own marks: tags,
  deprecation), every channel that points at it moves back to the newest earlier verified
  version — or is removed when there is none, since nothing revoked may stay deliverable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bakehouse.catalogue import USABLE, Record, now_iso
from bakehouse.errors import UsageError
from bakehouse.lifecycle import who
from bakehouse.names import check_flag
from bakehouse.spec import ImageSpec
from bakehouse.targets.base import Target


@dataclass
class Move:
    channel: str
    before: str | None
    after: str | None


@dataclass
class PublishResult:
    record: Record
    target: str
    moves: list[Move] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.record["name"],
            "version": self.record["version"],
            "target": self.target,
            "state": self.record["state"],
            "channels": [m.__dict__ for m in self.moves],
        }


@dataclass
class RevokeResult:
    record: Record
    target: str
    reason: str
    moves: list[Move]
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False
    subject: str = ""  # what is revoked: the image version, or its base

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.record["name"],
            "version": self.record["version"],
            "revoked": self.subject or self.record["id"],
            "target": self.target,
            "state": self.record["state"],
            "reason": self.reason,
            "channels": [m.__dict__ for m in self.moves],
            "notes": self.notes,
            "dry_run": self.dry_run,
        }


def check_channels(channels: list[str]) -> None:
    if not channels:
        raise UsageError("say which channel(s): --channel stable", "repeat --channel for more")
    check_flag("channel", channels)


def publish(
    target: Target, spec: ImageSpec, channels: list[str], version: str | None = None
) -> PublishResult:
    """Point ``channels`` at ``version`` (default: the newest verified one), without a bake."""
    check_channels(channels)
    if version is None:
        record = target.catalogue.latest(spec.name, USABLE)
        if record is None:
            raise UsageError(
                f"no verified version of {spec.name} on the {target.name} target to publish",
                f"bake one: invoke bake --image {spec.name} --target {target.name}",
            )
    else:
        record = target.catalogue.image(spec.name, version)
    return point(target, spec, record, channels)


def point(target: Target, spec: ImageSpec, record: Record, channels: list[str]) -> PublishResult:
    """The publish rule, then the target's change, then the record."""
    if record["state"] not in USABLE:
        raise UsageError(
            f"{record['id']} is {record['state']}; only verified images are published",
            "bake it again, or look at its verify report",
        )
    before = target.channels(spec)
    by = who()
    target.point(spec, record, channels, by)
    version = record["version"]
    moves = [Move(c, before.get(c, {}).get("current"), version) for c in channels]

    def change(r: Record) -> None:
        if r["state"] == "verified":
            r["state"] = "published"
            r.setdefault("history", []).append(
                {
                    "state": "published",
                    "at": now_iso(),
                    "note": f"channels: {', '.join(channels)} by {by}",
                }
            )
        r["channels"] = sorted(set(r.get("channels", [])) | set(channels))

    if record["state"] != "published" or not set(channels) <= set(record.get("channels", [])):
        record = target.catalogue.update(spec.name, version, change)
    return PublishResult(record, target.name, moves)


def revoke(
    target: Target,
    spec: ImageSpec,
    version: str | None,
    reason: str,
    dry_run: bool = False,
    base: bool = False,
) -> RevokeResult:
    """Take ``version`` back: channels first (so nothing new picks it up), then the marks.
    With ``base``: the base ``version`` (default: the newest) was baked from instead."""
    reason = " ".join(reason.split())
    if not reason:
        raise UsageError("say why the image is revoked: --reason '…'", "it is recorded with it")
    if base:
        return revoke_base(target, spec, version, reason, dry_run)
    if not version:
        raise UsageError("say which version: --version V", "invoke images.history lists them")
    catalogue = target.catalogue
    record = catalogue.image(spec.name, version)
    if record["state"] == "revoked":
        why = (record.get("revoked") or {}).get("reason", "")
        raise UsageError(f"{record['id']} is revoked already ({why})")
    earlier = [
        r for r in catalogue.images(spec.name) if r["state"] in USABLE and r["version"] < version
    ]
    # the newest earlier verified version whose artifact is still there (a pruned one is not)
    fallback = next((r for r in reversed(earlier) if target.deliverable(r)), None)
    moves = [
        Move(channel, version, fallback["version"] if fallback else None)
        for channel, entry in sorted(target.channels(spec).items())
        if entry.get("current") == version
    ]
    if dry_run:
        return RevokeResult(record, target.name, reason, moves, dry_run=True)
    by = who()
    for move in moves:
        if fallback is not None:
            point(target, spec, fallback, [move.channel])
        else:
            target.unpoint(spec, [move.channel], by)
    notes = target.revoked(spec, record, reason)
    record = catalogue.transition(
        spec.name,
        version,
        "revoked",
        note=f"{reason} (by {by})",
        revoked={"at": now_iso(), "by": by, "reason": reason},
        channels=[],
    )
    return RevokeResult(record, target.name, reason, moves, notes)


def revoke_base(
    target: Target, spec: ImageSpec, version: str | None, reason: str, dry_run: bool
) -> RevokeResult:
    record = (
        target.catalogue.image(spec.name, version)
        if version
        else target.catalogue.latest(spec.name)
    )
    if record is None:
        raise UsageError(f"no baked version of {spec.name} on the {target.name} target")
    which = target.revoke_base(spec, record, reason, who(), dry_run)
    subject = f"{which} (the base of {record['id']})"
    if dry_run:
        return RevokeResult(record, target.name, reason, [], [], True, subject)
    notes = [f"{which} revoked: the next bake builds a new base; nightly rebakes what used it"]
    return RevokeResult(record, target.name, reason, [], notes, False, subject)
