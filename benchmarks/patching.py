"""Patching benchmark: from a stale base (release suite only, as a vendor image would be) to a
fully patched, verified web image, bakehouse's way against the naive way, in one run.

  naive      vendor-like base (every initramfs module), in-guest full-upgrade under emulation,
             then the hardening suite refreshing apt inside the guest to check the patch level
  bakehouse  the same stale package set; pending updates applied by patch.sh in a chroot on the
             host (cached per index state), a small initramfs, the patch level checked against
             host-fetched signed indexes

Both end states are checked by the same controls (bh-patch-01/02: `full-upgrade` would change
nothing, no pending security update). The stale bases are built first and not timed: they are
the starting point. Target: bakehouse <= 3 minutes under TCG on a 2-core machine.

    sudo .venv/bin/python benchmarks/patching.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from bakehouse import catalogue, debindex  # noqa: E402
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
        },
    ),
    "bakehouse": BakeRequest(publish=False, tuning={"include_updates": False, "initramfs": "list"}),
}


def pending_in_base(state: Path, record: dict) -> int:  # type: ignore[type-arg]
    import json

    base = record["base"].get("parent") or record["base"]
    folder = catalogue.local(state).base_dir(base["key"])
    manifest = json.loads((folder / "manifest.json").read_text())
    spec = Catalog(ROOT / "images").load("web").base.local
    ix = debindex.IndexCache(state / "cache" / "indexes").load(spec.index_suites())
    return len(debindex.pending(debindex.installed_from_manifest(manifest), ix))


def main() -> None:
    state = Path(
        os.environ.get("BAKEHOUSE_STATE_DIR") or tempfile.mkdtemp(prefix="bakehouse-patching-")
    ).resolve()
    os.environ["BAKEHOUSE_STATE_DIR"] = str(state)
    project = Project(ROOT)
    spec = Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("web")
    rows = []
    target = LocalTarget(project)
    for name, request in VARIANTS.items():
        # the starting point: the stale base (and the accelerator probe), built, not timed
        with run_dir(state, "bench", "bench") as run:
            ctx = Context(spec, request, run, Progress(quiet=True))
            target.step_base(ctx)
            target.step_accelerator(ctx)
        print(f"\n=== {name}", flush=True)
        start = time.perf_counter()
        record = bake(project, spec, target, request).record
        rows.append((name, time.perf_counter() - start, record))
    print(
        f"\n{'variant':<10} {'seconds':>8} {'m:ss':>5}  {'state':<9} {'stale base':<26} "
        f"{'pending':>7} {'controls':>9}  patch controls"
    )
    for name, took, record in rows:
        summary = record["verify"]["summary"]
        patch_ok = not any(c.startswith("bh-patch") for c in record["verify"]["failed"])
        base = record["base"].get("parent") or record["base"]
        print(
            f"{name:<10} {took:8.1f} {int(took // 60):>2}:{int(took % 60):02d}  "
            f"{record['state']:<9} {base['id']:<26} {pending_in_base(state, record):>7} "
            f"{summary['passed']:>4}/{summary['passed'] + summary['failed']:<4}  "
            f"{'pass' if patch_ok else 'FAIL'}"
        )
    naive, fast = rows[0][1], rows[1][1]
    print(
        f"\nspeed-up: {naive / fast:.1f}x ({naive:.0f} s -> {fast:.0f} s); "
        f"target <= 180 s: {'met' if fast <= 180 else 'MISSED'}"
    )
    print(f"state kept in {state} (remove it when done)")


if __name__ == "__main__":
    main()
