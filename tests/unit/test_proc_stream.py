"""proc.stream, the way every tool runs (mmdebstrap, Packer, the suite): its output as lines,
its deadline kept even when it prints nothing, and its end being its own exit — not the end of
the pipe, which a process it left behind (a VM) may hold open."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from bakehouse import proc
from bakehouse.errors import ToolError
from tests.conftest import processes_with


def unique_sleep(seconds: int) -> str:
    """A sleep whose command line no other process has (its fraction is this test's pid)."""
    return f"sleep {seconds}.{os.getpid():07d}"


def gone(marker: str) -> bool:
    """No process runs ``marker`` any more (a killed one may take a moment to go)."""
    deadline = time.monotonic() + 5
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return processes_with(marker) == []


def test_lines_reach_the_log_and_the_watcher(tmp_path: Path) -> None:
    seen: list[str] = []
    code = proc.stream(
        ["sh", "-c", "echo one; printf 'two\\nthree'"], log=tmp_path / "log", on_line=seen.append
    )
    assert code == 0 and seen == ["one", "two", "three"]
    assert (tmp_path / "log").read_text() == "one\ntwo\nthree"


def test_a_silent_tool_still_meets_its_deadline(tmp_path: Path) -> None:
    marker = unique_sleep(31)
    start = time.monotonic()
    with pytest.raises(ToolError, match="did not finish within 0 s"):
        proc.stream(["sh", "-c", f"{marker}; :"], log=tmp_path / "log", timeout=0.3, grace=1)
    assert time.monotonic() - start < 15
    assert gone(marker)


def test_what_a_tool_leaves_holding_the_pipe_does_not_hold_the_caller(tmp_path: Path) -> None:
    marker = unique_sleep(32)
    start = time.monotonic()
    code = proc.stream(["sh", "-c", f"({marker}) & echo started"], log=tmp_path / "log")
    assert code == 0 and time.monotonic() - start < 10
    assert gone(marker)  # stopped with the tool's group


def test_a_failed_tool_can_leave_what_it_started_running_on_purpose(tmp_path: Path) -> None:
    marker = unique_sleep(33)
    code = proc.stream(
        ["sh", "-c", f"({marker}) & exit 3"], log=tmp_path / "log", leave_running=True
    )
    deadline = time.monotonic() + 5
    while not processes_with(marker) and time.monotonic() < deadline:  # the shell may be quicker
        time.sleep(0.05)
    left = processes_with(marker)
    try:
        assert code == 3 and left  # a failed build's VM, kept to look at
    finally:
        for pid in left:
            os.kill(pid, signal.SIGKILL)
    code = proc.stream(
        ["sh", "-c", f"({marker}) & exit 0"], log=tmp_path / "log", leave_running=True
    )
    assert code == 0 and gone(marker)  # only a failure keeps anything


def test_the_last_words_of_a_tool_are_not_lost_when_it_exits_between_two_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    real_poll = subprocess.Popen.poll

    def late_poll(self: subprocess.Popen[bytes]) -> int | None:
        time.sleep(0.3)  # a loaded host: the exit is seen after the last output arrived
        return real_poll(self)

    monkeypatch.setattr(subprocess.Popen, "poll", late_poll)
    seen: list[str] = []
    code = proc.stream(
        ["sh", "-c", "sleep 0.6; echo last line; exit 3"], log=tmp_path / "log", on_line=seen.append
    )
    assert code == 3 and seen == ["last line"]
