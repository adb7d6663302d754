"""Patching benchmark: from a stale base (release suite only, as a vendor image would be) to a
fully patched, verified web image, bakehouse's way against the naive way, in one run.

  naive      vendor-like base (every initramfs module), Packer's qemu build: patch.sh's
             full-upgrade and every other script in the guest under emulation, then the
             hardening suite refreshing apt inside the guest to check the patch level
  bakehouse  the same stale package set; the local target's default chroot build: patch.sh,
             the packages and every other script run by Packer at native speed in a chroot of
             the base's root filesystem, the disks laid out on the host, a small initramfs; then
             the same proof on one boot of the final disks, the patch level checked against
             host-fetched signed indexes

Both end states are checked by the same controls (bh-patch-01/02: `full-upgrade` would change
nothing, no pending security update). Every variant and run starts from a fresh state folder
(nothing cached from another run); its stale base is built first and not timed: it is the
starting point. The variants alternate in order between rounds; each runs 3 times (--runs),
medians and spreads printed. Targets (issue "the fast path"): bakehouse <= 75 s under TCG on
a 2-core machine and >= 4x faster than the naive way.

    sudo .venv/bin/python benchmarks/patching.py [--runs 3] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _stats import spread  # noqa: E402
from bakehouse import catalogue, debindex  # noqa: E402
from bakehouse.errors import VerifyFailed  # noqa: E402
from bakehouse.lifecycle.bake import bake  # noqa: E402
from bakehouse.progress import Progress  # noqa: E402
from bakehouse.project import Project  # noqa: E402
from bakehouse.runs import run_dir  # noqa: E402
from bakehouse.spec import Catalog  # noqa: E402
from bakehouse.targets.base import BakeRequest  # noqa: E402
from bakehouse.targets.local import Context, LocalTarget  # noqa: E402

VARIANTS = {
    "naive": BakeRequest(
        publish=False,
        tuning={
            "include_updates": False,
            "initramfs": "most",
            "host_patch": False,
            "host_indexes": False,
            "build": "vm",
        },
    ),
    "bakehouse": BakeRequest(publish=False, tuning={"include_updates": False, "initramfs": "list"}),
}


def pending_in_base(state: Path, record: dict) -> int:  # type: ignore[type-arg]

    base = record["base"].get("parent") or record["base"]
    folder = catalogue.local(state).base_dir(base["key"])
    manifest = json.loads((folder / "manifest.json").read_text())
    spec = Catalog(ROOT / "images").load("web").base.local
    ix = debindex.IndexCache(state / "cache" / "indexes").load(spec.index_suites())
    return len(debindex.pending(debindex.installed_from_manifest(manifest), ix))


def one(name: str, request: BakeRequest, spec: object, keep: bool) -> tuple[float, dict, Path]:  # type: ignore[type-arg]
    """One variant from a fresh state folder: its stale base (and the accelerator probe) built
    first, untimed, then the timed bake. An interrupted run leaves no state folder behind."""
    state = Path(tempfile.mkdtemp(prefix=f"bakehouse-patching-{name}-")).resolve()
    try:
        return timed(name, request, spec, state)
    except BaseException:
        if not keep:
            shutil.rmtree(state, ignore_errors=True)
        raise


def timed(name: str, request: BakeRequest, spec: object, state: Path) -> tuple[float, dict, Path]:  # type: ignore[type-arg]
    os.environ["BAKEHOUSE_STATE_DIR"] = str(state)
    project = Project(ROOT)
    target = LocalTarget(project)
    with run_dir(state, "bench", "bench") as run:
        ctx = Context(spec, request, run, Progress(quiet=True))  # type: ignore[arg-type]
        target.step_base(ctx)
        target.step_accelerator(ctx)
    print(f"=== {name} ({state})", flush=True)
    start = time.perf_counter()
    try:
        record = bake(project, spec, target, request).record  # type: ignore[arg-type]
    except VerifyFailed:  # timed all the same; its row says which controls failed
        record = catalogue.local(state).latest("web") or {}
    return time.perf_counter() - start, record, state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each variant (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep each run's state folder")
    args = parser.parse_args()
    spec = Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("web")
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    rows = []
    for round_ in range(args.runs):
        # a fresh state folder for every variant and run; the order alternates between rounds
        order = list(VARIANTS) if round_ % 2 == 0 else list(reversed(VARIANTS))
        for name in order:
            took, record, state = one(name, VARIANTS[name], spec, args.keep)
            times[name].append(took)
            rows.append((name, round_ + 1, took, record, pending_in_base(state, record)))
            if not args.keep:
                shutil.rmtree(state, ignore_errors=True)
    print(
        f"\n{'variant':<10} {'run':>3} {'seconds':>8}  {'state':<9} {'stale base':<26} "
        f"{'pending':>7} {'controls':>9}  patch controls"
    )
    for name, run, took, record, pending in rows:
        summary = record["verify"]["summary"]
        failed = record["verify"]["failed"]
        patch_ok = not any(c.startswith("bh-patch") for c in failed)
        base = record["base"].get("parent") or record["base"]
        print(
            f"{name:<10} {run:>3} {took:8.1f}  {record['state']:<9} {base['id']:<26} "
            f"{pending:>7} {summary['passed']:>4}/{summary['passed'] + summary['failed']:<4}  "
            f"{'pass' if patch_ok else 'FAIL'}"
            + (f"  failed: {', '.join(failed)}" if failed else "")
        )
    print(f"\nseconds, {args.runs} run(s) each, median (min–max)")
    for name, values in times.items():
        print(f"{name:<10} {spread(values, '.1f'):>22}")
    naive, fast = (statistics.median(times[n]) for n in ("naive", "bakehouse"))
    print(
        f"speed-up (medians): {naive / fast:.1f}x; targets: <= 75 s "
        f"{'met' if fast <= 75 else 'MISSED'}, >= 4x {'met' if naive / fast >= 4 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
