"""Progress by phase with elapsed time, on stderr; timings are kept for the report.

Every phase says when it starts and ends. While one runs, a person sees that it is alive:
on a terminal a status line under the log, redrawn every second, with the phase, what it is
doing now (``detail``: a Packer step, controls done of total, packages set up), its elapsed
time and an estimate from previous runs (``estimates``); elsewhere (CI logs, files) a plain
timestamped line every ``heartbeat`` seconds instead, so logs stay readable.
"""

from __future__ import annotations

import contextlib
import re
import statistics
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from bakehouse.errors import printable

HEARTBEAT = 30.0  # seconds between "still running" lines when the output is not a terminal
LIVE_TICK = 1.0  # seconds between redraws of the status line on a terminal


def clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def estimates_from(timings: Iterable[dict[str, Any]], last: int = 3) -> dict[str, float]:
    """Per phase, the median of the ``last`` runs that timed it (newest last in ``timings``)."""
    seen: dict[str, list[float]] = {}
    for run in timings:
        for name, seconds in run.items():
            if isinstance(seconds, int | float) and seconds >= 0:
                seen.setdefault(name, []).append(float(seconds))
    return {name: statistics.median(values[-last:]) for name, values in seen.items()}


class Progress:
    def __init__(
        self,
        stream: TextIO | None = None,
        quiet: bool = False,
        live: bool | None = None,
        heartbeat: float = HEARTBEAT,
    ):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.start = time.monotonic()
        self.timings: dict[str, float] = {}
        self.estimates: dict[str, float] = {}  # seconds per phase, from previous runs
        self.heartbeat = heartbeat
        if live is None:
            isatty = getattr(self.stream, "isatty", None)
            live = bool(isatty and isatty())
        self.live = live
        self._lock = threading.RLock()
        self._phases: list[tuple[str, float]] = []  # the running ones, innermost last
        self._detail = ""
        self._drawn = False  # a status line is on the terminal
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except OSError:  # the reader went away (`2>&1 | head`): the work goes on, silent
            self.quiet = True

    def say(self, message: str) -> None:
        if self.quiet:
            return
        with self._lock:
            # a message may carry a tool's or a guest's output: escaped for the terminal
            line = f"[{self.elapsed():7.1f}s] {printable(message)}\n"
            if self._drawn:
                line = "\r\033[K" + line
                self._drawn = False
            self._write(line)
            if self.live:
                self._draw()

    def detail(self, text: str) -> None:
        """What the running phase is doing now (shown with it; not a log line)."""
        with self._lock:
            self._detail = printable(text)
            if self.live and not self.quiet:
                self._draw()

    def status(self) -> str:
        """The running phase, what it does, how long it has run and, from previous runs, about
        how long it takes; empty when no phase runs."""
        with self._lock:
            if not self._phases:
                return ""
            name, began = self._phases[-1]
            took = time.monotonic() - began
            text = f"{name}: {self._detail or 'running'} · {clock(took)}"
            expected = self.estimates.get(name)
            if expected:
                left = expected - took
                text += f" of about {clock(expected)}" if left > 0 else " (longer than usual)"
            return text

    def _draw(self) -> None:
        text = self.status()
        if text:
            self._write(f"\r\033[K  … {text}")
            self._drawn = True

    def _tick(self, stop: threading.Event) -> None:
        every = LIVE_TICK if self.live else self.heartbeat
        while not stop.wait(every):
            if self.quiet:
                continue
            with self._lock:
                if self.live:
                    self._draw()
                elif self._phases:
                    self._write(f"[{self.elapsed():7.1f}s] {self.status()}\n")

    def _ticking(self) -> None:
        """A ticker for the phases now running: a new one whenever the last was told to stop
        (it may not have noticed yet; each has its own stop event)."""
        if self._ticker is None or self._stop.is_set() or not self._ticker.is_alive():
            self._stop = threading.Event()
            self._ticker = threading.Thread(
                target=self._tick, args=(self._stop,), name="progress", daemon=True
            )
            self._ticker.start()

    @contextlib.contextmanager
    def phase(self, name: str, message: str | None = None) -> Iterator[None]:
        self.say(f"{name}: {message or 'started'}")
        t0 = time.monotonic()
        with self._lock:
            self._phases.append((name, t0))
            self._detail = ""
        self._ticking()
        ok = False
        try:
            yield
            ok = True
        finally:
            took = time.monotonic() - t0
            with self._lock:
                self._phases.remove((name, t0))
                self._detail = ""
                if not self._phases:
                    self._stop.set()
            self.timings[name] = self.timings.get(name, 0.0) + took
            self.say(f"{name}: {'done' if ok else 'stopped'} in {took:.1f}s")
            with self._lock:
                if self._drawn and not self._phases:
                    self._write("\r\033[K")
                    self._drawn = False

    def record(self, name: str, seconds: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + seconds


class PackageWatch:
    """The detail of a phase that installs packages (mmdebstrap, apt): its stage, and how many
    packages are set up so far — from the tool's own output lines."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.stage = ""
        self.unpacked = 0
        self.set_up = 0

    def __call__(self, line: str) -> None:
        line = line.strip()
        if line.startswith("I: "):  # mmdebstrap's own stages
            self.stage = line[3:].rstrip(".")
        elif line.startswith("Unpacking "):
            self.unpacked += 1
        elif line.startswith("Setting up "):
            self.set_up += 1
        else:
            return
        counts = f"{self.set_up} of {self.unpacked} packages set up" if self.unpacked else ""
        self.progress.detail(" · ".join(p for p in (self.stage, counts) if p))


class SuiteWatch:
    """The detail of the hardening suite: controls judged of all, and how many failed — from
    pytest's verbose lines (``collected N items``, then one line per control)."""

    OUTCOME = re.compile(r" (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b.*\[\s*\d+%\]\s*$")
    COLLECTED = re.compile(r"collected (\d+) items?")

    def __init__(self, progress: Progress):
        self.progress = progress
        self.total = 0
        self.done = 0
        self.failed = 0

    def __call__(self, line: str) -> None:
        found = self.COLLECTED.search(line)
        if found:
            self.total = int(found.group(1))
            return
        outcome = self.OUTCOME.search(line)
        if outcome is None:
            return
        self.done += 1
        self.failed += outcome.group(1) in ("FAILED", "ERROR")
        text = f"{self.done}/{self.total or '?'} controls"
        if self.failed:
            text += f", {self.failed} failed"
        self.progress.detail(text)
