"""Package indexes (Debian, Ubuntu) on the host: which updates an image is missing, unbooted.

For each suite of an image (release, -updates, -security) the signed ``InRelease`` is fetched
and checked with ``gpgv`` against its distribution's archive keyring (and, where the family pins
one, that key's fingerprint), then each ``Packages.xz`` of the image's architecture it names
is fetched, its sha256 checked against the signed list, and reduced to ``{package: version}``.
Parsed indexes are cached by that sha256, so an unchanged mirror costs one small request per
suite. When the mirror cannot be reached, the newest cached state is used and flagged offline.

Versions are compared with dpkg's ordering (python-debian), for every .deb family.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import json
import lzma
import os
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bakehouse import proc
from bakehouse.distro import Suite
from bakehouse.errors import IndexError_
from bakehouse.trust import Trust

__all__ = ["IndexCache", "Indexes", "Suite", "pending", "state_cache"]

TIMEOUT = 30


def _fetch(url: str) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise IndexError_(f"refusing to fetch {url!r}: only http(s) mirrors")
    req = urllib.request.Request(url, headers={"User-Agent": "bakehouse"})  # noqa: S310
    with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:  # noqa: S310  # nosec B310
        data: bytes = resp.read()
        return data


BY_HASH = re.compile(r"^Acquire-By-Hash:\s*yes\s*$", re.M | re.I)


def parse_release(text: str) -> dict[str, tuple[str, int]]:
    """The SHA256 section of a Release file: path → (sha256, size)."""
    out: dict[str, tuple[str, int]] = {}
    in_sha = False
    for line in text.splitlines():
        if line.startswith("SHA256:"):
            in_sha = True
            continue
        if in_sha:
            if not line.startswith(" "):
                in_sha = False
                continue
            parts = line.split()
            if len(parts) == 3:
                out[parts[2]] = (parts[0], int(parts[1]))
    return out


def parse_packages(text: str) -> dict[str, str]:
    """``Packages`` stanzas → {name: highest version}; a fast line scanner, not a full parser."""
    from debian.debian_support import version_compare

    out: dict[str, str] = {}
    name = version = None
    for line in text.splitlines():
        if not line:
            if name and version:
                old = out.get(name)
                if old is None or version_compare(version, old) > 0:
                    out[name] = version
            name = version = None
        elif line.startswith("Package: "):
            name = line[9:].strip()
        elif line.startswith("Version: "):
            version = line[9:].strip()
    if name and version:
        old = out.get(name)
        if old is None or version_compare(version, old) > 0:
            out[name] = version
    return out


@dataclass
class Indexes:
    """Candidate versions per suite, and how they were obtained."""

    suites: dict[str, dict[str, str]] = field(default_factory=dict)
    security: set[str] = field(default_factory=set)  # suite names that are security suites
    offline: bool = False
    notes: list[str] = field(default_factory=list)
    release_hashes: dict[str, str] = field(default_factory=dict)
    # sha256 of every Packages index used, by suite/component: changes only when packages do
    index_hashes: dict[str, str] = field(default_factory=dict)
    _candidates: tuple[Any, dict[str, tuple[str, bool]]] | None = field(
        default=None, repr=False, compare=False
    )

    def security_versions(self) -> dict[str, str]:
        """{package: version} as the security suites carry them."""
        out: dict[str, str] = {}
        for suite in self.security:
            out.update(self.suites.get(suite, {}))
        return out

    def candidates(self) -> dict[str, tuple[str, bool]]:
        """{package: (newest version, whether that version comes from a security suite)};
        computed once per Indexes (about 67,000 packages)."""
        key = (
            tuple(self.index_hashes.items()),
            tuple(sorted(self.security)),
            tuple((k, len(v)) for k, v in self.suites.items()),
        )
        if self._candidates is None or self._candidates[0] != key:
            self._candidates = (key, self._compute_candidates())
        return self._candidates[1]

    def _compute_candidates(self) -> dict[str, tuple[str, bool]]:
        from debian.debian_support import version_compare

        best: dict[str, tuple[str, bool]] = {}
        for suite, packages in self.suites.items():
            sec = suite in self.security
            for name, version in packages.items():
                old = best.get(name)
                if old is None:
                    best[name] = (version, sec)
                else:
                    cmp = version_compare(version, old[0])
                    if cmp > 0 or (cmp == 0 and sec):
                        best[name] = (version, sec or (cmp == 0 and old[1]))
        return best


def release_fields(text: str) -> dict[str, str]:
    """The single-line header fields of a Release file (Suite, Codename, Date, Valid-Until…)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line[0].isspace():
            continue
        key, sep, value = line.partition(":")
        if sep and key not in out:
            out[key] = value.strip()
    return out


def _when(fields: dict[str, str], key: str, where: str) -> dt.datetime | None:
    if key not in fields:
        return None
    try:
        when = email.utils.parsedate_to_datetime(fields[key])
    except (TypeError, ValueError):
        when = None
    if when is None or when.tzinfo is None:
        raise IndexError_(f"{where}: cannot read its {key} field ({fields[key]!r})")
    return when.astimezone(dt.UTC)


def check_release(
    text: str, suite: Suite, now: dt.datetime, seen: dt.datetime | None, where: str
) -> dt.datetime:
    """Refuse a signed Release that is not for ``suite``, has expired, or is older than one
    already seen for this mirror and suite (a replay hiding newer updates); returns its Date."""
    fields = release_fields(text)
    names = {fields.get("Suite"), fields.get("Codename")} - {None}
    if suite.name not in names:
        raise IndexError_(
            f"{where} is for {fields.get('Codename') or fields.get('Suite') or 'no suite'}, "
            f"not {suite.name}",
            "the mirror serves another suite's signed index under this name: "
            "check the mirror (or a proxy between) before trusting it",
        )
    date = _when(fields, "Date", where)
    if date is None:
        raise IndexError_(f"{where} has no Date field", "a Debian Release file always has one")
    until = _when(fields, "Valid-Until", where)
    if until is not None and now > until:
        raise IndexError_(
            f"{where} expired on {until:%Y-%m-%d %H:%M} UTC",
            "the mirror serves a stale signed index: use an up-to-date mirror",
        )
    if seen is not None and date < seen:
        raise IndexError_(
            f"{where} is dated {date:%Y-%m-%d %H:%M:%S} UTC, older than the one seen before "
            f"({seen:%Y-%m-%d %H:%M:%S} UTC)",
            "the mirror went back in time (a replay would hide updates): use another mirror",
        )
    return date


def signed_by(status: list[str]) -> set[str]:
    """Primary key fingerprints of the good signatures in gpgv's status output."""
    return {
        line.split()[-1]
        for line in status
        if line.startswith("[GNUPG:] VALIDSIG ") and len(line.split()) >= 12
    }


def mark_key(suite: Suite) -> str:
    return f"{suite.mirror} {suite.name}"


class Marks(Protocol):
    """The newest index Date accepted per mirror and suite, kept beside a target's state."""

    def get(self, key: str) -> dt.datetime | None: ...

    def raise_to(self, key: str, date: dt.datetime) -> None:
        """Record ``date`` unless a later one is recorded already (never goes back)."""


class StoreMarks:
    """Marks in one JSON document of a catalogue store (S3 for the aws target), changed with
    the store's conditional update, so concurrent runners never lower a mark."""

    KEY = "indexes/seen.json"

    def __init__(self, store: Any):
        self.store = store
        self._read: dict[str, str] | None = None

    def _all(self) -> dict[str, str]:
        if self._read is None:
            raw = self.store.read(self.KEY)
            try:
                data = json.loads(raw) if raw is not None else {}
            except ValueError as exc:
                raise IndexError_(
                    f"cannot read {self.store.location}/{self.KEY}: {exc}",
                    "restore it from the bucket's versions (removing it accepts any index)",
                ) from None
            self._read = dict(data) if isinstance(data, dict) else {}
        return self._read

    def get(self, key: str) -> dt.datetime | None:
        value = self._all().get(key)
        if value is None:
            return None
        try:
            return dt.datetime.fromisoformat(value).astimezone(dt.UTC)
        except ValueError:
            raise IndexError_(
                f"cannot read the mark for {key} in {self.store.location}/{self.KEY}: {value!r}",
                "restore it from the bucket's versions",
            ) from None

    def raise_to(self, key: str, date: dt.datetime) -> None:
        def change(current: Any) -> dict[str, str]:
            marks = dict(current) if isinstance(current, dict) else {}
            old = marks.get(key)
            if old is None or dt.datetime.fromisoformat(old) < date:
                marks[key] = date.isoformat()
            return marks

        self._read = self.store.update(self.KEY, change)


# parsed Packages by the sha256 the signed Release names: content-addressed, so one process
# parses each at most once (nightly reads the same indexes for every image)
_PARSED: dict[str, dict[str, str]] = {}


class IndexCache:
    """Signed indexes fetched and checked, with the last good copy of each kept for offline use.

    Per mirror and suite the cache keeps the signed ``InRelease`` as fetched (checked again,
    signature included, whenever it is used offline) and the newest ``Date`` ever accepted.
    ``marks`` keeps that newest Date where the target keeps its state too (the aws account), so
    a runner with a fresh cache still refuses an index older than any runner accepted."""

    def __init__(
        self,
        folder: Path,
        now: Callable[[], dt.datetime] | None = None,
        marks: Marks | None = None,
        trust: Trust | None = None,
    ):
        self.folder = folder
        self.now = now or (lambda: dt.datetime.now(dt.UTC))
        self.marks = marks
        self.trust = trust

    def _place(self, path: Path) -> str:
        return "indexes/" + str(path.relative_to(self.folder))

    def _trusted(self, path: Path) -> bytes | None:
        """A cached file that this machine's key sealed (with no key: any); else None."""
        if not path.is_file():
            return None
        data = path.read_bytes()
        if self.trust is not None and not self.trust.holds(path, self._place(path), data):
            return None
        return data

    def _keep(self, path: Path, data: bytes) -> None:
        if self.trust is not None:
            self.trust.write_seal(path, self._place(path), data)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)

    def stored(self, suite: Suite) -> Path:
        """Where the last accepted signed InRelease of ``suite`` is kept."""
        return self.folder / "releases" / f"{suite.mirror.replace('/', '_')}_{suite.name}.InRelease"

    def seen(self, suite: Suite) -> Path:
        """The newest Date accepted for ``suite`` on its mirror (never goes back)."""
        return self.stored(suite).with_suffix(".date")

    def _seen(self, suite: Suite) -> dt.datetime | None:
        path = self.seen(suite)
        raw = self._trusted(path)  # unsealed: as good as absent (a deletion cannot be seen)
        if raw is None:
            return None
        try:
            return dt.datetime.fromisoformat(raw.decode().strip()).astimezone(dt.UTC)
        except ValueError:
            raise IndexError_(
                f"cannot read {path}", "remove it to accept the mirror's current index"
            ) from None

    def release(self, suite: Suite) -> tuple[str, bool]:
        """The verified Release text of ``suite``, fetched now or (offline) from the cache, and
        whether it came from the cache."""
        where = suite.url("InRelease")
        stored = self.stored(suite)
        try:
            raw = _fetch(where)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            if not stored.is_file():
                raise IndexError_(
                    f"cannot fetch {where}: {exc}",
                    "check the mirror and the network; nothing is cached yet",
                ) from None
            text = self._verify(stored.read_bytes(), suite)
            check_release(text, suite, self.now(), None, f"the cached copy of {where}")
            return text, True
        text = self._verify(raw, suite)
        seen = [d for d in (self._seen(suite), self._marked(suite)) if d is not None]
        date = check_release(text, suite, self.now(), max(seen, default=None), where)
        stored.parent.mkdir(parents=True, exist_ok=True)
        for path, data in ((stored, raw), (self.seen(suite), date.isoformat().encode())):
            self._keep(path, data)
        if self.marks is not None:
            self.marks.raise_to(mark_key(suite), date)
        return text, False

    def _marked(self, suite: Suite) -> dt.datetime | None:
        return self.marks.get(mark_key(suite)) if self.marks is not None else None

    def _verify(self, raw: bytes, suite: Suite) -> str:
        if not suite.keyring.is_file():
            raise IndexError_(
                f"no archive keyring at {suite.keyring}",
                "install the debian-archive-keyring package"
                if suite.keyring.name.startswith("debian")
                else "the keyring ships with bakehouse: reinstall it",
            )
        work = self.folder / "tmp"
        work.mkdir(parents=True, exist_ok=True)
        signed = work / f"{suite.name}.{os.getpid()}.{threading.get_ident()}.InRelease"
        signed.write_bytes(raw)
        try:
            result = proc.run(
                # status lines ([GNUPG:] …) go to stderr with gpgv's own messages
                [
                    "gpgv",
                    "--keyring",
                    str(suite.keyring),
                    "--status-fd",
                    "2",
                    "--output",
                    "-",
                    str(signed),
                ],
                timeout=60,
            )
        finally:
            signed.unlink(missing_ok=True)
        lines = (result.stderr or "").splitlines()
        if not result.ok:
            raise IndexError_(
                f"the signature of {suite.url('InRelease')} does not verify",
                next((x for x in reversed(lines) if x and not x.startswith("[GNUPG:]")), None),
            )
        if suite.signers and not signed_by(lines) & set(suite.signers):
            by = ", ".join(sorted(signed_by(lines))) or "no key"
            raise IndexError_(
                f"{suite.url('InRelease')} is not signed by the pinned key "
                f"{', '.join(suite.signers)} (but by {by})",
                "the keyring holds more keys than the archive's own: check the mirror",
            )
        return result.stdout

    def _packages(
        self,
        suite: Suite,
        component: str,
        entries: dict[str, tuple[str, int]],
        offline: bool,
        by_hash: bool = False,
    ) -> dict[str, str]:
        path = f"{component}/binary-{suite.arch}/Packages.xz"
        if path not in entries:
            return {}
        digest, _ = entries[path]
        parsed = self.folder / "packages" / f"{digest}.json"
        if digest in _PARSED:  # this process read (and checked) that very content before
            return _PARSED[digest]
        cached = self._trusted(parsed)  # unsealed (made elsewhere, or changed): fetched again
        if cached is not None:
            data: dict[str, str] = json.loads(cached)
            _PARSED[digest] = data
            return data
        if offline:
            raise IndexError_(
                f"{suite.name}/{component}: index not cached and the mirror is unreachable"
            )
        raw = self._fetch_index(suite, path, digest, by_hash)
        if hashlib.sha256(raw).hexdigest() != digest:
            raise IndexError_(f"{suite.url(path)}: sha256 does not match the signed Release")
        packages = parse_packages(lzma.decompress(raw).decode("utf-8", "replace"))
        parsed.parent.mkdir(parents=True, exist_ok=True)
        self._keep(parsed, json.dumps(packages).encode())
        _PARSED[digest] = packages
        return packages

    @staticmethod
    def _fetch_index(suite: Suite, path: str, digest: str, by_hash: bool) -> bytes:
        """The index file the signed Release names. Where the archive keeps files by hash
        (``Acquire-By-Hash: yes``, as Debian's and Ubuntu's do), the file is fetched under its
        digest: a mirror updating between the Release and this fetch cannot hand over the next
        version (its sha256 would not match). A mirror without that copy: the usual path."""
        if by_hash:
            folder, _, _ = path.rpartition("/")
            try:
                return _fetch(suite.url(f"{folder}/by-hash/SHA256/{digest}"))
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
        return _fetch(suite.url(path))

    def load(self, suites: Iterable[Suite]) -> Indexes:
        out = Indexes()
        for suite in suites:
            text, offline = self.release(suite)
            if offline:
                out.offline = True
                out.notes.append(f"{suite.name}: mirror unreachable, using the cached index")
            entries = parse_release(text)
            by_hash = BY_HASH.search(text) is not None
            merged: dict[str, str] = {}
            for component in suite.components:
                merged.update(self._packages(suite, component, entries, offline, by_hash))
                entry = entries.get(f"{component}/binary-{suite.arch}/Packages.xz")
                if entry is not None:
                    out.index_hashes[f"{suite.name}/{component}"] = entry[0]
            out.suites[suite.name] = merged
            out.release_hashes[suite.name] = hashlib.sha256(text.encode()).hexdigest()
            if suite.security:
                out.security.add(suite.name)
        return out


def state_cache(state_dir: Path, marks: Marks | None = None) -> IndexCache:
    """The index cache in bakehouse's state folder, sealed with this machine's trust key."""
    return IndexCache((state_dir / "cache" / "indexes").resolve(), marks=marks, trust=Trust.load())


@dataclass(frozen=True)
class Pending:
    name: str
    installed: str
    candidate: str
    security: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pending(installed: dict[str, str], indexes: Indexes) -> list[Pending]:
    """Installed packages that have a newer version in the indexes."""
    from debian.debian_support import version_compare

    cands = indexes.candidates()
    security = indexes.security_versions()
    out = []
    for name, version in sorted(installed.items()):
        cand = cands.get(name)
        # most packages are at the candidate: equal strings need no Debian version compare
        if cand is not None and cand[0] != version and version_compare(cand[0], version) > 0:
            out.append(Pending(name, version, cand[0], fixes_security(security.get(name), version)))
    return out


def fixes_security(security_version: str | None, installed: str) -> bool:
    """Whether updating ``installed`` brings a security fix: the security suite carries a newer
    version — even when a newer non-security update exists too (Ubuntu copies security updates
    to -updates and may have a later update there; Debian's -security is its own suite)."""
    from debian.debian_support import version_compare

    return security_version is not None and version_compare(security_version, installed) > 0


def installed_from_manifest(manifest: dict[str, Any]) -> dict[str, str]:
    """{name: version} from a bakehouse manifest (arch-qualified names collapse to the name)."""
    return {p["name"].split(":")[0]: p["version"] for p in manifest["packages"]}
