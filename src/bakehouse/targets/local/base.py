"""The local target's base image: mmdebstrap → whole-disk ext4 → compressed qcow2, cached.

The cache key is the content of everything that decides what the base contains: suite, mirrors,
components, package set, whether updates are included, the customize script, and the versions
of mmdebstrap and of this base format. The base is rebuilt only when that key changes. Its
sha256 (and the kernel's and initrd's) is recorded in its catalogue record and checked before
every use, so a damaged or swapped base is never baked from.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bakehouse import proc, runs
from bakehouse.catalogue import Catalogue, Record, now_iso
from bakehouse.errors import BaseError, ToolError, Untrusted
from bakehouse.files import describe, sha256
from bakehouse.locks import held
from bakehouse.progress import PackageWatch, Progress
from bakehouse.runs import Run
from bakehouse.spec import LocalBase

BASE_FORMAT = 2
# /usr merged before anything is unpacked, as debootstrap does it (mmdebstrap's merged-usr hook
# needs the archive's usr-is-merged package, which 22.04 does not have); amd64's directories
MERGE_USR = 'for d in bin sbin lib lib64; do mkdir -p "$1/usr/$d" && ln -s "usr/$d" "$1/$d"; done'
DISK_MIB = 2048  # the filesystem grows to the image's disk_size at first boot
# What every local image needs, harden.sh's packages included (so bakes do not fetch them),
# and zstd for the initramfs.
CORE_PACKAGES = (
    "auditd",
    "apparmor",
    "systemd-timesyncd",
    "libpam-pwquality",
    "nftables",
    "aide",
    "aide-common",
    "acct",
    "fdisk",
    "zstd",
    "systemd-sysv",
    "systemd-resolved",
    "openssh-server",
    "sudo",
    "ca-certificates",
    "initramfs-tools",
    "e2fsprogs",
    "iproute2",
    "procps",
    "kmod",
)
DPKG_FIELDS = (
    "${db:Status-Abbrev}\\t${Package}\\t${Version}\\t${Architecture}\\t"
    "${source:Package}\\t${source:Version}\\n"
)


def sources(local: LocalBase) -> list[str]:
    """The apt sources the image keeps: release, -updates and -security."""
    return local.apt_sources()


def install_sources(local: LocalBase) -> list[str]:
    """The sources packages are installed from (release only for a stale, vendor-like base)."""
    return sources(local) if local.include_updates else sources(local)[:1]


def packages(local: LocalBase) -> list[str]:
    """What the base installs: the core (less what the release ships inside another package),
    the release's kernel and the definition's own."""
    release = local.release
    core = set(CORE_PACKAGES) - set(release.built_in)
    return sorted({*core, *release.extra, release.kernel, *local.packages})


def base_scripts(packer_dir: Path) -> tuple[Path, tuple[Path, ...]]:
    """The customize hook, and the image scripts it runs too (they are also Packer steps)."""
    return packer_dir / "base" / "customize.sh", (packer_dir / "scripts" / "hostkeys.sh",)


def inputs(
    local: LocalBase, customize: Path, tool_version: str, shared: Sequence[Path] = ()
) -> dict[str, Any]:
    return {
        "format": BASE_FORMAT,
        "suite": local.suite,
        "mirror": local.mirror_for(),
        "security_mirror": local.security_mirror_for(),
        "components": list(local.comps),
        "include_updates": local.include_updates,
        "initramfs": local.initramfs,
        "packages": packages(local),
        "customize_sha256": sha256(customize),
        "shared_sha256": {p.name: sha256(p) for p in shared},
        "mmdebstrap": tool_version,
        "disk_mib": DISK_MIB,
        "merge_usr": local.release.merge_usr,
    }


def content_key(data: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:20]


def mmdebstrap_argv(local: LocalBase, rootfs: Path, customize: Path) -> list[str]:
    return [
        "mmdebstrap",
        "--mode=root",
        "--variant=apt",
        "--format=directory",
        f"--components={','.join(local.comps)}",
        f"--keyring={local.release.distro.keyring}",
        f"--include={','.join(packages(local))}",
        '--aptopt=APT::Install-Recommends "false"',
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-exclude=/usr/share/info/*",
        # mmdebstrap runs hooks through sh: the script path is quoted, the rootfs is "$1"
        f'--customize-hook=sh {shlex.quote(str(customize))} "$1"',
        *([f"--setup-hook={MERGE_USR}"] if local.release.merge_usr else []),
        local.suite,
        str(rootfs),
        *install_sources(local),
    ]


def mkfs_argv(rootfs: Path, raw: Path) -> list[str]:
    return [
        "mkfs.ext4",
        "-q",
        "-F",
        "-L",
        "bh-root",
        "-d",
        str(rootfs),
        "-E",
        "root_owner=0:0",
        str(raw),
        f"{DISK_MIB}M",
    ]


def convert_argv(src: Path, qcow2: Path, src_format: str = "raw") -> list[str]:
    """Compressed qcow2, zstd (several times faster than zlib at the same size; qemu >= 5.1)."""
    return [
        "qemu-img",
        "convert",
        "-f",
        src_format,
        "-c",
        "-O",
        "qcow2",
        "-o",
        "compression_type=zstd",
        str(src),
        str(qcow2),
    ]


def tar_argv(rootfs: Path, tarball: Path) -> list[str]:
    return [
        "tar",
        "--numeric-owner",
        "--xattrs",
        "--xattrs-include=*",
        "--acls",
        "-I",
        "zstd -T0 -3",
        "-C",
        str(rootfs),
        "-cf",
        str(tarball),
        ".",
    ]


def untar_argv(tarball: Path, rootfs: Path) -> list[str]:
    return [
        "tar",
        "--numeric-owner",
        "--xattrs",
        "--xattrs-include=*",
        "--acls",
        "-I",
        "zstd",
        "-C",
        str(rootfs),
        "-xpf",
        str(tarball),
    ]


@dataclass(frozen=True)
class StagedRootfs:
    kernel: str
    manifest: dict[str, Any]
    artifacts: dict[str, Any]  # the catalogue's description of each file written


def stage_rootfs(rootfs: Path, stage: Path, raw: Path) -> StagedRootfs:
    """What a base needs from a finished root filesystem, written into ``stage``: the package
    manifest, the newest kernel and its initrd (direct kernel boot) and the disk."""
    kernel = newest_kernel(rootfs / "boot")
    listing = proc.run(
        ["dpkg-query", f"--admindir={rootfs}/var/lib/dpkg", "-W", f"-f={DPKG_FIELDS}"],
        check=True,
    )
    manifest = manifest_from_dpkg(listing.stdout, kernel)
    (stage / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    shutil.copyfile(rootfs / "boot" / f"vmlinuz-{kernel}", stage / "vmlinuz")
    shutil.copyfile(rootfs / "boot" / f"initrd.img-{kernel}", stage / "initrd.img")
    disk_from_rootfs(rootfs, raw, stage / "base.qcow2")
    files = {
        "disk": "base.qcow2",
        "kernel": "vmlinuz",
        "initrd": "initrd.img",
        "manifest": "manifest.json",
    }
    return StagedRootfs(
        kernel, manifest, {role: describe(stage / name) for role, name in files.items()}
    )


def remove_rootfs(rootfs: Path) -> None:
    """A staged root filesystem holds root-owned files; never cross into a mount below it."""
    runs.remove_one_file_system(rootfs)


def disk_from_rootfs(rootfs: Path, raw: Path, qcow2: Path) -> None:
    proc.run(mkfs_argv(rootfs, raw), check=True, timeout=600)
    try:
        proc.run(convert_argv(raw, qcow2), check=True, timeout=1200)
    finally:
        raw.unlink(missing_ok=True)


def manifest_from_dpkg(output: str, kernel: str) -> dict[str, Any]:
    packages_ = []
    for line in output.splitlines():
        parts = line.split("\t")
        if len(parts) != 6 or not parts[0].startswith("ii"):
            continue
        _, name, version, arch, source, source_version = parts
        packages_.append(
            {
                "name": name,
                "version": version,
                "architecture": arch,
                "source": source or name,
                "source_version": source_version or version,
            }
        )
    return {"kernel": kernel, "packages": packages_}


def newest_kernel(boot: Path) -> str:
    from debian.debian_support import Version

    versions = [p.name.removeprefix("vmlinuz-") for p in boot.glob("vmlinuz-*")]
    if not versions:
        raise BaseError(f"no kernel in {boot}")
    return max(versions, key=lambda v: Version(v.replace("-cloud-amd64", "")))


@dataclass(frozen=True)
class BaseImage:
    record: Record
    dir: Path

    @property
    def key(self) -> str:
        return str(self.record["key"])

    def file(self, role: str) -> Path:
        return self.dir / str(self.record["artifacts"][role]["file"])

    def checksum(self) -> str:
        return f"sha256:{self.record['artifacts']['disk']['sha256']}"


@functools.lru_cache(maxsize=1)
def tool_version() -> str:
    """mmdebstrap's version (part of the base's content key), asked once per process."""
    return mmdebstrap_version()


def mmdebstrap_version() -> str:
    result = proc.run(["mmdebstrap", "--version"], timeout=60)
    if not result.ok:
        raise ToolError("mmdebstrap --version failed", proc.INSTALL_HINT)
    return result.stdout.strip()


def verify(base: BaseImage, roles: tuple[str, ...] | None = None) -> None:
    """Check artifacts (default: every one the record lists) against their recorded sha256,
    before anything uses them."""
    for role in roles if roles is not None else tuple(base.record["artifacts"]):
        meta = base.record["artifacts"][role]
        path = base.dir / meta["file"]
        if not path.is_file():
            raise BaseError(
                f"base {base.key}: {meta['file']} is missing",
                "run `invoke base --rebuild` to build it again",
            )
        if sha256(path) != meta["sha256"]:
            raise BaseError(
                f"base {base.key}: {role} {meta['file']} does not match its recorded "
                "sha256 (modified or damaged)",
                "run `invoke base --rebuild` to build it again",
            )


def current(
    local: LocalBase, project_packer: Path, catalogue: Catalogue
) -> tuple[dict[str, Any], str]:
    """The inputs and content key of the base ``local`` asks for now. A revoked base is never
    used again: its replacement's key names the one it replaces, so it is built anew."""
    customize, shared = base_scripts(project_packer)
    data = inputs(local, customize, tool_version(), shared)
    key = content_key(data)
    while (found := _known(catalogue, key)) is not None and found.get("revoked"):
        data = {**data, "replaces": key}
        key = content_key(data)
    return data, key


def _known(catalogue: Catalogue, key: str) -> dict[str, Any] | None:
    """A base's record, or None (also when unsealed: the build that follows replaces it)."""
    try:
        return catalogue.base(key)
    except Untrusted:
        return None


def ensure(
    local: LocalBase,
    project_packer: Path,
    catalogue: Catalogue,
    run: Run,
    progress: Progress,
    rebuild: bool = False,
) -> BaseImage:
    """The cached base for ``local`` (checked), or a new one built now."""
    customize, _ = base_scripts(project_packer)
    data, key = current(local, project_packer, catalogue)
    with held(run.state_dir / "locks" / f"base-{key}.lock"):
        return _ensure(local, data, key, customize, catalogue, run, progress, rebuild)


def _ensure(
    local: LocalBase,
    data: dict[str, Any],
    key: str,
    customize: Path,
    catalogue: Catalogue,
    run: Run,
    progress: Progress,
    rebuild: bool,
) -> BaseImage:
    record = catalogue.cached_base(key, progress.say)
    if record is not None and not rebuild:
        base = BaseImage(record, catalogue.base_dir(key))
        try:
            with progress.phase("base", f"cache hit {key}, checking sha256"):
                verify(base)
            return base
        except BaseError as exc:  # a damaged or altered cache is never used: build it again
            progress.say(f"base: {exc.message}: not using it, building the base again")
    if record is not None:
        catalogue.remove_base(key)
    return build(local, data, key, customize, catalogue, run, progress)


def build(
    local: LocalBase,
    data: dict[str, Any],
    key: str,
    customize: Path,
    catalogue: Catalogue,
    run: Run,
    progress: Progress,
) -> BaseImage:
    if os.geteuid() != 0:
        raise BaseError(
            "building the local base image needs root (mmdebstrap in root mode)",
            "run as root, or with sudo",
        )
    stage = run.path("base-stage")
    stage.mkdir()
    rootfs = run.path("base-rootfs")
    log = run.path("base.log")
    env = {
        "BAKEHOUSE_APT_SOURCES": "\n".join(sources(local)),
        "BAKEHOUSE_INITRAMFS_MODULES": local.initramfs,
    }
    with progress.phase(
        "base",
        f"building {key} with mmdebstrap ({local.suite}, "
        f"{'patched' if local.include_updates else 'release suite only'})",
    ):
        code = proc.stream(
            mmdebstrap_argv(local, rootfs, customize),
            log=log,
            env=env,
            timeout=3600,
            on_line=PackageWatch(progress),
        )
        if code != 0:
            raise BaseError(f"mmdebstrap failed (exit {code})", f"see {log}")
        shutil.copyfile(rootfs / "var/lib/dpkg/status", stage / "status")
        proc.run(tar_argv(rootfs, stage / "rootfs.tar.zst"), check=True, timeout=600)
        staged = stage_rootfs(rootfs, stage, run.path("base.raw"))
        remove_rootfs(rootfs)
    record: Record = {
        "kind": "base",
        "id": f"base-{key}",
        "key": key,
        "target": "local",
        "created": now_iso(),
        "inputs": data,
        "kernel": staged.kernel,
        "packages": len(staged.manifest["packages"]),
        "artifacts": {
            **staged.artifacts,
            "status": describe(stage / "status"),
            "rootfs": describe(stage / "rootfs.tar.zst"),
        },
    }
    dest = catalogue.add_base(record, stage)
    progress.say(
        f"base: {record['id']} with {record['packages']} packages, kernel {staged.kernel}, "
        f"{record['artifacts']['disk']['size'] / 2**20:.0f} MiB"
    )
    return BaseImage(record, dest)
