"""Hardening suite benchmark: run time against a booted VM and the commands it sends.

Boots the newest baked web image from the catalogue (snapshot mode, TCG unless KVM works),
runs tests/hardening over SSH three times reading its facts three at a time and three times
one at a time (alternating), then once through the SSM command protocol (the
wrapper and chunking of ``verify_via: ssm``, with SSH playing the SSM agent: tests/e2e/
ssm_relay.py), and prints, per run, the controls, the wall time of the suite, the commands the
suite sent and, for SSM, the Run Command invocations they took (SendCommand round trips).
Target: the whole suite in under 60 s.

    sudo .venv/bin/python benchmarks/hardening.py      # needs a baked web image (invoke bake)
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

sys.path.insert(0, str(ROOT / "benchmarks"))

from _stats import spread  # noqa: E402
from bakehouse import catalogue as cat  # noqa: E402
from bakehouse import debindex, proc, vm  # noqa: E402
from bakehouse import suite as verify  # noqa: E402
from bakehouse.progress import Progress  # noqa: E402
from bakehouse.runs import run_dir  # noqa: E402
from bakehouse.spec import Catalog  # noqa: E402
from bakehouse.sshkeys import write_key  # noqa: E402


def main() -> None:
    state = Path(os.environ.get("BAKEHOUSE_STATE_DIR", ROOT / ".bakehouse")).resolve()
    catalogue = cat.local(state)
    record = catalogue.latest("web")
    if record is None:
        sys.exit("no baked web image: run `invoke bake --image web` first")
    folder = catalogue.image_dir("web", record["version"])
    spec = Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("web")
    local = spec.base.local
    indexes = debindex.IndexCache(state / "cache" / "indexes").load(local.index_suites())
    accel = str(record.get("accelerator", {}).get("accelerator", "tcg"))
    progress = Progress()
    rows = []
    with run_dir(state, "bench", "bench-hardening") as run:
        keys = run.path("keys")
        keys.mkdir(mode=0o700)
        key = write_key(keys, "bench")
        candidates = verify.write_candidates(indexes, run.path("candidates.json"))
        ctx = run.path("context.json")
        ctx.write_text(json.dumps(verify.context(spec, key.public, candidates)))
        cfg = vm.VmConfig(
            name="bench",
            disk=folder / "disk.qcow2",
            data_disk=folder / "data.qcow2",
            kernel=folder / "vmlinuz",
            initrd=folder / "initrd.img",
            append=f"{vm.KERNEL_ARGS} bakehouse.ssh_key={key.public_b64}",
            serial_log=run.path("console.log"),
            accelerator=accel,
        )
        with vm.boot(cfg, key.private, "admin", 600, progress, run.path("qemu.log")) as booted:
            ssh_config = booted.ssh_config(run.path("ssh_config"))
            relay = verify.Connection(
                "SSM",
                (
                    "-p",
                    "tests.e2e.ssm_relay",
                    f"--hosts=ssm-relay://i-00000000000000000@local?ssh_config={ssh_config}",
                ),
            )
            ssh = verify.over_ssh(ssh_config)  # the facts read PREFETCH at a time
            one = verify.Connection(  # ... and one at a time, as each control first needs it
                "SSH-serial",
                tuple(
                    "--bakehouse-prefetch=1" if o.startswith("--bakehouse-prefetch") else o
                    for o in ssh.options
                ),
            )
            # both ways 3 times each, alternating which goes first, then the SSM protocol once
            order = [ssh, one, one, ssh, ssh, one]
            for i, connection in enumerate([*order, relay]):
                junit = run.path(f"junit-{i}.xml")
                stats = run.path(f"stats-{i}.json")
                relay_stats = run.path(f"relay-{i}.json")
                argv = [
                    *verify.pytest_argv(
                        ROOT,
                        connection,
                        ctx,
                        junit,
                        run.path(f"facts-{i}.json"),
                        run.path(f"compliance-{i}.json"),
                    ),
                    f"--bakehouse-stats={stats}",
                ]
                start = time.perf_counter()
                proc.run(
                    argv,
                    cwd=ROOT,
                    timeout=1800,
                    env={"BAKEHOUSE_SSM_RELAY_STATS": str(relay_stats)},
                )
                took = time.perf_counter() - start
                controls = verify.parse_junit(junit)
                data = json.loads(stats.read_text())
                invocations = (
                    json.loads(relay_stats.read_text())["invocations"]
                    if relay_stats.exists()
                    else None
                )
                rows.append(
                    (
                        f"{i + 1} {connection.via}",
                        len(controls),
                        sum(c["outcome"] == "passed" for c in controls),
                        took,
                        data["commands"],
                        data["seconds"],
                        data["slowest"],
                        invocations,
                    )
                )
    print(f"\nimage {record['id']} ({accel}), boot to SSH {booted.boot_seconds:.1f} s")
    print(
        f"{'run':>12} {'controls':>8} {'passed':>6} {'suite s':>8} {'commands':>8} "
        f"{'in guest s':>10} {'SSM calls':>9}  target"
    )
    for i, n, passed, took, commands, guest, _, invocations in rows:
        calls = "-" if invocations is None else str(invocations)
        print(
            f"{i:>12} {n:>8} {passed:>6} {took:>8.1f} {commands:>8} {guest:>10.1f} {calls:>9}  "
            f"< 60 s {'ok' if took < 60 else 'SLOW'}"
        )
    for via, how in (
        ("SSH", f"facts {verify.PREFETCH} at a time"),
        ("SSH-serial", "one at a time"),
    ):
        took = [row[3] for row in rows if row[0].split()[1] == via]
        print(f"suite over SSH, {how}, {len(took)} runs, median (min–max): {spread(took, '.1f')} s")
    serial = [row for row in rows if row[0].endswith("SSH-serial")]
    print("slowest guest commands (SSH):", ", ".join(f"{c} {s:.1f}s" for c, s in serial[0][6]))


if __name__ == "__main__":
    main()
