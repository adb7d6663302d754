"""File helpers: content hashes and sizes."""

from __future__ import annotations

import hashlib
from pathlib import Path

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
