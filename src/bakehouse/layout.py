"""The data disk's layout: /var, /var/tmp, /var/log, /var/log/audit and /home on their own
filesystems, mounted nodev and nosuid (and noexec where nothing runs from them), so that full
logs or a user's files cannot fill the root filesystem or carry a device node or a set-id
program (CIS 1.1.2.3-1.1.2.7).

One table for every way an image gets them: filesystems.sh reads it from
``BAKEHOUSE_FILESYSTEMS`` on a booted machine (aws, and the local target's vm build), and the
local target's chroot build lays the same disk out on the host
(:mod:`bakehouse.targets.local.chroot`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Filesystem:
    label: str  # the filesystem's label and the GPT partition's name
    mountpoint: str
    share: int  # percent of the data disk; the last partition takes what is left
    options: str  # mount options after "defaults,"


DATA_FILESYSTEMS = (
    Filesystem("bh-var", "/var", 35, "nodev,nosuid"),
    Filesystem("bh-vartmp", "/var/tmp", 10, "nodev,nosuid,noexec"),  # noqa: S108  # nosec B108
    Filesystem("bh-varlog", "/var/log", 25, "nodev,nosuid,noexec"),
    Filesystem("bh-audit", "/var/log/audit", 15, "nodev,nosuid,noexec"),
    Filesystem("bh-home", "/home", 15, "nodev,nosuid"),
)


def env_value(filesystems: tuple[Filesystem, ...] = DATA_FILESYSTEMS) -> str:
    """The table as filesystems.sh reads it: ``label mountpoint share options`` entries,
    separated by ``;`` (one line of an environment variable)."""
    return ";".join(f"{f.label} {f.mountpoint} {f.share} {f.options}" for f in filesystems)


def sizes_mib(disk_mib: int, filesystems: tuple[Filesystem, ...] = DATA_FILESYSTEMS) -> list[int]:
    """Each partition's size on a disk of ``disk_mib``, as filesystems.sh computes it: 1 MiB is
    kept at each end for the GPT, every share but the last rounded down, the last takes the
    rest."""
    usable = disk_mib - 2
    sizes = [usable * f.share // 100 for f in filesystems[:-1]]
    return [*sizes, usable - sum(sizes)]


def fstab_lines(filesystems: tuple[Filesystem, ...] = DATA_FILESYSTEMS) -> list[str]:
    return [f"LABEL={f.label} {f.mountpoint} ext4 defaults,{f.options} 0 2" for f in filesystems]
