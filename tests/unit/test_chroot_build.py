"""The local target's chroot build, with the real tools: the disk layout (sfdisk, mkfs.ext4,
debugfs, qemu-img) laid out from a small root filesystem and read back, the runner
(packer/local/in-root.sh) in namespaces of its own, and each guard. The whole build with Packer
and a verify boot: tests/e2e (every bake of the local target)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bakehouse import layout
from bakehouse.catalogue import Record
from bakehouse.errors import BaseError, PackerError
from bakehouse.files import describe
from bakehouse.targets.local import base as base_stage
from bakehouse.targets.local import chroot
from tests.conftest import ROOT

IN_ROOT = ROOT / "packer" / "local" / "in-root.sh"
FILESYSTEMS_SH = ROOT / "packer" / "scripts" / "filesystems.sh"
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chroot, mounts, owners)")
TOOLS = ("sfdisk", "mkfs.ext4", "debugfs", "qemu-img", "unshare")
tools = pytest.mark.skipif(
    not all(shutil.which(t) for t in TOOLS), reason=f"needs {', '.join(TOOLS)}"
)


# ---- the layout table, shared with filesystems.sh ---------------------------------------------
def test_filesystems_sh_refuses_to_run_without_the_table() -> None:
    done = subprocess.run(
        ["sh", str(FILESYSTEMS_SH)],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        check=False,
    )
    assert done.returncode == 2
    assert b"BAKEHOUSE_FILESYSTEMS is not set" in done.stderr


def test_the_host_asks_sfdisk_for_the_sizes_filesystems_sh_asks_for() -> None:
    """filesystems.sh's own table-making (its awk program, run here) and chroot.py's agree."""
    text = FILESYSTEMS_SH.read_text()
    m = re.search(r"^table=\$\((.*?)\)\n", text, re.S | re.M)
    assert m, "filesystems.sh no longer makes its table with table=$(...)"
    for mib in (1024, 2048, 5000):
        # the script's own steps: the table from BAKEHOUSE_FILESYSTEMS, 2 MiB kept for the GPT
        shell = (
            f'layout=$(printf "%s\\n" "$L" | tr ";" "\\n"); mib={mib - 2}; '
            f"table=$({m[1]}); printf '%s\\n' \"$table\""
        )
        made = subprocess.run(
            ["sh", "-c", shell],
            env={"PATH": os.environ["PATH"], "L": layout.env_value()},
            capture_output=True,
            text=True,
            check=True,
        )
        assert made.stdout == chroot.partition_table(mib), mib


def test_fstab_lines_mount_every_data_filesystem_nodev_nosuid() -> None:
    lines = layout.fstab_lines()
    assert [line.split()[1] for line in lines] == [f.mountpoint for f in layout.DATA_FILESYSTEMS]
    for line in lines:
        label, _, fstype, options, _, passno = line.split()
        assert label.startswith("LABEL=bh-") and fstype == "ext4" and passno == "2"
        assert {"nodev", "nosuid"} <= set(options.split(","))


# ---- the disks, laid out and read back ----------------------------------------------------------
def make_root(root: Path) -> None:
    for d in ("etc", "boot", "var/lib/bakehouse", "var/cache/apt", "var/log/audit", "var/tmp"):
        (root / d).mkdir(parents=True)
    (root / "home" / "admin").mkdir(parents=True)
    (root / "etc" / "fstab").write_text("/dev/vda\t/\text4\terrors=remount-ro\t0\t1\n")
    (root / "boot" / "vmlinuz-6.1.0-1").write_bytes(b"kernel")
    (root / "boot" / "initrd.img-6.1.0-1").write_bytes(b"initrd")
    manifest = {"kernel": "6.1.0-1", "packages": [{"name": "bash", "version": "5"}]}
    (root / "var/lib/bakehouse/manifest.json").write_text(json.dumps(manifest))
    (root / "var/cache/apt/cached").write_text("var\n")
    (root / "var/log/syslog").write_text("log\n")
    (root / "var/log/audit/audit.log").write_text("audit\n")
    (root / "var/tmp/kept").write_text("tmp\n")
    (root / "home/admin/.profile").write_text("home\n")
    os.chmod(root / "var/log/audit", 0o750)
    os.chmod(root / "var/tmp", 0o1777)
    os.chown(root / "home/admin", 1000, 1000)
    os.chmod(root / "home/admin", 0o750)


def built_tree(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A small finished root filesystem, and the empty stage and work folders assemble takes."""
    rootfs, stage, work = tmp_path / "rootfs", tmp_path / "stage", tmp_path / "work"
    stage.mkdir()
    work.mkdir()
    make_root(rootfs)
    return rootfs, stage, work


def debugfs(device: str, request: str) -> str:
    done = subprocess.run(
        ["debugfs", "-R", request, device], capture_output=True, text=True, check=True
    )
    return done.stdout


def names(device: str, folder: str = "/") -> set[str]:
    # one line per entry: /inode/mode/uid/gid/name/size/
    lines = debugfs(device, f"ls -p {folder}").splitlines()
    return {line.split("/")[5] for line in lines if line.count("/") >= 6} - {".", ".."}


@root_only
@tools
def test_the_disks_hold_the_root_and_each_data_filesystem(tmp_path: Path) -> None:
    rootfs, stage, work = built_tree(tmp_path)
    made = chroot.assemble(rootfs, stage, work, disk_mib=64, data_mib=160)
    assert made.kernel == "6.1.0-1" and made.manifest["packages"][0]["name"] == "bash"
    assert (stage / "vmlinuz").read_bytes() == b"kernel"
    assert (stage / "initrd.img").read_bytes() == b"initrd"
    assert json.loads((stage / "manifest.json").read_text()) == made.manifest
    assert sorted(p.name for p in work.iterdir()) == sorted(
        f.label for f in layout.DATA_FILESYSTEMS
    )  # the trees moved out; no raw disk is left behind
    raw = {}
    for name in ("disk", "data"):
        info = json.loads(
            subprocess.run(
                ["qemu-img", "info", "--output=json", str(stage / f"{name}.qcow2")],
                capture_output=True,
                check=True,
            ).stdout
        )
        assert (
            info["format"] == "qcow2"
            and info["format-specific"]["data"]["compression-type"] == "zstd"
        )
        raw[name] = tmp_path / f"{name}.raw"
        subprocess.run(
            ["qemu-img", "convert", "-O", "raw", str(stage / f"{name}.qcow2"), str(raw[name])],
            check=True,
        )
    # the root disk: whole-disk ext4 labelled bh-root, its size the image's disk, the data
    # folders empty mount points, the fstab with a line for each
    root_dev = str(raw["disk"])
    assert raw["disk"].stat().st_size == 64 * 2**20
    assert "Filesystem volume name:   bh-root" in debugfs(root_dev, "stats")
    assert names(root_dev, "/var") == set() and names(root_dev, "/home") == set()
    fstab = debugfs(root_dev, "cat /etc/fstab").splitlines()
    assert fstab[0].startswith("/dev/vda") and fstab[1:] == layout.fstab_lines()
    # the data disk: a GPT with one partition per filesystem, in order, named by label
    table = json.loads(
        subprocess.run(
            ["sfdisk", "--json", str(raw["data"])], capture_output=True, check=True
        ).stdout
    )["partitiontable"]
    assert table["label"] == "gpt"
    parts = table["partitions"]
    assert [p["name"] for p in parts] == [f.label for f in layout.DATA_FILESYSTEMS]
    want = {
        "bh-var": ({"cache", "lib", "log", "tmp"}, 0o755, (0, 0)),
        "bh-vartmp": ({"kept"}, 0o1777, (0, 0)),
        "bh-varlog": ({"syslog", "audit"}, 0o755, (0, 0)),
        "bh-audit": ({"audit.log"}, 0o750, (0, 0)),
        "bh-home": ({"admin"}, 0o755, (0, 0)),
    }
    for part in parts:
        device = f"{raw['data']}?offset={int(part['start']) * 512}"
        files, mode, owner = want[part["name"]]
        assert f"Filesystem volume name:   {part['name']}" in debugfs(device, "stats")
        assert names(device) - {"lost+found"} == files, part["name"]
        top = debugfs(device, "stat /")
        assert f"Mode:  0{mode:o}" in top or f"Mode:  {mode:04o}" in top, (part["name"], top)
        assert f"User:     {owner[0]}   Group:     {owner[1]}" in top, top
    var = f"{raw['data']}?offset={int(parts[0]['start']) * 512}"
    assert names(var, "/log") == set() and names(var, "/tmp") == set()  # mount points only
    log = f"{raw['data']}?offset={int(parts[2]['start']) * 512}"
    assert names(log, "/audit") == set()
    home = f"{raw['data']}?offset={int(parts[4]['start']) * 512}"
    assert "User:  1000   Group:  1000" in debugfs(home, "stat /admin")
    assert debugfs(home, "cat /admin/.profile") == "home\n"


@root_only
@pytest.mark.parametrize("link", ["/home", "/var/log", "/var"])
def test_a_link_out_of_the_image_is_never_followed(tmp_path: Path, link: str) -> None:
    """A step may leave a link to a folder of this machine where a data folder was: bakehouse
    moves nothing through it (the move, and the removal after, would be this machine's)."""
    rootfs, host = tmp_path / "rootfs", tmp_path / "on-this-machine"
    make_root(rootfs)
    for sub in ("audit", "tmp", "log", "admin"):
        (host / sub).mkdir(parents=True)
    (host / "keep").write_text("mine\n")
    shutil.rmtree(rootfs / link.lstrip("/"))
    (rootfs / link.lstrip("/")).symlink_to(host)
    (tmp_path / "work").mkdir()
    with pytest.raises(PackerError, match=f"goes through a symbolic link \\({link}\\)"):
        chroot.split(rootfs, tmp_path / "work")
    assert sorted(p.name for p in host.iterdir()) == ["admin", "audit", "keep", "log", "tmp"]
    assert list((tmp_path / "work").iterdir()) == []


@root_only
def test_a_missing_data_folder_is_refused(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    make_root(rootfs)
    shutil.rmtree(rootfs / "home")
    (tmp_path / "work").mkdir()
    with pytest.raises(PackerError, match="/home in the image is missing or not a folder"):
        chroot.split(rootfs, tmp_path / "work")


@root_only
@pytest.mark.parametrize("target", ["fstab", "kernel", "manifest"])
def test_the_fstab_kernel_and_manifest_are_never_read_or_written_through_a_link(
    tmp_path: Path, target: str
) -> None:
    rootfs, stage, work = built_tree(tmp_path)
    outside = tmp_path / "this-machine-file"
    outside.write_text("/dev/sda1 / ext4 defaults 0 1\n")
    path = {
        "fstab": rootfs / "etc/fstab",
        "kernel": rootfs / "boot/vmlinuz-6.1.0-1",
        "manifest": rootfs / "var/lib/bakehouse/manifest.json",
    }[target]
    path.unlink()
    path.symlink_to(outside)
    with pytest.raises(PackerError, match="goes through a symbolic link"):
        chroot.assemble(rootfs, stage, work, disk_mib=64, data_mib=160)
    assert outside.read_text() == "/dev/sda1 / ext4 defaults 0 1\n"
    assert not (stage / "vmlinuz").exists() or target != "kernel"


@root_only
@pytest.mark.parametrize("kernel", ["../../../etc/shadow", "", "6.1/../x", "-x"])
def test_a_kernel_name_that_is_not_one_is_refused(tmp_path: Path, kernel: str) -> None:
    rootfs, stage, work = built_tree(tmp_path)
    manifest = rootfs / "var/lib/bakehouse/manifest.json"
    manifest.write_text(json.dumps({"kernel": kernel, "packages": []}))
    with pytest.raises(PackerError, match="names no kernel the image could boot"):
        chroot.assemble(rootfs, stage, work, disk_mib=64, data_mib=160)
    assert list(stage.iterdir()) == []


@root_only
@pytest.mark.parametrize("broken", ["manifest", "kernel"])
def test_an_image_without_its_manifest_or_kernel_is_refused(tmp_path: Path, broken: str) -> None:
    rootfs, stage, work = built_tree(tmp_path)
    victim = {
        "manifest": rootfs / "var/lib/bakehouse/manifest.json",
        "kernel": rootfs / "boot/initrd.img-6.1.0-1",
    }[broken]
    victim.unlink()
    with pytest.raises(PackerError, match=r"no manifest|no /boot/initrd\.img-6\.1\.0-1"):
        chroot.assemble(rootfs, stage, work, disk_mib=64, data_mib=160)
    assert list(stage.iterdir()) == [] or broken == "kernel"
    assert not (stage / "disk.qcow2").exists()


# ---- the base's files, checked before anything runs as root in them ----------------------------
def tiny_base(tmp_path: Path, with_rootfs: bool = True) -> base_stage.BaseImage:
    src = tmp_path / "src"
    (src / "etc").mkdir(parents=True)
    (src / "usr" / "sbin").mkdir(parents=True)
    (src / "etc" / "os-release").write_text("ID=debian\n")
    folder = tmp_path / "base"
    folder.mkdir()
    subprocess.run(base_stage.tar_argv(src, folder / "rootfs.tar.zst"), check=True)
    (folder / "manifest.json").write_text('{"kernel": "1", "packages": []}\n')
    artifacts = {"manifest": describe(folder / "manifest.json")}
    if with_rootfs:
        artifacts["rootfs"] = describe(folder / "rootfs.tar.zst")
    record: Record = {"key": "k" * 20, "artifacts": artifacts}
    return base_stage.BaseImage(record, folder)


@root_only
def test_prepare_unpacks_the_checked_base_with_a_policy_rc_d(tmp_path: Path) -> None:
    base = tiny_base(tmp_path)
    rootfs = tmp_path / "rootfs"
    chroot.prepare(base, rootfs)
    assert (rootfs / "etc/os-release").read_text() == "ID=debian\n"
    policy = rootfs / chroot.POLICY_RC
    assert policy.stat().st_mode & 0o777 == 0o755 and "exit 101" in policy.read_text()
    chroot.finish(rootfs)
    assert not policy.exists()


@root_only
def test_the_base_s_own_policy_rc_d_is_back_after_the_build_and_a_step_s_stays(
    tmp_path: Path,
) -> None:
    base = tiny_base(tmp_path)
    rootfs = tmp_path / "rootfs"
    policy = rootfs / chroot.POLICY_RC
    # a base that ships its own policy-rc.d
    src = tmp_path / "src"
    (src / "usr" / "sbin" / "policy-rc.d").write_text("#!/bin/sh\n# the base's own\nexit 0\n")
    folder = base.dir
    (folder / "rootfs.tar.zst").unlink()
    subprocess.run(base_stage.tar_argv(src, folder / "rootfs.tar.zst"), check=True)
    base.record["artifacts"]["rootfs"] = describe(folder / "rootfs.tar.zst")
    chroot.prepare(base, rootfs)
    assert "bakehouse: no service starts" in policy.read_text()  # the build's, for the build
    chroot.finish(rootfs)
    assert policy.read_text() == "#!/bin/sh\n# the base's own\nexit 0\n"
    assert not (rootfs / chroot.POLICY_SAVED).exists()
    # a step that installs its own keeps it, as in a VM
    chroot.prepare(base, tmp_path / "again")
    (tmp_path / "again" / chroot.POLICY_RC).write_text("#!/bin/sh\n# the step's\nexit 101\n")
    chroot.finish(tmp_path / "again")
    assert "the step's" in (tmp_path / "again" / chroot.POLICY_RC).read_text()
    assert not (tmp_path / "again" / chroot.POLICY_SAVED).exists()


@root_only
def test_a_base_whose_archive_was_changed_is_never_unpacked(tmp_path: Path) -> None:
    base = tiny_base(tmp_path)
    with (base.dir / "rootfs.tar.zst").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(BaseError, match="does not match its recorded sha256"):
        chroot.prepare(base, tmp_path / "rootfs")
    assert not (tmp_path / "rootfs").exists()


def test_a_base_without_a_root_filesystem_archive_is_refused(tmp_path: Path) -> None:
    base = tiny_base(tmp_path, with_rootfs=False)
    with pytest.raises(PackerError, match="no root filesystem archive"):
        chroot.prepare(base, tmp_path / "rootfs")


@root_only
def test_finish_refuses_a_tree_with_something_still_mounted(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "proc").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(rootfs / "proc")], check=True)
    try:
        with pytest.raises(PackerError, match=r"still mounted .*/proc"):
            chroot.finish(rootfs)
    finally:
        subprocess.run(["umount", str(rootfs / "proc")], check=True)
    chroot.finish(rootfs)


# ---- the runner ---------------------------------------------------------------------------------
def runner_argv(root: Path, script: Path, *env: str, offline: bool = False) -> list[str]:
    """in-root.sh as the rendered template runs it: the package steps with this machine's
    network, every later step (``offline``) in a network namespace of its own."""
    from bakehouse.render import CHROOT_ARGV

    argv = [CHROOT_ARGV[0], *(["--net"] if offline else []), *CHROOT_ARGV[1:]]
    return [*argv, str(IN_ROOT), str(root), str(script), *env]


def run_step(
    root: Path, script: Path, *env: str, offline: bool = False, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        runner_argv(root, script, *env, offline=offline),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **kwargs,
    )


def host_root(root: Path) -> None:
    """A root filesystem of this machine's own programs (and their libraries): what in-root.sh
    needs from an image (sh, env, setpriv, umount, rmdir) and what the steps here run."""
    for d in ("etc", "proc", "sys", "dev", "run", "tmp", "root", "usr/sbin"):
        (root / d).mkdir(parents=True, exist_ok=True)
    programs = ("sh", "env", "cat", "ls", "setpriv", "umount", "rmdir", "mount", "chroot", "touch")
    for prog in programs:
        path = Path(shutil.which(prog) or "").resolve()
        libs = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=True).stdout
        for lib in [*re.findall(r"(/\S+) \(0x", libs), str(path)]:
            dest = root / lib.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(lib).resolve(), dest)
        for alias in ("bin", "usr/bin", "usr/sbin"):
            (root / alias).mkdir(parents=True, exist_ok=True)
            if not (root / alias / prog).exists():
                shutil.copy2(path, root / alias / prog)
    policy = root / chroot.POLICY_RC
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    (root / "etc" / "resolv.conf").symlink_to("../run/systemd/resolve/stub-resolv.conf")


@root_only
@tools
def test_a_script_runs_in_the_root_with_only_its_own_env_mounts_and_processes(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    host_root(root)
    script = tmp_path / "step.sh"
    script.write_text(
        "#!/bin/sh\n"
        "env > /root/env\n"
        "cat /proc/1/cmdline > /root/init\n"
        "ls /proc > /root/procs\n"
        "ls /run > /root/run\n"
        "echo scratch > /tmp/scratch\n"
        "exit 3\n"
    )
    done = run_step(
        root,
        script,
        "BAKEHOUSE_A=two words",
        "BAKEHOUSE_B=it's",
        env={**os.environ, "HOST_SECRET": "x"},
    )
    assert done.returncode == 3, done.stderr  # the script's own status
    env = dict(line.split("=", 1) for line in (root / "root/env").read_text().splitlines())
    assert env["BAKEHOUSE_A"] == "two words" and env["BAKEHOUSE_B"] == "it's"
    assert env["DEBIAN_FRONTEND"] == "noninteractive" and "HOST_SECRET" not in env
    assert set(env) <= {
        "PATH",
        "HOME",
        "LANG",
        "DEBIAN_FRONTEND",
        "PWD",
        "BAKEHOUSE_A",
        "BAKEHOUSE_B",
    }
    # a PID namespace of its own, whose first process is the step's own runner, in the root
    assert (root / "root/init").read_bytes().split(b"\0")[:3] == [
        b"/bin/sh",
        b"/run/bakehouse-run",
        b"step.sh",
    ]
    pids = [p for p in (root / "root/procs").read_text().split() if p.isdigit()]
    assert len(pids) <= 3, pids  # in-root.sh, the script, ls: nothing of this machine's
    assert "bakehouse-step" in (root / "root/run").read_text()
    # every mount went with the namespace; /run and /tmp were memory only
    assert chroot.mounted_below(root) == []
    assert list((root / "run").iterdir()) == [] and list((root / "tmp").iterdir()) == []
    assert list((root / "dev").iterdir()) == [] and list((root / "proc").iterdir()) == []


@root_only
@tools
def test_the_runner_refuses_an_unprepared_root_or_no_namespace(tmp_path: Path) -> None:
    root = tmp_path / "root"
    host_root(root)
    script = tmp_path / "step.sh"
    script.write_text("#!/bin/sh\ntouch /root/ran\n")
    alone = subprocess.run(
        ["sh", str(IN_ROOT), str(root), str(script)], capture_output=True, text=True, check=False
    )
    assert alone.returncode == 2 and "not in a PID namespace" in alone.stderr
    (root / chroot.POLICY_RC).unlink()  # services would start on this machine
    bare = run_step(root, script)
    assert bare.returncode == 2 and "not a root filesystem prepared" in bare.stderr
    assert not (root / "root/ran").exists()


def test_the_chroot_build_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    from bakehouse.targets.local import build as build_stage

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(PackerError, match="needs root") as caught:
        build_stage.build_in_chroot(*[None] * 9)  # type: ignore[arg-type]
    assert "targets.local.build: vm" in caught.value.hint


@root_only
@tools
def test_a_later_step_reaches_neither_the_network_nor_the_kernel_settings(tmp_path: Path) -> None:
    root = tmp_path / "root"
    host_root(root)
    script = tmp_path / "step.sh"
    script.write_text(
        "#!/bin/sh\n"
        "ls /sys/class/net > /root/net\n"
        # the value it has, written back: harmless even if the write went through
        "v=$(cat /proc/sys/vm/dirty_ratio)\n"
        'if echo "$v" > /proc/sys/vm/dirty_ratio; then echo changed > /root/sysctl; fi\n'
        "exit 5\n"
    )
    done = run_step(root, script, offline=True)
    assert done.returncode == 5
    assert (root / "root/net").read_text().split() == ["lo"]
    assert not (root / "root/sysctl").exists()
    assert "step.sh failed without a network" in done.stderr  # and what to do about it
    online = run_step(root, script)
    assert online.returncode == 5 and "without a network" not in online.stderr
    assert (root / "root/net").read_text().split() == sorted(os.listdir("/sys/class/net"))


@root_only
@tools
def test_a_step_cannot_reach_this_machine_s_files_mount_or_chroot(tmp_path: Path) -> None:
    """Pivoted into the root (this machine's root unmounted from its view) and without the
    capabilities to mount, chroot or make device nodes: no way back out."""
    root = tmp_path / "root"
    host_root(root)
    marker = tmp_path / "on-this-machine"
    marker.write_text("host\n")
    (root / "in-image").write_text("image\n")
    script = tmp_path / "step.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"for p in /proc/1/root{marker} /proc/self/root{marker} {marker}; do\n"
        '    [ -e "$p" ] && echo "reached $p" >> /root/out\n'
        "done\n"
        "cat /proc/1/root/in-image >> /root/out\n"
        "mount -t tmpfs tmpfs /tmp 2>/dev/null && echo mounted >> /root/out\n"
        "umount /proc/sys 2>/dev/null && echo unmounted >> /root/out\n"
        "mkdir -p /x && chroot /x /bin/true 2>/dev/null && echo chrooted >> /root/out\n"
        "touch /sys/x 2>/dev/null && echo sysfs >> /root/out\n"
        "cat /etc/resolv.conf > /root/resolv\n"
        "exit 0\n"
    )
    done = run_step(root, script, offline=True)
    assert done.returncode == 0, done.stderr
    assert (root / "root/out").read_text() == "image\n"  # nothing else got through
    assert (root / "root/resolv").read_text() == Path("/etc/resolv.conf").read_text()
    assert marker.read_text() == "host\n"


def test_an_unknown_build_in_the_tuning_is_refused() -> None:
    from bakehouse.errors import UsageError
    from bakehouse.targets.base import BakeRequest
    from bakehouse.targets.local import LocalTarget

    request = BakeRequest(tuning={"build": "vn"})
    with pytest.raises(UsageError, match="build 'vn': not one of"):
        LocalTarget.bake(None, None, request, None, None)  # type: ignore[arg-type]


def test_the_chroot_build_patches_in_its_build_not_on_the_host_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """patch.sh runs natively in the chroot build: a host-patched base would be work (and a
    second cached base) for nothing. The vm build still patches on the host first."""
    import dataclasses

    from bakehouse.spec import Catalog
    from bakehouse.targets.base import BakeRequest
    from bakehouse.targets.local import Context, LocalTarget, hostpatch

    called = []
    monkeypatch.setattr(hostpatch, "ensure", lambda *a, **k: called.append(a) or "patched")
    spec = Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("web")
    target = LocalTarget.__new__(LocalTarget)
    target.project = type("P", (), {"scripts_dir": ROOT / "packer" / "scripts"})()  # type: ignore[assignment]
    target._catalogue = "catalogue"  # type: ignore[assignment]
    ctx = Context(spec, BakeRequest(), None, None, base="base", indexes="ix")  # type: ignore[arg-type]
    target.step_host_patch(ctx)
    assert called == [] and ctx.base == "base"
    vm = dataclasses.replace(spec.targets.local, build="vm")
    ctx.spec = dataclasses.replace(spec, targets=dataclasses.replace(spec.targets, local=vm))
    target.step_host_patch(ctx)
    assert len(called) == 1 and ctx.base == "patched"
