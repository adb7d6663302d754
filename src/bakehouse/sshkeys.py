"""Ephemeral SSH key pairs: made per bake or verify, kept in a private temp folder, never baked.

Generated in-process (ed25519 via cryptography, which paramiko already needs): no ssh-keygen
process, no passphrase prompts, and the private key never leaves a 0700 folder that is removed
when the ``with`` block ends, whatever happens inside it.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: str  # "ssh-ed25519 AAAA… comment"

    @property
    def public_b64(self) -> str:
        """The public key line, base64 (no spaces), for a kernel command line."""
        return base64.b64encode(self.public.encode()).decode()


def write_key(folder: Path, comment: str) -> KeyPair:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    path = folder / "id_ed25519"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private)
    line = f"{public} {comment}"
    (folder / "id_ed25519.pub").write_text(line + "\n")
    return KeyPair(path, line)


@contextlib.contextmanager
def throwaway_key(
    comment: str = "bakehouse-ephemeral", parent: Path | None = None
) -> Iterator[KeyPair]:
    folder = Path(tempfile.mkdtemp(prefix="bakehouse-key-", dir=parent))
    try:
        folder.chmod(0o700)
        yield write_key(folder, comment)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
