"""The catalogue: every baked version of every image, keyed by target, image and version.

One :class:`Catalogue` class serves every target; where it keeps its documents is a
:class:`Store`: a folder on this machine (:class:`DirStore`, the local target's catalogue under
``<state>/catalogue/``) or the target's own storage (the aws target keeps its catalogue in S3,
next to the AMIs, so a stateless CI runner sees what the baking machine saw). Keys::

    <target>/images/<name>/<version>/record.json   + manifest.json, sbom.cdx.json, report.*, …
    <target>/channels.json                         {image: {channel: {current, history}}}
    <target>/rolls/<image>/<when>-<run>.json        one record per roll
    local/bases/<key>/record.json                  + base.qcow2, vmlinuz, initrd.img, …

An entry appears whole or not at all: its files are written first and its ``record.json`` last
(create-only), and only a version with a record exists. A record changes only through
:meth:`Catalogue.transition` (the state machine below) or :meth:`Catalogue.update`, each a
read-modify-write the store makes atomic (a lock, or a conditional write).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bakehouse.errors import CatalogueError, Untrusted, UsageError
from bakehouse.files import dumps, write_bytes
from bakehouse.locks import held
from bakehouse.trust import SUFFIX, Trust

Record = dict[str, Any]

STATES = ("baked", "verified", "failed", "published", "revoked")
TRANSITIONS: dict[str, frozenset[str]] = {
    "baked": frozenset({"verified", "failed", "revoked"}),
    "verified": frozenset({"published", "failed", "revoked"}),
    "published": frozenset({"revoked"}),
    "failed": frozenset({"revoked"}),
    "revoked": frozenset(),
}
USABLE = ("verified", "published")  # what may be published and rolled out


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


class Store(ABC):
    """Where a catalogue keeps its documents: bytes under ``/``-separated keys."""

    location: str  # for messages: a folder or an s3:// URL

    @abstractmethod
    def read(self, key: str) -> bytes | None:
        """The document, or None when there is none."""

    @abstractmethod
    def write(self, key: str, data: bytes) -> None:
        """Replace (or create) the document atomically."""

    @abstractmethod
    def children(self, prefix: str) -> list[str]:
        """Names directly under ``prefix/`` (folders and documents)."""

    @abstractmethod
    def add_entry(self, prefix: str, staged: Path, record: bytes) -> str:
        """Store every file of ``staged`` under ``prefix/`` and ``record.json`` last, refusing
        if the entry exists; returns where it went."""

    @abstractmethod
    def update(self, key: str, change: Callable[[Any], Any]) -> Any:
        """Read the JSON document at ``key``, apply ``change`` and write the result, with no
        other writer in between; returns the new document."""

    def ensure(self) -> None:
        """Make sure the store can take writes (a bucket that exists, set up as it must be)."""
        return None

    def remove(self, prefix: str) -> None:  # pragma: no cover - only stores that hold bases
        raise CatalogueError(f"{self.location} cannot remove {prefix}")

    def path(self, key: str) -> Path:
        """A file on this machine (local artifacts: disks, kernels)."""
        raise CatalogueError(f"{self.location} keeps no files on this machine ({key})")

    def read_artifact(self, key: str) -> bytes | None:
        """A file of an entry, which its record's sha256 vouches for (not a document)."""
        return self.read(key)


class DirStore(Store):
    """A folder on this machine; writes are atomic renames under one lock. With ``trust``,
    every document written is sealed and every document read must carry the seal
    (:mod:`bakehouse.trust`): a folder restored from elsewhere is not taken on its word."""

    def __init__(self, root: Path, trust: Trust | None = None):
        self.root = root
        self.location = str(root)
        self.trust = trust

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with held(self.root / ".lock"):
            yield

    def path(self, key: str) -> Path:
        parts = key.split("/")
        if key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise CatalogueError(f"refusing the catalogue key {key!r}: it leaves {self.root}")
        return self.root / key

    def read_artifact(self, key: str) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CatalogueError(f"cannot read {self.path(key)}: {exc}") from None

    def read(self, key: str) -> bytes | None:
        raw = self.read_artifact(key)
        if raw is None or self.trust is None:
            return raw
        return self.trust.check(self.path(key), key, raw)

    def write(self, key: str, data: bytes) -> None:
        self._sealed(self.path(key), key, data)

    def _sealed(self, path: Path, key: str, data: bytes) -> None:
        # a crash between the two leaves a document that does not verify (either order)
        if self.trust is not None:
            self.trust.write_seal(path, key, data)
        write_bytes(path, data)

    def children(self, prefix: str) -> list[str]:
        folder = self.path(prefix)
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if not p.name.endswith(SUFFIX))

    def add_entry(self, prefix: str, staged: Path, record: bytes) -> str:
        dest = self.path(prefix)
        self._sealed(staged / "record.json", f"{prefix}/record.json", record)
        with self.locked():
            if dest.exists():
                raise CatalogueError(f"the catalogue already has {prefix}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            staged.rename(dest)
        return str(dest)

    def update(self, key: str, change: Callable[[Any], Any]) -> Any:
        with self.locked():
            raw = self.read(key)
            new = change(_parse(raw, self.path(key)) if raw is not None else None)
            self.write(key, dumps(new).encode())
            return new

    def remove(self, prefix: str) -> None:
        with self.locked():
            shutil.rmtree(self.path(prefix), ignore_errors=True)


def _parse(raw: bytes, where: object) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise CatalogueError(
            f"cannot read {where}: {exc}",
            "the catalogue is damaged; restore the file or remove the entry",
        ) from None


class Catalogue:
    """The records of one target, in one store."""

    def __init__(self, store: Store, target: str):
        self.store = store
        self.target = target

    # ---- keys ---------------------------------------------------------------------------------
    def entry_key(self, name: str, version: str) -> str:
        return f"{self.target}/images/{name}/{version}"

    def image_dir(self, name: str, version: str) -> Path:
        """The entry's folder on this machine (stores that keep files here only)."""
        return self.store.path(self.entry_key(name, version))

    def artifact(self, name: str, version: str, file: str) -> bytes | None:
        return self.store.read_artifact(f"{self.entry_key(name, version)}/{file}")

    def checked_artifact(self, record: Record, role: str) -> bytes:
        """The ``role`` artifact of an entry (e.g. its package manifest), only if it is the
        very file the record describes (sha256): a damaged or swapped file is an error."""
        meta = record.get("artifacts", {}).get(role)
        where = f"{self.store.location}/{self.entry_key(record['name'], record['version'])}"
        if not isinstance(meta, dict) or "sha256" not in meta or "file" not in meta:
            raise CatalogueError(f"{where}: the record names no {role} with a sha256")
        raw = self.artifact(record["name"], record["version"], str(meta["file"]))
        if raw is None:
            raise CatalogueError(f"{where}/{meta['file']} is missing")
        if hashlib.sha256(raw).hexdigest() != meta["sha256"]:
            raise CatalogueError(
                f"{where}/{meta['file']} does not match the sha256 its record names",
                "the catalogue was changed or damaged: restore it, or bake the image again",
            )
        return raw

    # ---- entries ------------------------------------------------------------------------------
    def add(self, record: Record, staged: Path) -> str:
        """Move a fully staged folder into the catalogue with ``record`` as its record."""
        if record.get("target") != self.target:
            raise CatalogueError(f"a {record.get('target')} record in the {self.target} catalogue")
        key = self.entry_key(record["name"], record["version"])
        return self.store.add_entry(key, staged, dumps(record).encode())

    def names(self) -> list[str]:
        return self.store.children(f"{self.target}/images")

    def versions(self, name: str) -> list[str]:
        return sorted(self.store.children(f"{self.target}/images/{name}"))

    def images(self, name: str | None = None) -> list[Record]:
        """Every record of ``name`` (or of every image), oldest first."""
        out: list[Record] = []
        for image in [name] if name else self.names():
            for version in self.versions(image):
                record = self._record(image, version)
                if record is not None:
                    out.append(record)
        return out

    def _record(self, name: str, version: str) -> Record | None:
        key = f"{self.entry_key(name, version)}/record.json"
        raw = self.store.read(key)
        if raw is None:
            return None
        record: Record = _parse(raw, f"{self.store.location}/{key}")
        return record

    def image(self, name: str, version: str) -> Record:
        record = self._record(name, version)
        if record is None:
            known = ", ".join(self.versions(name)) or "none"
            raise UsageError(
                f"no image {name} version {version} in the {self.target} catalogue",
                f"versions of {name}: {known}",
            )
        return record

    def latest(self, name: str, states: tuple[str, ...] | None = None) -> Record | None:
        """The newest record of ``name`` (in one of ``states``); reads as few records as it can."""
        for version in reversed(self.versions(name)):
            record = self._record(name, version)
            if record is not None and (states is None or record["state"] in states):
                return record
        return None

    def update(self, name: str, version: str, change: Callable[[Record], None]) -> Record:
        def apply(record: Record | None) -> Record:
            if record is None:
                raise UsageError(
                    f"no image {name} version {version} in the {self.target} catalogue"
                )
            change(record)
            return record

        new: Record = self.store.update(f"{self.entry_key(name, version)}/record.json", apply)
        return new

    def transition(
        self, name: str, version: str, state: str, note: str = "", **fields: Any
    ) -> Record:
        """Move a record to ``state`` along :data:`TRANSITIONS`, keeping the history."""

        def change(record: Record) -> None:
            current = record["state"]
            if state not in TRANSITIONS[current]:
                raise UsageError(
                    f"{name} {version} is {current}; it cannot become {state}",
                    "only verified images are published; a revoked image stays revoked",
                )
            record["state"] = state
            record.setdefault("history", []).append({"state": state, "at": now_iso(), "note": note})
            record.update(fields)

        return self.update(name, version, change)

    # ---- channels (for targets that keep them here) -------------------------------------------
    def channels(self, name: str) -> dict[str, Any]:
        raw = self.store.read(f"{self.target}/channels.json")
        data = _parse(raw, f"{self.store.location}/{self.target}/channels.json") if raw else {}
        out: dict[str, Any] = data.get(name, {}) if isinstance(data, dict) else {}
        return out

    def set_channels(self, name: str, version: str | None, channels: list[str], by: str) -> None:
        """Point ``channels`` of ``name`` at ``version`` (None: remove them), with history."""
        at = now_iso()

        def change(data: Any) -> Any:
            data = data if isinstance(data, dict) else {}
            for channel in channels:
                entry = data.setdefault(name, {}).setdefault(
                    channel, {"current": None, "history": []}
                )
                if entry["current"] == version:
                    continue
                entry["history"].append(
                    {"version": version, "previous": entry["current"], "at": at, "by": by}
                )
                entry["current"] = version
            return data

        self.store.update(f"{self.target}/channels.json", change)

    # ---- roll records -------------------------------------------------------------------------
    def add_roll(self, image: str, record: Record) -> None:
        stamp = str(record["at"]).replace(":", "").replace("-", "").replace("+0000", "Z")
        key = f"{self.target}/rolls/{image}/{stamp}-{os.getpid()}.json"
        self.store.write(key, dumps(record).encode())

    def rolls(self, image: str) -> list[Record]:
        out = []
        for name in self.store.children(f"{self.target}/rolls/{image}"):
            raw = self.store.read(f"{self.target}/rolls/{image}/{name}")
            if raw is not None:
                out.append(_parse(raw, name))
        return out

    # ---- local bases --------------------------------------------------------------------------
    def base_key(self, key: str) -> str:
        return f"{self.target}/bases/{key}"

    def base_dir(self, key: str) -> Path:
        return self.store.path(self.base_key(key))

    def base(self, key: str) -> Record | None:
        raw = self.store.read(f"{self.base_key(key)}/record.json")
        if raw is None:
            return None
        record: Record = _parse(raw, self.base_key(key))
        return record

    def cached_base(self, key: str, say: Callable[[str], None]) -> Record | None:
        """The base's record; None when there is none, or when its record does not carry this
        machine's seal — then the entry is removed, so the base is built again."""
        try:
            return self.base(key)
        except Untrusted as exc:
            say(f"base: {exc.message}")
            self.remove_base(key)
            return None

    def add_base(self, record: Record, staged: Path) -> Path:
        self.store.add_entry(self.base_key(record["key"]), staged, dumps(record).encode())
        return self.base_dir(record["key"])

    def update_base(self, key: str, change: Callable[[Record], None]) -> Record:
        def apply(record: Record | None) -> Record:
            if record is None:
                raise UsageError(f"no local base {key}")
            change(record)
            return record

        new: Record = self.store.update(f"{self.base_key(key)}/record.json", apply)
        return new

    def remove_base(self, key: str) -> None:
        self.store.remove(self.base_key(key))


def local(state_dir: Path, target: str = "local") -> Catalogue:
    """The catalogue kept on this machine, under ``<state>/catalogue``."""
    root = state_dir / "catalogue"
    migrate(root)
    return Catalogue(DirStore(root, Trust.load()), target)


def migrate(root: Path) -> None:
    """Move a catalogue written before records were keyed by target into the keyed layout
    (once; nothing is dropped): images by their record's target, bases and channels to local,
    roll records to aws."""
    old = root / "images"
    if not (old.is_dir() or (root / "bases").is_dir() or (root / "channels.json").is_file()):
        return
    with held(root / ".lock"):
        for record_file in sorted(old.glob("*/*/record.json")) if old.is_dir() else []:
            target = str(_parse(record_file.read_bytes(), record_file).get("target", "local"))
            dest = root / target / "images" / record_file.parent.parent.name
            dest.mkdir(parents=True, exist_ok=True)
            record_file.parent.rename(dest / record_file.parent.name)
        if old.is_dir():
            shutil.rmtree(old)
        if (root / "bases").is_dir():
            (root / "local").mkdir(exist_ok=True)
            (root / "bases").rename(root / "local" / "bases")
        if (root / "channels.json").is_file():
            (root / "local").mkdir(exist_ok=True)
            (root / "channels.json").rename(root / "local" / "channels.json")
        for rolls in sorted((root / "rolls").glob("*.json")):
            for i, roll in enumerate(_parse(rolls.read_bytes(), rolls) or []):
                write_bytes(
                    root / "aws" / "rolls" / rolls.stem / f"{i:04d}.json", dumps(roll).encode()
                )
            rolls.unlink()
        with contextlib.suppress(OSError):
            (root / "rolls").rmdir()
