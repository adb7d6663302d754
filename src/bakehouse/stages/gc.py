"""gc: find what a killed run left behind (processes, working folders) and remove it.

A run is over when the process named in its owner.json is gone. Its leftovers are the run
folder and any process whose command line points into that folder (Packer, qemu, mmdebstrap).
Dry-run by default: ``gc`` lists, ``gc --yes`` removes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from bakehouse import proc


@dataclass
class Leftover:
    run_id: str
    folder: Path
    owner_pid: int | None
    processes: list[tuple[int, str]] = field(default_factory=list)
    size: int = 0


def _cmdlines() -> dict[int, str]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                raw = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if raw:
                out[int(entry.name)] = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return out


def _size(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).lstat().st_size
    return total


def find(state_dir: Path) -> list[Leftover]:
    runs = state_dir / "runs"
    if not runs.is_dir():
        return []
    cmdlines = _cmdlines()
    out = []
    for folder in sorted(runs.iterdir()):
        if not folder.is_dir():
            continue
        owner: int | None = None
        try:
            owner = int(json.loads((folder / "owner.json").read_text())["pid"])
        except (OSError, ValueError, KeyError):
            owner = None
        if owner is not None and proc.pid_alive(owner) and owner != os.getpid():
            continue  # still running
        marker = str(folder)
        procs = [
            (pid, cmd) for pid, cmd in cmdlines.items() if marker in cmd and pid != os.getpid()
        ]
        out.append(Leftover(folder.name, folder, owner, procs, _size(folder)))
    return out


def remove(leftover: Leftover) -> None:
    for pid, _cmd in leftover.processes:
        proc.kill_tree(pid)
    try:
        tmp = json.loads((leftover.folder / "owner.json").read_text()).get("tmp")
    except (OSError, ValueError):
        tmp = None
    if tmp and Path(tmp).name.startswith("bakehouse-"):
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(leftover.folder, ignore_errors=True)
