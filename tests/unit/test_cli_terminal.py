"""Every bad argument an operator hit, typed in a pseudo-terminal as they typed it: exit 2, one
error line saying what is wrong and one hint line, never a traceback, nothing changed."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.terminal import Terminal

BAKEHOUSE = str(Path(sys.executable).parent / "bakehouse")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["publish", "web", "--channel", "Bad_Name"], "--channel 'Bad_Name' is not a channel"),
        (["nightly", "--force", "nosuch", "--dry-run"], "--force names no image in this run"),
        (["nightly", "--shard", "5/4", "--dry-run"], "--shard 5/4: not K/N with 1 <= K <= N"),
        (["images.diff", "nosuch"], "no image named 'nosuch'"),
        (["images.history", "nosuch"], "no image named 'nosuch'"),
        (["gc", "--target", "gcp"], "--target 'gcp' is not a target"),
        (["publish"], "say which image"),
        (["images.show"], "say which image"),
        (["--dry", "images.list"], "No idea what '--dry' is!"),
        (["shell", "web", "--version", "20200101.000000"], "no image web version 20200101"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_a_bad_argument_is_one_clear_error(argv: list[str], says: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BAKEHOUSE_")}
    env |= {"BAKEHOUSE_STATE_DIR": str(tmp_path / "state"), "TERM": "xterm"}
    term = Terminal([BAKEHOUSE, *argv], env, ROOT)
    try:
        assert term.wait(60) == 2, term.seen
    finally:
        term.close()
    lines = [line for line in term.seen.replace("\r\n", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and says in errors[0], term.seen
    assert [line for line in lines if line.startswith("hint: ")], term.seen
    assert "Traceback" not in term.seen
