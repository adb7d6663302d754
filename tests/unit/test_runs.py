"""Runs: one bake per image at a time, private working folders, SIGTERM unwinds."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from bakehouse.errors import Terminated, ToolError, UsageError
from bakehouse.runs import (
    dead,
    image_lock,
    new_run_id,
    run_dir,
    terminate_as_exception,
    to_collect,
)


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


def _fill(run_dir_: Path) -> None:
    """What a run folder holds when a bake fails: logs, a disk, keys, a root filesystem."""
    (run_dir_ / "stage").mkdir()
    (run_dir_ / "stage" / "packer.log").write_text("==> provision:web.sh failed\n")
    (run_dir_ / "stage" / "web.qcow2").write_bytes(b"\0" * 4096)
    (run_dir_ / "keys").mkdir()
    (run_dir_ / "keys" / "id_ed25519").write_text("PRIVATE")
    (run_dir_ / "keys" / "id_ed25519.pub").write_text("ssh-ed25519 AAAA")
    (run_dir_ / "build-key").write_text("PRIVATE")  # aws: the key pair's private half
    (run_dir_ / "output").mkdir()
    (run_dir_ / "output" / "vmlinuz").write_bytes(b"\0" * 4096)
    (run_dir_ / "base-rootfs" / "etc").mkdir(parents=True)
    (run_dir_ / "base-rootfs" / "etc" / "shadow").write_text("root:*:")
    for folder in ("patch-rootfs", "base-stage", "patch-stage", "packer_cache"):
        (run_dir_ / folder).mkdir()
        (run_dir_ / folder / "x").write_text("bulk")
    for name in ("base.raw", "initrd.img", "a.iso", "b.vmdk", "rootfs.tar", "rootfs.tar.zst"):
        (run_dir_ / "stage" / name).write_bytes(b"\0")
    with (run_dir_ / "stage" / "console.dump").open("wb") as big:  # any name, over 64 MiB
        big.truncate(65 * 2**20)


def test_a_failed_run_keeps_its_logs_not_its_disks_or_keys(tmp_path: Path) -> None:
    with pytest.raises(ToolError) as caught, run_dir(tmp_path, "web", "bake-local") as run:
        _fill(run.dir)
        raise ToolError("packer build failed", "see the log")
    assert caught.value.kept == run.dir  # type: ignore[attr-defined]
    kept = sorted(str(p.relative_to(run.dir)) for p in run.dir.rglob("*"))
    assert kept == [
        "failed.json",
        "keys",
        "keys/id_ed25519.pub",
        "owner.json",
        "stage",
        "stage/packer.log",
    ]
    failed = json.loads((run.dir / "failed.json").read_text())
    assert failed["error"] == "packer build failed" and failed["hint"] == "see the log"
    assert failed["image"] == "web" and failed["command"] == "bake-local"
    assert not run.tmp.exists()


def test_bad_input_keeps_nothing_and_keep_run_keeps_everything(tmp_path: Path) -> None:
    with pytest.raises(UsageError), run_dir(tmp_path, "web", "test") as run:
        raise UsageError("--channel 'Bad' is not a channel name")
    assert not run.dir.exists()
    with pytest.raises(ToolError), run_dir(tmp_path, "web", "test", keep=True) as run:
        _fill(run.dir)
        raise ToolError("boom")
    assert (run.dir / "keys" / "id_ed25519").exists() and (run.dir / "stage" / "web.qcow2").exists()


def test_the_innermost_run_names_the_folder(tmp_path: Path) -> None:
    with (
        pytest.raises(ToolError) as caught,
        run_dir(tmp_path, "web", "deploy") as outer,
        run_dir(tmp_path, "web", "bake") as inner,
    ):
        raise ToolError("boom")
    assert caught.value.kept == inner.dir != outer.dir  # type: ignore[attr-defined]


def test_sigterm_unwinds_and_keeps_the_logs(tmp_path: Path) -> None:
    with pytest.raises(Terminated), terminate_as_exception(), run_dir(tmp_path, "w", "t") as run:
        os.kill(os.getpid(), signal.SIGTERM)
    assert json.loads((run.dir / "failed.json").read_text())["error"].startswith("stopped by")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_ctrl_c_keeps_the_logs_too(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt) as caught, run_dir(tmp_path, "w", "t") as run:
        raise KeyboardInterrupt
    assert json.loads((run.dir / "failed.json").read_text())["error"] == "interrupted"
    assert caught.value.kept == run.dir  # type: ignore[attr-defined]


def test_gc_keeps_the_newest_failed_runs_and_every_dead_one_goes(tmp_path: Path) -> None:
    ids = []
    for _ in range(4):
        with pytest.raises(ToolError), run_dir(tmp_path, "web", "bake") as run:
            raise ToolError("boom")
        ids.append(run.id)
    with run_dir(tmp_path, "web", "bake", keep=True) as killed:  # as a kill -9 leaves it
        pass
    owner = json.loads((killed.dir / "owner.json").read_text())
    (killed.dir / "owner.json").write_text(json.dumps({**owner, "pid": 2**22 + 1}))
    found = dead(tmp_path)
    assert sorted(r.run_id for r in found) == sorted([*ids, killed.id])
    assert {r.run_id for r in to_collect(found, keep_failed=2)} == {ids[0], ids[1], killed.id}
    assert {r.run_id for r in to_collect(found, keep_failed=0)} == {*ids, killed.id}
    assert {r.run_id for r in to_collect(found, keep_failed=9)} == {killed.id}


def test_run_ids_are_unique_and_sortable() -> None:
    ids = [new_run_id() for _ in range(50)]
    assert len(set(ids)) == 50


def test_keep_on_failure_keeps_the_whole_folder_only_when_a_vm_was_kept(tmp_path: Path) -> None:
    with pytest.raises(ToolError), run_dir(tmp_path, "web", "b", keep_whole_on_failure=True) as run:
        _fill(run.dir)
        raise ToolError("verification failed")  # no VM kept: stripped like any failure
    assert not (run.dir / "keys" / "id_ed25519").exists()
    assert (run.dir / "failed.json").is_file()
    kept = ToolError("packer build failed")
    kept.vm_kept = True  # type: ignore[attr-defined]
    with pytest.raises(ToolError), run_dir(tmp_path, "web", "b", keep_whole_on_failure=True) as run:
        _fill(run.dir)
        raise kept
    assert (run.dir / "keys" / "id_ed25519").exists()  # how a person reaches the kept VM
    assert json.loads((run.dir / "failed.json").read_text())["error"] == "packer build failed"


def test_a_folder_that_cannot_be_kept_never_hides_the_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bakehouse import runs

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runs, "keep_failed", full)
    with pytest.raises(ToolError, match="packer build failed"), run_dir(tmp_path, "w", "b"):
        raise ToolError("packer build failed")


def test_gc_never_keeps_a_failed_run_that_still_has_processes(tmp_path: Path) -> None:
    from bakehouse.runs import DeadRun

    failed = {"error": "x"}
    quiet = DeadRun("20261130T010000Z-aaaaaa", tmp_path, 1, [], 0, failed, "2026-11-30T01:00")
    busy = DeadRun(
        "20261130T020000Z-bbbbbb", tmp_path, 1, [(9, "qemu")], 0, failed, "2026-11-30T02"
    )
    assert to_collect([quiet, busy], keep_failed=5) == [busy]  # a kept VM: gc --yes ends it


def test_gc_removes_a_failed_run_kept_with_its_files_to_look_at(tmp_path: Path) -> None:
    """--keep-on-failure in the chroot build keeps the image's files (hundreds of MB): gc
    removes them as it ends a kept VM, whatever the count of failed runs kept for their logs."""
    from bakehouse.runs import DeadRun

    failed = {"error": "x"}
    logs, files = tmp_path / "logs", tmp_path / "files"
    (files / "rootfs").mkdir(parents=True)
    logs.mkdir()
    only_logs = DeadRun("20261130T010000Z-aaaaaa", logs, 1, [], 0, failed, "2026-11-30T01")
    with_files = DeadRun("20261130T020000Z-bbbbbb", files, 1, [], 0, failed, "2026-11-30T02")
    assert to_collect([only_logs, with_files], keep_failed=5) == [with_files]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a bind mount)")
def test_gc_never_removes_through_a_mount_in_a_run_folder(tmp_path: Path) -> None:
    """Someone looking at a kept root filesystem may bind this machine's folders into it."""
    import subprocess

    from bakehouse.errors import ToolError
    from bakehouse.runs import remove_tree

    machine = tmp_path / "machine"
    machine.mkdir()
    (machine / "precious").write_text("x\n")
    run = tmp_path / "run"
    (run / "rootfs" / "dev").mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(machine), str(run / "rootfs" / "dev")], check=True)
    try:
        with pytest.raises(ToolError, match="rootfs/dev is mounted in it") as caught:
            remove_tree(run)
        assert "umount" in caught.value.hint
        assert (machine / "precious").read_text() == "x\n"
    finally:
        subprocess.run(["umount", str(run / "rootfs" / "dev")], check=True)
    remove_tree(run)
    assert not run.exists() and (machine / "precious").exists()
