"""Host-side patching of the local base: the same patch.sh, run at native speed in a chroot.

Under software emulation a kernel update costs minutes in the guest (initramfs, certificate
rehash, hundreds of maintainer-script processes); on the host the same work takes seconds.
For the local target, whose base filesystem bakehouse owns, the pending updates are therefore
applied to the base's root filesystem on the host with packer/scripts/patch.sh, and the result
is a derived base cached under a key of (parent base, patch.sh, patch policy, the sha256 of
every package index). The in-guest patch.sh still runs during the bake — it is what patches
AMIs — and here finds nothing left to do, in seconds, because the apt lists are fresh.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bakehouse import proc
from bakehouse.catalogue import Catalogue, Record, now_iso
from bakehouse.debindex import Indexes
from bakehouse.errors import BakehouseError, BaseError, HostPatchError
from bakehouse.files import sha256
from bakehouse.locks import held
from bakehouse.progress import PackageWatch, Progress
from bakehouse.runs import Run
from bakehouse.targets.local import base as base_stage

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def inputs(
    parent: base_stage.BaseImage, patch_script: Path, policy: str, indexes: Indexes
) -> dict[str, Any]:
    return {
        "parent": parent.key,
        "patch_sha256": sha256(patch_script),
        "policy": policy,
        "indexes": dict(sorted(indexes.index_hashes.items())),
    }


@contextlib.contextmanager
def chroot(root: Path) -> Iterator[None]:
    """Mounts and guards a chroot needs to run apt, undone in reverse whatever happens:
    /proc, /sys, /dev; a policy-rc.d so no service starts; the host's resolv.conf."""
    undo: list[tuple[str, Any]] = []
    try:
        for fstype, target in (("proc", "proc"), ("sysfs", "sys")):
            proc.run(["mount", "-t", fstype, fstype, str(root / target)], check=True)
            undo.append(("umount", root / target))
        proc.run(["mount", "--bind", "/dev", str(root / "dev")], check=True)
        undo.append(("umount", root / "dev"))
        if (root / "dev" / "pts").is_dir():
            proc.run(["mount", "--bind", "/dev/pts", str(root / "dev/pts")], check=True)
            undo.append(("umount", root / "dev/pts"))
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        undo.append(("unlink", policy))
        resolv = root / "etc/resolv.conf"
        saved = root / "etc/resolv.conf.bakehouse"
        if resolv.is_symlink() or resolv.exists():
            resolv.rename(saved)
            undo.append(("restore", (saved, resolv)))
        else:
            undo.append(("unlink", resolv))
        shutil.copyfile("/etc/resolv.conf", resolv)
        yield
    finally:
        for action, target in reversed(undo):
            with contextlib.suppress(OSError, BakehouseError):
                if action == "umount":
                    if not proc.run(["umount", str(target)]).ok:
                        proc.run(["umount", "-l", str(target)])
                elif action == "unlink":
                    Path(target).unlink(missing_ok=True)
                elif action == "restore":
                    saved_path, resolv_path = target
                    Path(resolv_path).unlink(missing_ok=True)
                    Path(saved_path).rename(resolv_path)


def ensure(
    parent: base_stage.BaseImage,
    scripts_dir: Path,
    policy: str,
    indexes: Indexes,
    catalogue: Catalogue,
    run: Run,
    progress: Progress,
) -> base_stage.BaseImage:
    """The parent base with every pending update applied (cached), or the parent itself when the
    manifest shows nothing pending."""

    script = scripts_dir / "patch.sh"
    data = inputs(parent, script, policy, indexes)
    key = base_stage.content_key(data)
    with held(run.state_dir / "locks" / f"base-{key}.lock"):
        return _ensure(parent, script, policy, indexes, catalogue, run, progress, data, key)


def _ensure(
    parent: base_stage.BaseImage,
    script: Path,
    policy: str,
    indexes: Indexes,
    catalogue: Catalogue,
    run: Run,
    progress: Progress,
    data: dict[str, Any],
    key: str,
) -> base_stage.BaseImage:
    from bakehouse import debindex

    cached = catalogue.cached_base(key, progress.say)
    if cached is not None:
        derived = base_stage.BaseImage(cached, catalogue.base_dir(key))
        try:
            with progress.phase("host-patch", f"cache hit {key}, checking sha256"):
                base_stage.verify(derived)
            return derived
        except BaseError as exc:  # a damaged or altered cache is never used: patch again
            progress.say(f"host-patch: {exc.message}: not using it, patching again")
            catalogue.remove_base(key)
    # the parent's tarball is unpacked and chrooted into as root: only the very files recorded
    base_stage.verify(parent, ("manifest", "rootfs"))
    manifest = json.loads(parent.file("manifest").read_text())
    pending = debindex.pending(debindex.installed_from_manifest(manifest), indexes)
    if not pending:
        progress.say("host-patch: the base has no pending updates")
        return parent
    if os.geteuid() != 0:
        raise HostPatchError(
            "patching the base on the host needs root (chroot)", "run as root, or with sudo"
        )
    rootfs = run.path("patch-rootfs")
    stage = run.path("patch-stage")
    rootfs.mkdir()
    stage.mkdir()
    log = run.path("host-patch.log")
    security = sum(p.security for p in pending)
    with progress.phase(
        "host-patch",
        f"{len(pending)} pending updates ({security} security) applied on the host with patch.sh",
    ):
        try:
            proc.run(base_stage.untar_argv(parent.file("rootfs"), rootfs), check=True, timeout=600)
            shutil.copyfile(script, rootfs / "root" / "bakehouse-patch.sh")
            with chroot(rootfs):
                code = proc.stream(
                    [
                        "chroot",
                        str(rootfs),
                        "/usr/bin/env",
                        "-i",
                        f"PATH={PATH}",
                        "DEBIAN_FRONTEND=noninteractive",
                        f"BAKEHOUSE_PATCH_POLICY={policy}",
                        "/bin/sh",
                        "/root/bakehouse-patch.sh",
                    ],
                    log=log,
                    timeout=3600,
                    on_line=PackageWatch(progress),
                )
            (rootfs / "root" / "bakehouse-patch.sh").unlink(missing_ok=True)
            if code != 0:
                raise HostPatchError(
                    f"patch.sh failed in the host chroot (exit {code})", f"see {log}"
                )
            staged = base_stage.stage_rootfs(rootfs, stage, run.path("patched.raw"))
        finally:
            base_stage.remove_rootfs(rootfs)
    record: Record = {
        "kind": "base",
        "id": f"base-{key}",
        "key": key,
        "target": "local",
        "created": now_iso(),
        "parent": {"id": parent.record["id"], "key": parent.key},
        "inputs": data,
        "patched": [p.to_dict() for p in pending],
        "kernel": staged.kernel,
        "packages": len(staged.manifest["packages"]),
        "artifacts": staged.artifacts,
    }
    dest = catalogue.add_base(record, stage)
    progress.say(f"host-patch: {record['id']} (from {parent.record['id']}), kernel {staged.kernel}")
    return base_stage.BaseImage(record, dest)
