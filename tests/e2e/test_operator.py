"""The operator's day, in a pseudo-terminal as a person sees it: a shell in a booted image, and
a bake — its live progress, then its provisioning failing — that leaves its logs where the error
says."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, processes_with
from tests.terminal import Terminal

pytestmark = pytest.mark.e2e
BAKEHOUSE = str(Path(sys.executable).parent / "bakehouse")


def env(state: Path, **more: str) -> dict[str, str]:
    return {**os.environ, "BAKEHOUSE_STATE_DIR": str(state), "TERM": "xterm", **more}


def project_copy(tmp_path: Path) -> Path:
    """What a bake reads of the project (definitions, Packer files, the suite), to change."""
    project = tmp_path / "project"
    for part in ("images", "packer", "tests/hardening"):
        shutil.copytree(ROOT / part, project / part)
    (project / "tests" / "__init__.py").write_text("")
    return project


@pytest.fixture
def web_baked(state: Path) -> Iterator[None]:
    """The web image test_local_bake.py bakes in the shared state (baked here if run alone)."""
    if not list((state / "catalogue" / "local" / "images" / "web").glob("*/record.json")):
        term = Terminal([BAKEHOUSE, "bake", "web", "--no-publish"], env(state), ROOT)
        try:
            assert term.wait(3000) == 0, term.seen[-3000:]
        finally:
            term.close()
    yield


def test_a_shell_in_the_booted_image_and_gone_when_it_ends(state: Path, web_baked: None) -> None:
    term = Terminal([BAKEHOUSE, "shell", "web"], env(state), ROOT)
    try:
        term.expect(r"vm: booting bakehouse-shell-\S+ \((kvm|tcg)\)", 300)
        term.expect(r"admin@[\w-]+:~\$ ", 600)  # bash's prompt inside the image
        term.type("echo marker-$((6*7)) $(id -un)\r")
        term.expect(r"marker-42 admin", 60)
        term.type("exit\r")
        assert term.wait(120) == 0, term.seen[-2000:]
    finally:
        term.close()
    assert processes_with("bakehouse-shell-") == []  # the VM went with the shell
    runs = list((state / "runs").glob("*/owner.json"))
    assert [p for p in runs if '"shell"' in p.read_text()] == []  # ended well: no folder left


def test_a_failing_provision_step_keeps_its_logs_where_the_error_says(
    state: Path, tmp_path: Path
) -> None:
    project = project_copy(tmp_path)
    script = project / "packer" / "scripts" / "broken.sh"
    script.write_text("#!/bin/sh\necho 'provisioning broke on purpose' >&2\nexit 7\n")
    (project / "images" / "broken.yaml").write_text(
        "description: a web image whose last step fails\nextends: web\n"
        "provision:\n  - script: broken.sh\n"
    )
    term = Terminal([BAKEHOUSE, "bake", "broken"], env(state, BAKEHOUSE_ROOT=str(project)), ROOT)
    try:
        # what a person watches: the log lines, and under them the live status line, redrawn
        # in place with the phase, the Packer step and the elapsed time
        term.expect(r"\r\x1b\[K  … bake: packer provision:\S+ · \d+:\d\d", 900)
        term.expect(r"packer: provision:broken\.sh", 1800)
        assert term.wait(600) == 1, term.seen[-3000:]
    finally:
        term.close()
    shown = term.seen.replace("\r\n", "\n")
    assert "error: packer build failed" in shown and "Traceback" not in shown
    logs = shown.split("logs: ", 1)[1].split(" ", 1)[0]
    folder = Path(logs)
    assert folder.parent == state / "runs" and folder.is_dir()
    failed = json.loads((folder / "failed.json").read_text())
    assert failed["image"] == "broken" and "packer build failed" in failed["error"]
    packer_log = (folder / "stage" / "packer.log").read_text()
    assert "provisioning broke on purpose" in packer_log
    kept = [p for p in folder.rglob("*") if p.is_file()]
    assert not [p for p in kept if p.suffix in (".qcow2", ".raw") or p.name == "id_ed25519"]
    # the chroot build's tree is gone, and nothing of it is mounted anywhere
    assert not (folder / "rootfs").exists() and not (folder / "layout").exists()
    assert str(folder) not in Path("/proc/self/mountinfo").read_text()
    assert processes_with(str(folder)) == []
    shutil.rmtree(folder)  # the next tests expect a clean runs folder


def bake_kept_on_failure(where: dict[str, str], timeout: float) -> str:
    """`bake web --keep-on-failure` in a terminal, which must fail; what it showed."""
    term = Terminal([BAKEHOUSE, "bake", "web", "--keep-on-failure"], where, ROOT)
    try:
        assert term.wait(timeout) == 1, term.seen[-3000:]
    finally:
        term.close()
    return term.seen.replace("\r\n", "\n")


def gc_yes(where: dict[str, str]) -> None:
    import subprocess

    done = subprocess.run(
        [BAKEHOUSE, "gc", "--yes"],
        env=where,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_keep_on_failure_in_the_chroot_build_keeps_the_files_until_gc(
    state: Path, tmp_path: Path
) -> None:
    project = project_copy(tmp_path)
    (project / "packer" / "scripts" / "web.sh").write_text(
        "#!/bin/sh\ntouch /etc/half-done\necho 'web step broke on purpose' >&2\nexit 7\n"
    )
    where = env(state, BAKEHOUSE_ROOT=str(project))
    shown = bake_kept_on_failure(where, 900)
    assert "the image's files are kept as the failed step left them: sudo chroot " in shown
    rootfs = Path(shown.split("sudo chroot ", 1)[1].split(" ", 1)[0])
    assert (rootfs / "etc" / "half-done").is_file()  # as the failed step left it
    assert (rootfs / "usr/bin/nginx").exists() or (rootfs / "usr/sbin/nginx").exists()
    assert str(rootfs) not in Path("/proc/self/mountinfo").read_text()
    assert processes_with(str(rootfs)) == []
    gc_yes(where)
    assert not rootfs.exists()


def test_keep_on_failure_leaves_the_build_vm_to_look_at_until_gc(
    state: Path, tmp_path: Path
) -> None:
    import subprocess

    project = project_copy(tmp_path)
    web = project / "images" / "web.yaml"  # the build in a qemu VM (the default is a chroot)
    web.write_text(web.read_text() + "targets:\n  local:\n    build: vm\n")
    # the first provisioning step fails: the quickest way to a failed build
    (project / "packer" / "scripts" / "patch.sh").write_text(
        "#!/bin/sh\necho 'patch step broke on purpose' >&2\nexit 7\n"
    )
    where = env(state, BAKEHOUSE_ROOT=str(project))
    shown = bake_kept_on_failure(where, 1800)
    assert "the build VM is kept running as it failed (qemu pid " in shown
    config = shown.split("look inside: ssh -F ", 1)[1].split(" ", 1)[0]
    folder = Path(config).parent
    assert processes_with(str(folder)), "the VM should still be running"
    inside = subprocess.run(
        ["ssh", "-F", config, "bakehouse-build", "id -un; sudo -n cat /etc/hostname"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert inside.returncode == 0 and inside.stdout.startswith("admin\n"), inside.stderr
    gc_yes(where)
    assert processes_with(str(folder)) == [] and not folder.exists()  # "end it": gc --yes
