"""The trust anchor for what bakehouse keeps in its state folder (``.bakehouse/``).

Records there name the sha256 of every artifact they describe, which finds a damaged file but
not a forged pair: whoever can write the folder — a restored CI cache, a copy from another
machine — could put in a tarball and a record that agree. So every document bakehouse writes
there (catalogue records, channels, roll records, the parsed package indexes and the newest
index dates seen) is sealed with a secret key kept *outside* the folder, and checked when read:

- ``BAKEHOUSE_TRUST_KEY`` (64 hex digits; in CI, a secret the pipeline holds), or else
- ``$XDG_CONFIG_HOME/bakehouse/trust.key`` (``~/.config/…``), made on first use, mode 0600.

The seal is HMAC-SHA256 over the document's place in the folder and its bytes, so a document
cannot be changed, made up, or moved to another entry (it can be put back as it was: a seal
proves who wrote a document, not that it is the newest). What does not verify is never used: a
base is built again, a parsed index fetched again, and a record is refused with an error that
says so (``invoke trust`` lists such documents and, with ``--yes``, seals the ones
the operator vouches for).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

from bakehouse.errors import Untrusted, UsageError

KEY_ENV = "BAKEHOUSE_TRUST_KEY"
SUFFIX = ".seal"


def key_file() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "bakehouse" / "trust.key"


def _parse(text: str, where: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != 32:
        raise UsageError(
            f"{where} is not a trust key",
            "it must be 64 hex digits: make one with `openssl rand -hex 32`",
        )
    return key


def _from_file(path: Path) -> bytes:
    if path.is_symlink():
        raise UsageError(
            f"the trust key {path} is a symbolic link", "make it a file of its own (mode 0600)"
        )
    if not path.exists():
        _make(path)
    info = path.stat()
    if info.st_mode & 0o077 or info.st_uid != os.getuid():
        raise UsageError(
            f"the trust key {path} can be read or changed by others",
            f"chmod 600 {path} (and chown it to this user)",
        )
    return _parse(path.read_text(), str(path))


def _make(path: Path) -> None:
    """Write a new key whole, then put it in place only if there is none yet (a link cannot
    replace a file): a crash leaves no half-written key, and two first runs agree on one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):  # another bakehouse made it first: use it
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class Trust:
    """Seals and checks documents with one secret key."""

    def __init__(self, key: bytes):
        self._key = key

    @classmethod
    def load(cls) -> Trust:
        env = os.environ.get(KEY_ENV)
        if env is not None:
            return cls(_parse(env, KEY_ENV))
        return cls(_from_file(key_file()))

    def seal(self, place: str, data: bytes) -> str:
        return hmac.new(self._key, place.encode() + b"\0" + data, hashlib.sha256).hexdigest()

    def write_seal(self, path: Path, place: str, data: bytes) -> None:
        from bakehouse.files import write_bytes

        write_bytes(seal_path(path), self.seal(place, data).encode())

    def holds(self, path: Path, place: str, data: bytes) -> bool:
        """Whether ``data`` (read from ``path``) carries this key's seal for ``place``."""
        try:
            seal = seal_path(path).read_text().strip()
        except OSError:
            return False
        return hmac.compare_digest(seal, self.seal(place, data))

    def check(self, path: Path, place: str, data: bytes) -> bytes:
        if not self.holds(path, place, data):
            raise Untrusted(
                f"{path} is not sealed by this machine's trust key: it was changed, or made "
                "elsewhere (a restored cache, another machine), so it is not used",
                f"if you vouch for the folder, `invoke trust --yes` seals it; the key is "
                f"{KEY_ENV} or {key_file()}",
            )
        return data


def seal_path(path: Path) -> Path:
    return path.with_name(path.name + SUFFIX)


# what bakehouse seals in its state folder, relative to it: (pattern, place prefix)
DOCUMENTS = (
    ("catalogue/*/images/*/*/record.json", "catalogue/"),
    ("catalogue/*/bases/*/record.json", "catalogue/"),
    ("catalogue/*/channels.json", "catalogue/"),
    ("catalogue/*/rolls/*/*.json", "catalogue/"),
    ("cache/indexes/releases/*.date", "cache/"),
    ("cache/indexes/packages/*.json", "cache/"),
)


def unsealed(state_dir: Path, trust: Trust) -> list[tuple[Path, str]]:
    """Every document of the state folder this key has not sealed: (file, its place)."""
    out = []
    for pattern, prefix in DOCUMENTS:
        for path in sorted(state_dir.glob(pattern)):
            place = str(path.relative_to(state_dir / prefix.rstrip("/")))
            if not trust.holds(path, place, path.read_bytes()):
                out.append((path, place))
    return out


def adopt(state_dir: Path, yes: bool) -> dict[str, Any]:
    """The documents that do not verify; with ``yes``, seal them (the operator vouches)."""
    trust = Trust.load()
    found = unsealed(state_dir, trust)
    if yes:
        for path, place in found:
            trust.write_seal(path, place, path.read_bytes())
    return {"sealed": yes, "documents": [str(path) for path, _ in found]}
