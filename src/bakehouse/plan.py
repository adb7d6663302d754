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
    last: dict[str, Any] | None  # newest catalogue record
    pending: tuple[Pending, ...] = ()
    offline: bool = False
    forced: bool = False


@dataclass(frozen=True)
class Decision:
    image: str
    bake: bool
    reason: str
    pending: int = 0
    security: int = 0
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "bake": self.bake,
            "reason": self.reason,
            "pending": self.pending,
            "security": self.security,
            "notes": list(self.notes),
        }


def decide(f: Facts, now: dt.datetime) -> Decision:
    security = sum(p.security for p in f.pending)
    counts = {"pending": len(f.pending), "security": security}
    notes = ("package indexes from the cache: the mirror was unreachable",) if f.offline else ()
    if f.forced:
        return Decision(f.image, True, "forced", **counts, notes=notes)
    last = f.last
    if last is None:
        return Decision(f.image, True, "never baked", **counts, notes=notes)
    if last.get("state") == "failed":
        return Decision(
            f.image, True, f"last bake failed ({last.get('version')})", **counts, notes=notes
        )
    last_base = (last.get("base", {}).get("parent") or last.get("base", {})).get("key")
    if last_base != f.base_key:
        return Decision(f.image, True, "base image changed", **counts, notes=notes)
    if last.get("fingerprint") != f.fingerprint:
        return Decision(f.image, True, "inputs changed", **counts, notes=notes)
    if f.pending and (f.rebuild_on == "any" or (f.rebuild_on == "security" and security)):
        return Decision(
            f.image,
            True,
            f"{len(f.pending)} pending updates ({security} security)",
            **counts,
            notes=notes,
        )
    created = dt.datetime.fromisoformat(str(last["created"]))
    if now - created > dt.timedelta(days=f.max_age_days):
        return Decision(f.image, True, f"older than {f.max_age_days} days", **counts, notes=notes)
    reason = "up to date"
    if f.pending:
        reason += (
            f" ({len(f.pending)} pending updates, none that rebuild_on={f.rebuild_on} bakes for)"
        )
    return Decision(f.image, False, reason, **counts, notes=notes)


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


def diff_markdown(changes: list[Change], title: str) -> str:
    if not changes:
        return f"### {title}\n\nNo package changes.\n"
    lines = [
        f"### {title}",
        "",
        "| package | change | from | to | security |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {c.name} | {c.kind} | {c.old or ''} | {c.new or ''} | {'yes' if c.security else ''} |"
        for c in changes
    ]
    return "\n".join(lines) + "\n"
