"""File helpers: content hashes, sizes, atomic JSON writes."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def describe(path: Path) -> dict[str, object]:
    """What a record keeps of an artifact: file name, sha256, size."""
    return {"file": path.name, "sha256": sha256(path), "size": path.stat().st_size}


def dumps(data: Any) -> str:
    """The one JSON form bakehouse writes: indented, sorted keys, dates as text."""
    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"


def write_json(path: Path, data: Any) -> None:
    """Atomically replace ``path`` with ``data`` as JSON (fsync'd temp file + rename)."""
    write_bytes(path, dumps(data).encode())


def write_bytes(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data`` (fsync'd temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
