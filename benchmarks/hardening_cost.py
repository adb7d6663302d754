"""What hardening costs a bake: the web image baked at two revisions of bakehouse, in one run.

Each revision is checked out into its own work tree (``git worktree``) with its own fresh state
folder; its first bake builds the base and is not timed (the base is a cache), then the two
revisions bake in turn, ``--runs`` times each, so that both see the same machine load. Printed:
median seconds of the bake (Packer: boot, provisioning, shutdown), of the verification (boot
and hardening suite) and of the whole command, and the controls the suite ran.
Target: the bake at most 10 % slower than before the change.

    sudo .venv/bin/python benchmarks/hardening_cost.py --before 1d36e21 [--after HEAD] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worktree(rev: str, where: Path) -> Path:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), rev],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return where


def bake(tree: Path, state: Path) -> dict[str, float]:
    """One `bake --image web --no-publish` of ``tree``'s code, definitions and scripts."""
    env = {
        **os.environ,
        "BAKEHOUSE_STATE_DIR": str(state),
        "BAKEHOUSE_ROOT": str(tree),
        "PYTHONPATH": str(tree / "src"),  # this revision's package, not the installed one
    }
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "bakehouse", "bake", "--image", "web", "--no-publish"],
        cwd=tree,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    took = time.perf_counter() - start
    images = sorted((state / "catalogue" / "local" / "images" / "web").iterdir())
    report = json.loads((images[-1] / "report.json").read_text())
    summary = report["verify"]["summary"]
    return {
        "bake": report["timings"]["bake"],
        "verify": report["timings"]["verify"],
        "total": took,
        "controls": sum(summary.get(k, 0) for k in ("passed", "failed", "error", "skipped")),
        "passed": summary.get("passed", 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the revision to compare against")
    parser.add_argument("--after", default="HEAD", help="the revision measured (default HEAD)")
    parser.add_argument("--runs", type=int, default=3, help="timed bakes per revision")
    args = parser.parse_args()
    # a stopped benchmark still removes its work trees and state (SIGTERM unwinds like Ctrl-C)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="bakehouse-bench-"))
    variants = {"before": args.before, "after": args.after}
    trees: dict[str, Path] = {}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    try:
        for name, rev in variants.items():
            trees[name] = worktree(rev, work / name)
            (work / f"state-{name}").mkdir()
            print(f"{name}: {rev}: first bake (builds the base, not timed)", flush=True)
            bake(trees[name], work / f"state-{name}")
        for i in range(args.runs):
            for name in variants:
                result = bake(trees[name], work / f"state-{name}")
                results[name].append(result)
                print(
                    f"{name} run {i + 1}: bake {result['bake']:.1f} s, "
                    f"verify {result['verify']:.1f} s, total {result['total']:.1f} s",
                    flush=True,
                )
    finally:
        for tree in trees.values():
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False
            )
        shutil.rmtree(work, ignore_errors=True)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    print(f"\nweb image, {args.runs} runs each, medians (s)")
    print(f"{'revision':<10} {'rev':<10} {'bake':>7} {'verify':>7} {'total':>7} {'controls':>8}")
    for name, rev in variants.items():
        print(
            f"{name:<10} {rev:<10} {median(name, 'bake'):>7.1f} {median(name, 'verify'):>7.1f} "
            f"{median(name, 'total'):>7.1f} {int(median(name, 'controls')):>8}"
        )
    slower = median("after", "bake") / median("before", "bake") - 1
    print(f"bake {slower:+.1%} (target: at most +10 %): {'ok' if slower <= 0.10 else 'SLOWER'}")


if __name__ == "__main__":
    main()
