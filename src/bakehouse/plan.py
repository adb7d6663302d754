"""Pure decisions: whether an image needs a new bake, and why; what changed between two images.

Nothing here reads files or the network: the caller gathers the facts (the current inputs
fingerprint, the base key, the newest catalogue record, the pending updates) and this module
decides, so every rule is testable on its own.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from bakehouse.debindex import Pending


@dataclass(frozen=True)
class Facts:
    image: str
    fingerprint: str
    base_key: str
    rebuild_on: str  # any | security | inputs
    max_age_days: int
    last: dict[str, Any] | None  # newest record of the image on the target
    pending: tuple[Pending, ...] = ()
    offline: bool = False
    forced: bool = False
    manifest: bool = True  # whether the newest image's package manifest could be read
    base_revoked: str | None = None  # why the newest image's base must not be used any more


@dataclass(frozen=True)
class Decision:
    image: str
    bake: bool
    reason: str
    pending: int = 0
    security: int = 0
    notes: tuple[str, ...] = field(default=())
    version: str | None = None  # the newest version the decision judged

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "bake": self.bake,
            "reason": self.reason,
            "pending": self.pending,
            "security": self.security,
            "notes": list(self.notes),
            "version": self.version,
        }


def decide(f: Facts, now: dt.datetime) -> Decision:
    """The first rule that applies wins; when no fact can be read, the answer is to bake."""
    security = sum(p.security for p in f.pending)
    last = f.last
    notes = ("package indexes from the cache: the mirror was unreachable",) if f.offline else ()
    version = str(last["version"]) if last else None

    def bake(reason: str, do: bool = True) -> Decision:
        return Decision(f.image, do, reason, len(f.pending), security, notes, version)

    if f.forced:
        return bake("forced")
    if last is None:
        return bake("never baked")
    state = last.get("state")
    if state == "failed":
        return bake(f"last bake failed ({last.get('version')})")
    if state == "revoked":
        reason = (last.get("revoked") or {}).get("reason", "")
        return bake(
            f"newest version {last.get('version')} revoked" + (f": {reason}" if reason else "")
        )
    if state not in ("verified", "published"):
        return bake(f"newest version {last.get('version')} was never verified")
    if f.base_revoked:
        return bake(f.base_revoked)
    last_base = (last.get("base", {}).get("parent") or last.get("base", {})).get("key")
    if last_base != f.base_key:
        return bake("base image changed")
    if last.get("fingerprint") != f.fingerprint:
        return bake("inputs changed")
    if not f.manifest:
        return bake(f"no package manifest recorded for {last.get('version')}: patch level unknown")
    if f.pending and (f.rebuild_on == "any" or (f.rebuild_on == "security" and security)):
        return bake(f"{len(f.pending)} pending updates ({security} security)")
    created = dt.datetime.fromisoformat(str(last["created"]))
    if now - created > dt.timedelta(days=f.max_age_days):
        return bake(f"older than {f.max_age_days} days")
    reason = "up to date"
    if f.pending:
        reason += (
            f" ({len(f.pending)} pending updates, none that rebuild_on={f.rebuild_on} bakes for)"
        )
    return bake(reason, do=False)


@dataclass(frozen=True)
class Change:
    name: str
    old: str | None
    new: str | None
    security: bool = False

    @property
    def kind(self) -> str:
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        return "upgraded" if _newer(self.new, self.old) else "downgraded"


def _newer(a: str, b: str) -> bool:
    from debian.debian_support import version_compare

    return bool(version_compare(a, b) > 0)


def diff(
    old: dict[str, str], new: dict[str, str], security_versions: dict[str, str] | None = None
) -> list[Change]:
    """Packages added, removed and changed between two manifests ({name: version}); a change is
    marked security when its new version is the one the security suite carries."""
    sec = security_versions or {}
    out = []
    for name in sorted(set(old) | set(new)):
        o, n = old.get(name), new.get(name)
        if o != n:
            out.append(Change(name, o, n, bool(n is not None and sec.get(name) == n)))
    return out
