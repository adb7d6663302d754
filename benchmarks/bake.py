"""Bake benchmark: bakehouse's own overhead, per-phase timings, base cache hits.

Runs, in one go on this machine:
  1. `invoke bake --image web --no-publish` (warm caches: base, indexes, probe; the default
     chroot build),
  2. the same build bare: the base's root filesystem unpacked with tar, `packer build` of the
     very same rendered template and variables, and the disks laid out (bakehouse's
     chroot.assemble: its time is that of mkfs.ext4, sfdisk, debugfs and qemu-img),
  3. a bare boot of those disks with qemu plus a bare pytest run of tests/hardening over SSH,
and prints bakehouse's wall time against the bare sum (target: overhead <= 5 %), the phases
of the bakehouse run, and the time of a base cache hit (target: <= 1 s). After one warm-up
bake, 3 rounds (--runs) of both, alternating which goes first; medians and spreads.

    sudo .venv/bin/python benchmarks/bake.py            # state in BAKEHOUSE_STATE_DIR or .bakehouse
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _stats import spread  # noqa: E402
from bakehouse import (  # noqa: E402
    catalogue,
    debindex,
    packer,
    render,
)
from bakehouse import suite as verify_stage  # noqa: E402
from bakehouse import vm as vm_config  # noqa: E402
from bakehouse.progress import Progress  # noqa: E402
from bakehouse.project import Project  # noqa: E402
from bakehouse.runs import run_dir  # noqa: E402
from bakehouse.spec import Catalog  # noqa: E402
from bakehouse.targets.local import base as base_stage  # noqa: E402
from bakehouse.targets.local import chroot  # noqa: E402

BIN = Path(sys.executable).parent


def latest_report(state: Path) -> dict:  # type: ignore[type-arg]
    """The newest bake's report: what a bare run that goes before this round's bake uses."""
    record = catalogue.local(state).latest("web")
    assert record is not None
    folder = catalogue.local(state).image_dir("web", record["version"])
    return json.loads((folder / "report.json").read_text()) | {"record": record}


def timed_bake(state: Path) -> tuple[float, dict]:  # type: ignore[type-arg]
    env = {**os.environ, "BAKEHOUSE_STATE_DIR": str(state)}
    start = time.perf_counter()
    subprocess.run(
        [str(BIN / "invoke"), "bake", "--image", "web", "--no-publish"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    return time.perf_counter() - start, latest_report(state)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bare(state: Path, report: dict, work: Path) -> tuple[float, float]:  # type: ignore[type-arg]
    """A bare packer build and a bare boot + pytest of the same template, base and scripts."""
    spec = Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("web")
    base_dir = catalogue.local(state).base_dir(report["record"]["base"]["key"])
    base_rec = json.loads((base_dir / "record.json").read_text())
    template = work / "web.pkr.hcl"
    template.write_text(render.render(spec, "local", ROOT / "packer", packer.version()))
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "key")], check=True
    )
    pub = (work / "key.pub").read_text().strip()
    artifacts = work / "artifacts"
    artifacts.mkdir()
    rootfs, layout_dir = work / "rootfs", work / "layout"
    variables = {
        "run_id": "bare",
        "version": "bare",
        "artifacts_dir": str(artifacts),
        "scripts_dir": str(ROOT / "packer" / "scripts"),
        "root_dir": str(rootfs),
        "in_root": str(ROOT / "packer" / "local" / "in-root.sh"),
    }
    pub_b64 = base64.b64encode(pub.encode()).decode()
    argv = ["packer", "build", "-color=false"]
    for k, v in variables.items():
        argv += ["-var", f"{k}={v}"]
    start = time.perf_counter()
    rootfs.mkdir()
    tarball = base_dir / base_rec["artifacts"]["rootfs"]["file"]
    subprocess.run(base_stage.untar_argv(tarball, rootfs), check=True)
    policy = rootfs / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    subprocess.run(
        [*argv, str(template)],
        cwd=work,
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "CHECKPOINT_DISABLE": "1"},
    )
    policy.unlink()
    layout_dir.mkdir()
    chroot.assemble(
        rootfs,
        artifacts,
        layout_dir,
        spec.targets.local.disk_size,
        spec.targets.local.data_disk_size,
    )
    t_packer = time.perf_counter() - start
    subprocess.run(["rm", "-rf", "--one-file-system", str(rootfs), str(layout_dir)], check=True)

    # the same context bakehouse gives the suite (host-side indexes), prepared untimed
    local = spec.base.local
    indexes = debindex.IndexCache(state / "cache" / "indexes").load(local.index_suites())
    candidates = verify_stage.write_candidates(indexes, work / "candidates.json")

    accel = report["accelerator"]["accelerator"]
    port = free_port()
    qemu = [
        "qemu-system-x86_64",
        "-machine",
        "q35",
        # the accelerator bakehouse's bake used (the probe's choice), not TCG whatever it was
        "-accel",
        "kvm" if accel == "kvm" else "tcg,thread=multi",
        "-cpu",
        "host" if accel == "kvm" else "max",
        "-smp",
        "2",
        "-m",
        "1024",
        "-display",
        "none",
        "-nodefaults",
        "-kernel",
        str(artifacts / "vmlinuz"),
        "-initrd",
        str(artifacts / "initrd.img"),
        # the kernel command line and disks bakehouse's verify boot uses
        "-append",
        f"{vm_config.KERNEL_ARGS} bakehouse.ssh_key={pub_b64}",
        "-no-reboot",
        "-drive",
        f"file={artifacts / 'disk.qcow2'},if=virtio,format=qcow2,snapshot=on",
        "-drive",
        f"file={artifacts / 'data.qcow2'},if=virtio,format=qcow2,snapshot=on",
        "-netdev",
        f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22",
        "-device",
        "virtio-net-pci,netdev=n0",
        "-device",
        "virtio-rng-pci",
    ]
    cfg = work / "ssh_config"
    cfg.write_text(
        f"Host vm\n  HostName 127.0.0.1\n  Port {port}\n  User admin\n"
        f"  IdentityFile {work / 'key'}\n  StrictHostKeyChecking no\n"
        "  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
    )
    start = time.perf_counter()
    vm = subprocess.Popen(qemu, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while (
            subprocess.run(
                ["ssh", "-F", str(cfg), "-o", "ConnectTimeout=3", "vm", "true"],
                capture_output=True,
                check=False,
            ).returncode
            != 0
        ):
            time.sleep(1)
        ctx = work / "context.json"
        ctx.write_text(
            json.dumps(
                {
                    "role_checks": ["nginx"],
                    "waivers": {},
                    "verify_key": pub,
                    "candidates": str(candidates),
                }
            )
        )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                str(ROOT / "tests" / "hardening"),
                "--hosts=paramiko://vm",
                f"--ssh-config={cfg}",
                "--sudo",
                "-q",
                f"--bakehouse-context={ctx}",
                "-p",
                "no:cacheprovider",
            ],
            cwd=ROOT,
            check=False,
            stdout=subprocess.DEVNULL,
        )
    finally:
        vm.kill()
        vm.wait()
    return t_packer, time.perf_counter() - start


def base_cache_hits(state: Path, n: int = 5) -> list[float]:
    project = Project(ROOT)
    spec = Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("web")
    local = catalogue.local(state)
    out = []
    for _ in range(n):
        with run_dir(state, "bench", "bench") as run:
            start = time.perf_counter()
            base_stage.ensure(spec.base.local, project.packer_dir, local, run, Progress(quiet=True))
            out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="measured rounds (default 3)")
    parser.add_argument(
        "--warm", action="store_true", help="the caches are warm already: no warm-up bake"
    )
    args = parser.parse_args()
    state = Path(os.environ.get("BAKEHOUSE_STATE_DIR", ROOT / ".bakehouse")).resolve()
    if not args.warm:
        print("warm-up bake (fills the caches; not measured) …", flush=True)
        timed_bake(state)
    rows = []
    for round_ in range(args.runs):
        # bakehouse and the bare runs alternate which goes first
        bake_first = round_ % 2 == 0
        work = Path(tempfile.mkdtemp(prefix="bakehouse-bench-"))
        try:
            if bake_first:
                print(f"round {round_ + 1}: measured bake, then the bare runs …", flush=True)
                wall, report = timed_bake(state)
                t_packer, t_verify = bare(state, report, work)
            else:
                print(f"round {round_ + 1}: the bare runs, then the measured bake …", flush=True)
                t_packer, t_verify = bare(state, latest_report(state), work)
                wall, report = timed_bake(state)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        t = report["timings"]
        # the external work: tar, Packer and the disk tools, the verify VM's boot, the suite
        build = t["packer:total"] + t.get("packer:unpack", 0) + t.get("packer:disks", 0)
        external = build + t["verify:boot-to-ssh"] + t["verify:suite"]
        rows.append((wall, t_packer, t_verify, wall - external, external, report))
    hits = base_cache_hits(state)

    print("\nphases of the last measured bakehouse run (s)")
    for phase, seconds in rows[-1][5]["timings"].items():
        print(f"  {phase:<28} {seconds:8.1f}")
    print(
        f"\n{'round':<6} {'bake (wall)':>11} {'bare packer':>11} {'bare verify':>11} "
        f"{'bare total':>10} {'own':>6}"
    )
    for i, (wall, t_packer, t_verify, own, _, _) in enumerate(rows, 1):
        print(
            f"{i:<6} {wall:11.1f} {t_packer:11.1f} {t_verify:11.1f} "
            f"{t_packer + t_verify:10.1f} {own:6.1f}"
        )
    print(f"\nseconds over {args.runs} rounds, median (min–max)")
    for label, values in (
        ("invoke bake --image web (wall)", [r[0] for r in rows]),
        ("bare build (tar, packer build, disk layout)", [r[1] for r in rows]),
        ("bare qemu boot + pytest tests/hardening", [r[2] for r in rows]),
        ("bare total", [r[1] + r[2] for r in rows]),
        # what bakehouse itself spends: the wall time minus the time in tar, Packer and the
        # disk tools, the verify VM's boot and the pytest run (the work the bare runs do)
        ("bakehouse own time (wall - build - boot - suite)", [r[3] for r in rows]),
    ):
        print(f"{label:<48} {spread(values, '.1f'):>22}")
    own = [100 * r[3] / r[4] for r in rows]
    print(f"{'  as % of the external work (target <= 5 %)':<48} {spread(own, '.1f'):>22}")
    print(
        f"\nbase cache hit (check sha256 of disk, kernel, initrd), {len(hits)} runs: median "
        f"{spread(hits, '.3f')} s (target <= 1 s)"
    )


if __name__ == "__main__":
    main()
