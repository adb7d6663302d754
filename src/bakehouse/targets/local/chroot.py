"""The local target's chroot build: the image's root filesystem unpacked from the base on this
machine, Packer running every script in a chroot of it (packer/local/in-root.sh, through
shell-local) at native speed, and the root and data disks laid out here from the result.

Under software emulation a build VM costs most of a bake: its boot, and every package
maintainer script, initramfs and certificate rehash run many times slower than here. The image
is still built by Packer from the rendered template with the same scripts in the same order, and
still proven on a fresh boot of the very disks that are recorded (the verify boot).

What a booted build does and a chroot cannot is done here instead, from the same table
(:mod:`bakehouse.layout`): the data disk's partitions and filesystems (filesystems.sh on a
booted machine), and their lines in /etc/fstab.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bakehouse import layout, proc
from bakehouse.errors import PackerError
from bakehouse.render import MANIFEST_PATH
from bakehouse.runs import mounted_below
from bakehouse.targets.local import base as base_stage

POLICY_RC = "usr/sbin/policy-rc.d"
POLICY_SAVED = "usr/sbin/.policy-rc.d.bakehouse"  # the base's own, while the build's is in place
POLICY_TEXT = "#!/bin/sh\n# bakehouse: no service starts during the build\nexit 101\n"
ROOT_LABEL = "bh-root"
KERNEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+~_-]*")


def inside(rootfs: Path, rel: str) -> Path:
    """``rel`` (an absolute path in the image) under ``rootfs``, refusing any component that is a
    symbolic link or ``..``: the image's own scripts ran as root in this tree, and bakehouse
    works on it as root on this machine, where a link would lead out of it."""
    path = rootfs
    for part in Path(rel.lstrip("/")).parts:
        if part in ("..", "."):
            raise PackerError(f"{rel}: not a plain path in the image")
        path = path / part
        if path.is_symlink():
            link = "/" + str(path.relative_to(rootfs))
            raise PackerError(
                f"{rel} in the image goes through a symbolic link ({link}): bakehouse does not "
                "follow the image's links on this machine",
                f"make {link} a folder or a file in the image, not a link",
            )
    return path


def prepare(base: base_stage.BaseImage, rootfs: Path) -> None:
    """Unpack the base's root filesystem (checked against its recorded sha256 first: it is run
    as root) into ``rootfs``, with a policy-rc.d so that no package starts a service here."""
    if "rootfs" not in base.record["artifacts"]:
        raise PackerError(
            f"base {base.key} has no root filesystem archive to build in a chroot",
            "run `invoke base --rebuild`, or set targets.local.build: vm",
        )
    base_stage.verify(base, ("manifest", "rootfs"))
    rootfs.mkdir()
    proc.run(base_stage.untar_argv(base.file("rootfs"), rootfs), check=True, timeout=600)
    policy = inside(rootfs, POLICY_RC)
    if policy.exists():  # the base's own: back in place after the build
        policy.rename(inside(rootfs, POLICY_SAVED))
    policy.write_text(POLICY_TEXT)
    policy.chmod(0o755)


def finish(rootfs: Path) -> None:
    """The build's own policy-rc.d out again (the base's back in place; one a step installed
    stays, as it would in a VM); nothing may still be mounted in the tree."""
    left = mounted_below(rootfs)
    if left:
        raise PackerError(
            f"still mounted in the image's root filesystem after the build: {', '.join(left)}",
            "in-root.sh mounts only in namespaces of its own; unmount these and report it",
        )
    policy, saved = inside(rootfs, POLICY_RC), inside(rootfs, POLICY_SAVED)
    ours = policy.is_file() and policy.read_text(errors="replace") == POLICY_TEXT
    if ours:
        policy.unlink()
    if saved.exists():
        if ours:
            saved.rename(policy)
        else:
            saved.unlink()


@dataclass(frozen=True)
class Tree:
    fs: layout.Filesystem
    dir: Path  # the files that go onto this filesystem, moved out of the root filesystem
    mode: int
    uid: int
    gid: int


def split(rootfs: Path, work: Path) -> list[Tree]:
    """Move each data filesystem's files out of ``rootfs`` (deepest mount point first, so each
    tree keeps an empty mount point for the ones below it), leaving empty mount points with the
    original owner and mode: what filesystems.sh leaves on a booted machine."""
    order = sorted(layout.DATA_FILESYSTEMS, key=lambda f: f.mountpoint.count("/"), reverse=True)
    for fs in order:  # every one checked before anything moves
        if not inside(rootfs, fs.mountpoint).is_dir():
            raise PackerError(
                f"{fs.mountpoint} in the image is missing or not a folder: it cannot be a "
                "filesystem of its own",
                "a provision step removed or replaced it; leave it a folder",
            )
    trees = []
    for fs in order:
        source = inside(rootfs, fs.mountpoint)
        st = source.stat()
        tree = work / fs.label
        source.rename(tree)
        source.mkdir()
        os.chown(source, st.st_uid, st.st_gid)
        source.chmod(st.st_mode & 0o7777)
        trees.append(Tree(fs, tree, st.st_mode & 0o7777, st.st_uid, st.st_gid))
    return trees


def partition_table(disk_mib: int) -> str:
    """The data disk's GPT, as sfdisk reads it: the same sizes filesystems.sh asks for."""
    sizes = layout.sizes_mib(disk_mib)
    lines = ["label: gpt"]
    for i, fs in enumerate(layout.DATA_FILESYSTEMS):
        last = i == len(layout.DATA_FILESYSTEMS) - 1
        lines.append(f"name={fs.label}" if last else f"size={sizes[i]}MiB, name={fs.label}")
    return "\n".join(lines) + "\n"


def data_disk(trees: list[Tree], raw: Path, disk_mib: int) -> None:
    """A GPT disk of ``disk_mib`` with one ext4 filesystem per tree, made from its files
    (owners, modes, extended attributes) at the partition's offset."""
    with raw.open("wb") as f:
        f.truncate(disk_mib * 2**20)
    proc.run(
        ["sfdisk", "--quiet", "--wipe", "always", str(raw)],
        check=True,
        timeout=60,
        input_text=partition_table(disk_mib),
    )
    table = json.loads(proc.run(["sfdisk", "--json", str(raw)], check=True, timeout=60).stdout)
    parts = {p["name"]: p for p in table["partitiontable"]["partitions"]}
    sector = int(table["partitiontable"].get("sectorsize", 512))
    for tree in trees:
        part = parts[tree.fs.label]
        offset = int(part["start"]) * sector
        size_kib = int(part["size"]) * sector // 1024
        mkfs(tree.dir, raw, tree.fs.label, size_kib, offset, tree.uid, tree.gid)
        set_root_mode(raw, offset, tree.mode)


def mkfs(
    source: Path, raw: Path, label: str, size_kib: int, offset: int = 0, uid: int = 0, gid: int = 0
) -> None:
    extended = f"root_owner={uid}:{gid}" + (f",offset={offset}" if offset else "")
    argv = ["mkfs.ext4", "-q", "-F", "-L", label, "-d", str(source), "-E", extended]
    proc.run(
        [*argv, str(raw), f"{size_kib}k"],
        check=True,
        timeout=600,
    )


def set_root_mode(raw: Path, offset: int, mode: int) -> None:
    """mkfs gives a filesystem's top folder mode 0755 whatever its source's: the mount point's
    mode (1777 for /var/tmp, 0750 for an audit log folder) is set on it."""
    device = f"{raw}?offset={offset}" if offset else str(raw)
    proc.run(
        ["debugfs", "-w", "-R", f"set_inode_field / mode 0{0o40000 | mode:o}", device],
        check=True,
        timeout=60,
    )


@dataclass(frozen=True)
class Assembled:
    manifest: dict[str, Any]
    kernel: str


def assemble(rootfs: Path, stage: Path, work: Path, disk_mib: int, data_mib: int) -> Assembled:
    """The finished root filesystem → ``stage``: disk.qcow2 (whole-disk ext4, as the base),
    data.qcow2 (the data filesystems), vmlinuz, initrd.img and manifest.json."""
    manifest_file = inside(rootfs, MANIFEST_PATH)
    if not manifest_file.is_file():
        raise PackerError(f"the build wrote no manifest ({MANIFEST_PATH})", "see packer.log")
    manifest = json.loads(manifest_file.read_text())
    kernel = str(manifest.get("kernel") or "")
    if not KERNEL_RE.fullmatch(kernel):
        raise PackerError(f"the manifest names no kernel the image could boot: {kernel!r}")
    files = {}
    for name in (f"vmlinuz-{kernel}", f"initrd.img-{kernel}"):
        files[name] = inside(rootfs, f"/boot/{name}")
        if not files[name].is_file():
            raise PackerError(f"the image has no /boot/{name} for its kernel {kernel!r}")
    shutil.copyfile(manifest_file, stage / "manifest.json")
    shutil.copyfile(files[f"vmlinuz-{kernel}"], stage / "vmlinuz")
    shutil.copyfile(files[f"initrd.img-{kernel}"], stage / "initrd.img")
    fstab = inside(rootfs, "/etc/fstab")
    if not fstab.is_file():
        raise PackerError("the image has no /etc/fstab")
    trees = split(rootfs, work)
    with fstab.open("a") as f:
        f.write("".join(line + "\n" for line in layout.fstab_lines()))
    data_raw, disk_raw = work / "data.raw", work / "disk.raw"
    try:
        data_disk(trees, data_raw, data_mib)
        mkfs(rootfs, disk_raw, ROOT_LABEL, disk_mib * 1024)
        for raw, name in ((disk_raw, "disk.qcow2"), (data_raw, "data.qcow2")):
            proc.run(base_stage.convert_argv(raw, stage / name), check=True, timeout=1800)
    finally:
        data_raw.unlink(missing_ok=True)
        disk_raw.unlink(missing_ok=True)
    return Assembled(manifest, kernel)
