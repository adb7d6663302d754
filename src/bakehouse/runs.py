"""Runs: an id, a private working folder, a lock per image, and clean exits on Ctrl-C or SIGTERM.

Every temporary thing a run makes (Packer output, VM overlays, keys, logs) lives under
``<state>/runs/<run-id>/``, with ``owner.json`` naming the process. A run that succeeds removes its
folder. A run that fails (or is stopped) keeps it for its logs — Packer's log, the serial console,
the suite's output — with ``failed.json`` saying what went wrong, and without what is large or
secret (disk images, the root filesystem, Packer's cache, private keys); the error message names
the folder, and ``invoke gc`` keeps the newest few such folders and removes older ones. A
``kill -9`` leaves the whole folder (and maybe processes) behind for ``invoke gc``, which sees that
the owner is gone. Keeping everything under one folder is what makes "nothing left over" checkable.

A run is over when the process named in its owner.json is gone. Its leftovers are the run
folder and any process whose command line points into that folder (Packer, qemu, mmdebstrap):
:func:`dead` finds them, :func:`remove_dead` stops and removes them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from bakehouse import proc
from bakehouse.errors import EXIT_USAGE, BakehouseError, Terminated, ToolError
from bakehouse.files import write_json
from bakehouse.locks import held


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

    @property
    def state_dir(self) -> Path:
        """The state folder the run belongs to (``<state>/runs/<id>``)."""
        return self.dir.parent.parent

    @property
    def version(self) -> str:
        """The version of the image this run bakes: its start time."""
        return self.started.strftime("%Y%m%d.%H%M%S")


def image_lock(
    state_dir: Path, image: str, target: str = "local"
) -> contextlib.AbstractContextManager[None]:
    """One bake per image and target at a time: a second one is refused at once, naming who
    holds it."""
    return held(
        state_dir / "locks" / f"bake-{image}-{target}.lock",
        wait=False,
        busy=f"image {image!r} is already being baked on the {target} target",
    )


FAILED = "failed.json"  # in a run folder kept because the run failed
KEEP_FAILED = 5  # failed runs gc keeps, newest first
# the local chroot build's image tree, and its disk layout's trees, in a run's folder
BUILD_ROOTFS = "rootfs"
BUILD_LAYOUT = "layout"
# what a kept folder loses: large (disks, root filesystems, caches) or secret (private keys)
BULKY_DIRS = (
    "base-rootfs",
    "patch-rootfs",
    "base-stage",
    "patch-stage",
    "output",
    "packer_cache",
    BUILD_ROOTFS,
    BUILD_LAYOUT,
)
BULKY_SUFFIXES = (".qcow2", ".raw", ".img", ".iso", ".vmdk", ".tar", ".zst")
BULKY_BYTES = 64 * 2**20  # whatever its name, no log is this large


def _is_private_key(path: Path) -> bool:
    """sshkeys' id_ed25519 (local), instances' <role>-key (an EC2 key pair's private half)."""
    name = path.name
    return (name.startswith("id_") and not name.endswith(".pub")) or name.endswith("-key")


def _large(path: Path) -> bool:
    try:
        return path.lstat().st_size > BULKY_BYTES
    except OSError:
        return False


def keep_failed(
    folder: Path, run_id: str, image: str, command: str, exc: BaseException, strip: bool = True
) -> None:
    """Keep a failed run's folder for its logs: note what failed, and (``strip``) drop the bulk
    and the keys."""
    for root, dirs, files in os.walk(folder, topdown=True) if strip else ():
        here = Path(root)
        for name in [d for d in dirs if d in BULKY_DIRS]:
            remove_tree(here / name)
            dirs.remove(name)
        for name in files:
            path = here / name
            if name.endswith(BULKY_SUFFIXES) or _is_private_key(path) or _large(path):
                with contextlib.suppress(OSError):
                    path.unlink()
    if isinstance(exc, BakehouseError):
        message, hint = exc.message, exc.hint
    elif isinstance(exc, KeyboardInterrupt):
        message, hint = "interrupted", None
    else:
        message, hint = f"{type(exc).__name__}: {exc}", None
    write_json(
        folder / FAILED,
        {
            "run_id": run_id,
            "image": image,
            "command": command,
            "error": message,
            "hint": hint,
            "ended": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
    )


@contextlib.contextmanager
def run_dir(
    state_dir: Path,
    image: str,
    command: str,
    keep: bool = False,
    keep_whole_on_failure: bool = False,
) -> Iterator[Run]:
    """A private working folder for one run: removed when the block ends well, kept with its
    logs when it fails or is stopped (the exception carries the folder as ``kept``; bad input
    keeps nothing), kept whole with ``keep`` — or, with ``keep_whole_on_failure``, whole when the
    failure kept a machine running (``vm_kept`` on the exception: its keys are in the folder)."""
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
    failed: BaseException | None = None
    try:
        yield run
    except BaseException as exc:
        failed = exc
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if failed is not None and getattr(failed, "exit_code", None) != EXIT_USAGE:
            # whole: asked for, or a machine was kept running for a person (its keys are here)
            whole = keep or (keep_whole_on_failure and getattr(failed, "vm_kept", False))
            with contextlib.suppress(OSError, BakehouseError):  # never hide the failure itself
                keep_failed(folder, run_id, image, command, failed, strip=not whole)
            if getattr(failed, "kept", None) is None:  # the innermost run has the logs
                failed.kept = folder  # type: ignore[attr-defined]
        elif not keep:
            shutil.rmtree(folder, ignore_errors=True)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_stopping: list[int] = []  # signals received since the outermost block began (main thread only)
_depth = [0]


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _stopping:
        _stopping.append(signum)
        print(
            f"bakehouse: {signal.Signals(signum).name} again: still stopping what this run "
            "started, so nothing is left behind (SIGKILL abandons it)",
            file=sys.stderr,
        )
        return
    _stopping.append(signum)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(
        f"stopped by signal {signal.Signals(signum).name}",
        "everything this run started has been stopped and removed",
    )


@contextlib.contextmanager
def terminate_as_exception() -> Iterator[None]:
    """For the block's duration, the first stop signal unwinds the main thread — SIGINT as
    KeyboardInterrupt, SIGTERM and SIGHUP as :class:`Terminated` — so every ``with`` block
    cleans up; every later one is only noted, so the cleanup itself (stopping Packer and its
    VM, removing instances, rolling a fleet back) is never cut short by a second Ctrl-C or a
    CI runner's repeated SIGTERM. SIGKILL remains the way to abandon it. Blocks nest (deploy
    holds bake and roll): the outermost one installs the handler and restores the old ones."""
    if threading.current_thread() is not threading.main_thread():  # only main can set them
        yield
        return
    outermost = _depth[0] == 0
    previous = {sig: signal.signal(sig, _on_signal) for sig in STOP_SIGNALS} if outermost else {}
    _depth[0] += 1
    try:
        yield
    finally:
        _depth[0] -= 1
        if outermost:
            for sig, old in previous.items():
                signal.signal(sig, old)
            _stopping.clear()


@dataclass
class DeadRun:
    run_id: str
    folder: Path
    owner_pid: int | None
    processes: list[tuple[int, str]] = field(default_factory=list)
    size: int = 0
    failed: dict[str, Any] | None = None  # failed.json of a folder kept for its logs
    started: str = ""  # owner.json's start time (ISO, microseconds)


def command_lines() -> dict[int, str]:
    """Every process's command line, by pid."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                raw = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if raw:
                out[int(entry.name)] = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return out


def _size(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).lstat().st_size
    return total


def dead(state_dir: Path) -> list[DeadRun]:
    runs = state_dir / "runs"
    if not runs.is_dir():
        return []
    cmdlines = command_lines()
    out = []
    for folder in sorted(runs.iterdir()):
        if not folder.is_dir():
            continue
        owner: int | None = None
        started = ""
        try:
            info = json.loads((folder / "owner.json").read_text())
            owner, started = int(info["pid"]), str(info.get("started", ""))
        except (OSError, ValueError, KeyError, TypeError):
            owner = None
        if owner is not None and proc.pid_alive(owner) and owner != os.getpid():
            continue  # still running
        marker = str(folder)
        procs = [
            (pid, cmd) for pid, cmd in cmdlines.items() if marker in cmd and pid != os.getpid()
        ]
        failed: dict[str, Any] | None = None
        try:
            failed = json.loads((folder / FAILED).read_text())
        except (OSError, ValueError):
            failed = None
        out.append(DeadRun(folder.name, folder, owner, procs, _size(folder), failed, started))
    return out


def to_collect(runs: list[DeadRun], keep_failed: int = KEEP_FAILED) -> list[DeadRun]:
    """What gc removes: every run a kill left behind, every failed run kept whole for a person
    to look at (``--keep-on-failure``: its VM, or the chroot build's files), and the failed runs
    kept for their logs beyond the newest ``keep_failed``."""
    kept = sorted(
        (r for r in runs if r.failed is not None and not r.processes and not looked_at(r)),
        key=lambda r: (r.started, r.run_id),
        reverse=True,
    )[: max(keep_failed, 0)]
    return [r for r in runs if r not in kept]


def looked_at(run: DeadRun) -> bool:
    """A failed run kept whole with the chroot build's files, for a person to look at."""
    return (run.folder / BUILD_ROOTFS).is_dir()


def remove_dead(leftover: DeadRun) -> None:
    for pid, _cmd in leftover.processes:
        proc.kill_tree(pid)
    try:
        tmp = json.loads((leftover.folder / "owner.json").read_text()).get("tmp")
    except (OSError, ValueError):
        tmp = None
    if tmp and Path(tmp).name.startswith("bakehouse-"):
        shutil.rmtree(tmp, ignore_errors=True)
    remove_tree(leftover.folder)


def mounted_below(path: Path) -> list[str]:
    """Mount points at or below ``path``."""
    prefix = str(path.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return found


def remove_tree(folder: Path) -> None:
    """Remove a run's folder, never through a mount below it: a person looking at a kept root
    filesystem may have bound this machine's /dev or /sys into it."""
    mounts = mounted_below(folder)
    if mounts:
        raise ToolError(
            f"{folder} is not removed: {', '.join(mounts)} is mounted in it",
            f"unmount it (umount {mounts[-1]}), then run this again",
        )
    remove_one_file_system(folder)


def remove_one_file_system(folder: Path) -> None:
    """``rm -rf`` that never crosses into another filesystem mounted below ``folder`` (a
    root filesystem's tree holds root-owned files, and may have had /proc or /dev in it)."""
    proc.run(["rm", "-rf", "--one-file-system", "--", str(folder)], timeout=600)
