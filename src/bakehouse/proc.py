"""The only module that starts processes: ``run(argv) -> Result``.

Commands are argv lists, never shell strings. Everything else builds argv and hands it here, so
the rest of the code is testable without running anything.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bakehouse.errors import ToolError

INSTALL_HINT = "run ./run (it installs packer, qemu-system-x86, qemu-utils and mmdebstrap with apt)"


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def which(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolError(f"{tool} is not installed", INSTALL_HINT)
    return path


def run(
    argv: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = False,
    input_text: str | None = None,
) -> Result:
    """Run ``argv`` to completion and capture its output."""
    args = tuple(str(a) for a in argv)
    full_env = {**os.environ, **env} if env else None
    try:
        proc = subprocess.run(
            args,
            cwd=cwd,
            env=full_env,
            timeout=timeout,
            capture_output=True,
            text=True,
            input=input_text,
            check=False,
        )
    except FileNotFoundError:
        raise ToolError(f"{args[0]} is not installed", INSTALL_HINT) from None
    except subprocess.TimeoutExpired:
        raise ToolError(
            f"{args[0]} did not finish within {timeout:.0f} s", f"command: {' '.join(args)}"
        ) from None
    result = Result(args, proc.returncode, proc.stdout, proc.stderr)
    if check and not result.ok:
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise ToolError(
            f"{args[0]} failed (exit {result.returncode}): " + " | ".join(tail),
            f"command: {' '.join(args)}",
        )
    return result


def stop_groups(procs: Sequence[subprocess.Popen[bytes]], grace: float) -> None:
    """Stop several process groups at once: all are asked (SIGINT) together, so each cleans
    up in parallel, then each is escalated as :func:`_stop_group` does."""
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    for p in procs:
        _stop_group(p, max(0.0, deadline - time.monotonic()))


def _stop_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """Ask a process group to stop (SIGINT, then SIGTERM), then kill it; always reaps."""
    if proc.poll() is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers left in the group
        return
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def stream(
    argv: Sequence[str | Path],
    *,
    log: Path,
    on_line: Callable[[str], None] | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    grace: float = 60.0,
    started: Callable[[subprocess.Popen[bytes]], None] | None = None,
    leave_running: bool = False,
) -> int:
    """Run ``argv`` in its own process group, appending its output to ``log`` and handing each
    line to ``on_line``. On any exception here (Ctrl-C, SIGTERM turned into an exception, a
    timeout) the whole group is stopped — politely first, so Packer can clean up its VM — and
    the exception goes on."""
    args = [str(a) for a in argv]
    full_env = {**os.environ, **env} if env else None
    deadline = None if timeout is None else time.monotonic() + timeout
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as sink:
        try:
            proc = subprocess.Popen(
                args,
                cwd=cwd,
                env=full_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise ToolError(f"{args[0]} is not installed", INSTALL_HINT) from None
        try:
            if started is not None:
                started(proc)
            assert proc.stdout is not None

            def line(raw: bytes) -> None:
                sink.write(raw)
                sink.flush()
                if on_line is not None:
                    on_line(raw.decode("utf-8", "replace").rstrip("\n"))

            fd, pending = proc.stdout.fileno(), b""
            while True:
                # never a blocking read: a silent tool still meets its deadline, and the end of
                # the tool is its own exit, not the pipe's (a VM it left keeps the pipe open)
                ready, _, _ = select.select([fd], [], [], 0.5)
                if ready:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        break
                    *lines, pending = (pending + chunk).split(b"\n")
                    for raw in lines:
                        line(raw + b"\n")
                elif proc.poll() is not None:
                    # it has exited: what it wrote just before is still in the pipe (a second
                    # at most: a process it left may go on writing)
                    drain = time.monotonic() + 1.0
                    while (
                        time.monotonic() < drain
                        and select.select([fd], [], [], 0)[0]
                        and (chunk := os.read(fd, 65536))
                    ):
                        *lines, pending = (pending + chunk).split(b"\n")
                        for raw in lines:
                            line(raw + b"\n")
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise ToolError(
                        f"{args[0]} did not finish within {timeout:.0f} s",
                        f"its output is in {log}",
                    )
            if pending:
                line(pending)
            code = proc.wait()
        except BaseException:
            _stop_group(proc, grace)
            raise
        # ended by itself: what it leaves in its group is stopped too, unless it failed and the
        # caller keeps what it left (a failed build's VM, kept on purpose)
        if not (leave_running and code != 0):
            _stop_group(proc, grace)
        return code


class Background:
    """A long-running process (a VM) in its own process group, stopped when the block ends."""

    def __init__(self, argv: Sequence[str | Path], *, log: Path, grace: float = 10.0):
        self.argv = [str(a) for a in argv]
        self.log = log
        self.grace = grace
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Background:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as sink:
            try:
                self.proc = subprocess.Popen(
                    self.argv,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except FileNotFoundError:
                raise ToolError(f"{self.argv[0]} is not installed", INSTALL_HINT) from None
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self) -> None:
        if self.proc is not None:
            _stop_group(self.proc, self.grace)

    def __exit__(self, *exc: object) -> None:
        self.stop()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_tree(pid: int) -> None:
    """Kill a process group left behind by a dead run (gc)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
