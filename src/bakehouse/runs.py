"""Runs: an id, a private working folder, a lock per image, and clean exits on Ctrl-C or SIGTERM.

Every temporary thing a run makes (Packer output, VM overlays, keys, logs) lives under
``<state>/runs/<run-id>/``, with ``owner.json`` naming the process. The folder is removed when the
run ends, whatever the outcome; a ``kill -9`` leaves it behind for ``invoke gc``, which sees that
the owner is gone. Keeping everything under one folder is what makes "nothing left over" checkable.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import secrets
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from bakehouse.catalogue import write_json
from bakehouse.errors import BakehouseError, UsageError


def new_run_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Run:
    id: str
    dir: Path
    image: str
    started: dt.datetime
    tmp: Path  # a short private TMPDIR for tools (Packer's plugin sockets need a short path)

    def path(self, *parts: str) -> Path:
        return self.dir.joinpath(*parts)


@contextlib.contextmanager
def image_lock(state_dir: Path, image: str) -> Iterator[None]:
    """One bake per image at a time: a second one is refused at once, with who holds it."""
    locks = state_dir / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    path = locks / f"{image}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            raise UsageError(
                f"image {image!r} is already being baked ({holder})",
                "wait for that bake to finish; if it was killed, its lock is released already",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Wait for an exclusive lock (e.g. two bakes that need the same base: one builds it, the
    other then finds it in the cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def run_dir(state_dir: Path, image: str, command: str, keep: bool = False) -> Iterator[Run]:
    """A private working folder for one run, removed when the block ends (unless ``keep``)."""
    run_id = new_run_id()
    folder = state_dir / "runs" / run_id
    folder.mkdir(parents=True, mode=0o700)
    tmp = Path(tempfile.mkdtemp(prefix=f"bakehouse-{run_id[-6:]}-"))
    run = Run(run_id, folder, image, dt.datetime.now(dt.UTC), tmp)
    write_json(
        folder / "owner.json",
        {
            "run_id": run_id,
            "pid": os.getpid(),
            "pgid": os.getpgid(0),
            "image": image,
            "command": command,
            "started": run.started.isoformat(),
            "host": socket.gethostname(),
            "tmp": str(tmp),
        },
    )
    try:
        yield run
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


class Terminated(BakehouseError):
    """SIGTERM arrived: unwind like Ctrl-C so every ``with`` block cleans up."""

    exit_code = 143


@contextlib.contextmanager
def terminate_as_exception() -> Iterator[None]:
    """Turn SIGTERM (and SIGHUP) into an exception in the main thread for the block's duration."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated(
            f"stopped by signal {signal.Signals(signum).name}",
            "everything this run started has been stopped and removed",
        )

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
