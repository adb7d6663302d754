"""The one lock helper: an exclusive ``flock`` on a file, waited for or refused at once.

Used for the per-image bake lock (refused at once, naming the holder), the base-image build
lock (waited for: two bakes that need the same base build it once) and the catalogue's write
lock (waited for). The kernel releases a lock when its holder dies, so a killed run never
leaves a stale one behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from bakehouse.errors import Busy


@contextlib.contextmanager
def held(path: Path, *, wait: bool = True, busy: str | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the block.

    ``wait=False`` refuses at once with :class:`Busy` (``busy``, then who holds it) when
    another process has it; the holder's pid and host are written into the file for that."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            raise Busy(
                f"{busy or f'{path} is locked'} ({holder})",
                "wait for that run to finish; if it was killed, its lock is released already",
            ) from None
        if not wait:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield
    finally:
        os.close(fd)
