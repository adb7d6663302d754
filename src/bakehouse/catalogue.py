"""The local image catalogue: artifacts plus one JSON record per image, and channel history.

Layout under ``<state>/catalogue/``::

    images/<name>/<version>/record.json   + disk.qcow2, vmlinuz, initrd.img, manifest.json, …
    bases/<key>/record.json               + base.qcow2, vmlinuz, initrd.img, status
    channels.json                         {image: {channel: {current, history: [...]}}}

An entry appears whole or not at all: its folder is assembled inside the run's private folder,
then renamed into place (same filesystem) with its record already written. Every change is made
under an exclusive lock and written to a temp file that replaces the old one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bakehouse.errors import BakehouseError, UsageError

TRANSITIONS: dict[str, frozenset[str]] = {
    "baked": frozenset({"verified", "failed"}),
    "verified": frozenset({"published", "failed"}),
    "published": frozenset({"deprecated"}),
    "failed": frozenset(),
    "deprecated": frozenset(),
}

Record = dict[str, Any]


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def write_json(path: Path, data: Any) -> None:
    """Atomically replace ``path`` with ``data`` as JSON (fsync'd temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


class CatalogueError(BakehouseError):
    pass


class Catalogue:
    def __init__(self, root: Path):
        self.root = root

    # ---- locking ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # ---- paths -----------------------------------------------------------------------------------
    def image_dir(self, name: str, version: str) -> Path:
        return self.root / "images" / name / version

    def base_dir(self, key: str) -> Path:
        return self.root / "bases" / key

    # ---- entries ---------------------------------------------------------------------------------
    def add(self, record: Record, staged: Path) -> Path:
        """Move a fully staged folder into the catalogue with ``record`` as its record."""
        if record["kind"] == "base":
            dest = self.base_dir(record["key"])
        else:
            dest = self.image_dir(record["name"], record["version"])
        write_json(staged / "record.json", record)
        with self.locked():
            if dest.exists():
                raise CatalogueError(f"catalogue already has {dest.relative_to(self.root)}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            staged.rename(dest)
        return dest

    def remove_base(self, key: str) -> None:
        with self.locked():
            shutil.rmtree(self.base_dir(key), ignore_errors=True)

    def base(self, key: str) -> Record | None:
        path = self.base_dir(key) / "record.json"
        return _read(path) if path.is_file() else None

    def images(self, name: str | None = None) -> list[Record]:
        folder = self.root / "images"
        pattern = f"{name}/*/record.json" if name else "*/*/record.json"
        if not folder.is_dir():
            return []
        return sorted(
            (r for p in folder.glob(pattern) if (r := _read(p)) is not None),
            key=lambda r: (str(r["name"]), str(r["created"]), str(r["version"])),
        )

    def image(self, name: str, version: str) -> Record:
        path = self.image_dir(name, version) / "record.json"
        record = _read(path) if path.is_file() else None
        if record is None:
            known = ", ".join(r["version"] for r in self.images(name)) or "none"
            raise UsageError(
                f"no image {name} version {version} in the catalogue",
                f"versions of {name}: {known}",
            )
        out: Record = record
        return out

    def latest(self, name: str, state: str | None = None) -> Record | None:
        records = [r for r in self.images(name) if state is None or r["state"] == state]
        return records[-1] if records else None

    def transition(
        self, name: str, version: str, state: str, note: str = "", **fields: Any
    ) -> Record:
        with self.locked():
            record = self.image(name, version)
            current = record["state"]
            if state not in TRANSITIONS[current]:
                raise CatalogueError(
                    f"{name} {version} is {current}; it cannot become {state}",
                    "only verified images can be published",
                )
            record["state"] = state
            record.setdefault("history", []).append({"state": state, "at": now_iso(), "note": note})
            record.update(fields)
            write_json(self.image_dir(name, version) / "record.json", record)
            return record

    # ---- roll records ---------------------------------------------------------------------------
    def add_roll(self, image: str, record: Record) -> None:
        with self.locked():
            path = self.root / "rolls" / f"{image}.json"
            records = _read(path) or []
            records.append(record)
            write_json(path, records)

    def rolls(self, image: str) -> list[Record]:
        data = _read(self.root / "rolls" / f"{image}.json")
        return list(data) if isinstance(data, list) else []

    # ---- channels --------------------------------------------------------------------------------
    def channels(self) -> dict[str, dict[str, Any]]:
        data = _read(self.root / "channels.json")
        out: dict[str, dict[str, Any]] = data if isinstance(data, dict) else {}
        return out

    def point(self, name: str, version: str, channels: list[str], by: str) -> Record:
        """Publish: point ``channels`` of ``name`` at ``version`` (which must be verified)."""
        with self.locked():
            record = self.image(name, version)
            if record["state"] not in ("verified", "published"):
                raise CatalogueError(
                    f"{name} {version} is {record['state']}; only verified images are published",
                    "bake it again, or look at its verify report",
                )
            data = self.channels()
            at = now_iso()
            for channel in channels:
                entry = data.setdefault(name, {}).setdefault(
                    channel, {"current": None, "history": []}
                )
                entry["history"].append(
                    {"version": version, "previous": entry["current"], "at": at, "by": by}
                )
                entry["current"] = version
            write_json(self.root / "channels.json", data)
            if record["state"] == "verified":
                record["state"] = "published"
                record.setdefault("history", []).append(
                    {"state": "published", "at": at, "note": "channels: " + ", ".join(channels)}
                )
            record["channels"] = sorted(set(record.get("channels", [])) | set(channels))
            write_json(self.image_dir(name, version) / "record.json", record)
            return record


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CatalogueError(
            f"cannot read {path}: {exc}",
            "the catalogue is damaged; restore the file or remove the entry",
        ) from None
