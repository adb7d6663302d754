"""A command in a pseudo-terminal, read as a person at it would see it: the output as it comes,
waits for what should appear, keys typed in."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import time
from collections.abc import Sequence
from pathlib import Path


class Terminal:
    def __init__(self, argv: Sequence[str], env: dict[str, str], cwd: Path):
        pid, fd = pty.fork()
        if pid == 0:  # the child: its controlling terminal is the pty
            os.chdir(cwd)
            os.execve(argv[0], list(argv), env)
        self.pid, self.fd = pid, fd
        self.seen = ""
        self.status: int | None = None

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # the other side closed: the program ended
            return False
        if not chunk:
            return False
        self.seen += chunk.decode(errors="replace")
        return True

    def expect(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            found = rx.search(self.seen)
            if found:
                return found
            if not self._read(min(1.0, max(0.0, deadline - time.monotonic()))):
                break
        found = rx.search(self.seen)
        if found:
            return found
        raise AssertionError(f"never saw {pattern!r}; the terminal showed:\n{self.seen[-3000:]}")

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                while self._read(0.1):  # what it printed last
                    pass
                self.status = os.waitstatus_to_exitcode(status)
                return self.status
            self._read(0.5)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError(f"still running after {timeout}s:\n{self.seen[-3000:]}")

    def close(self) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.wait(120)
            except (OSError, AssertionError):
                pass
        os.close(self.fd)
