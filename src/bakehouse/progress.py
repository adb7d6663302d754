"""Progress by phase with elapsed time, on stderr; timings are kept for the report."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import TextIO

from bakehouse.errors import printable


class Progress:
    def __init__(self, stream: TextIO | None = None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.start = time.monotonic()
        self.timings: dict[str, float] = {}

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def say(self, message: str) -> None:
        if not self.quiet:
            # a message may carry a tool's or a guest's output: escaped for the terminal
            try:
                self.stream.write(f"[{self.elapsed():7.1f}s] {printable(message)}\n")
                self.stream.flush()
            except OSError:  # the reader went away (`2>&1 | head`): the work goes on, silent
                self.quiet = True

    @contextlib.contextmanager
    def phase(self, name: str, message: str | None = None) -> Iterator[None]:
        self.say(f"{name}: {message or 'started'}")
        t0 = time.monotonic()
        ok = False
        try:
            yield
            ok = True
        finally:
            took = time.monotonic() - t0
            self.timings[name] = self.timings.get(name, 0.0) + took
            self.say(f"{name}: {'done' if ok else 'stopped'} in {took:.1f}s")

    def record(self, name: str, seconds: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + seconds
