"""Runs: one bake per image at a time, private working folders, SIGTERM unwinds."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from bakehouse.errors import Terminated, UsageError
from bakehouse.runs import image_lock, new_run_id, run_dir, terminate_as_exception


def test_second_bake_of_the_same_image_is_refused(tmp_path: Path) -> None:
    with image_lock(tmp_path, "web"):
        with (
            pytest.raises(UsageError, match="already being baked") as caught,
            image_lock(tmp_path, "web"),
        ):
            pass
        assert f"pid {os.getpid()}" in caught.value.message
        with image_lock(tmp_path, "worker"):  # other images are independent
            pass
        with image_lock(tmp_path, "web", "aws"):  # and so are other targets
            pass
    with image_lock(tmp_path, "web"):  # released
        pass


def test_run_dir_is_private_and_removed(tmp_path: Path) -> None:
    with run_dir(tmp_path, "web", "test") as run:
        assert run.dir.stat().st_mode & 0o777 == 0o700
        assert (run.dir / "owner.json").is_file()
        (run.dir / "junk").write_text("x")
    assert not run.dir.exists()


def test_run_dir_removed_on_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), run_dir(tmp_path, "web", "test") as run:
        raise RuntimeError("boom")
    assert not run.dir.exists()


def test_sigterm_unwinds(tmp_path: Path) -> None:
    with pytest.raises(Terminated), terminate_as_exception(), run_dir(tmp_path, "w", "t") as run:
        os.kill(os.getpid(), signal.SIGTERM)
    assert not run.dir.exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_run_ids_are_unique_and_sortable() -> None:
    ids = [new_run_id() for _ in range(50)]
    assert len(set(ids)) == 50
