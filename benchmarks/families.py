"""The local bake of each distribution release side by side: web (Debian 13), web-bookworm
(Debian 12), web-noble (Ubuntu 24.04) and web-jammy (Ubuntu 22.04), in one run on this machine.

Each image gets a fresh state folder; its first bake builds its base (mmdebstrap, timed on its
own as "base") and is not counted. Then the images bake in turn, ``--runs`` times each, in an
order that rotates every round, so every family sees the same machine load. Printed per image:
median and spread (min–max) of the base build, the bake (Packer: boot, provisioning, shutdown),
the verification (boot and hardening suite) and the whole command, and the controls passed.

    sudo .venv/bin/python benchmarks/families.py [--runs 3] [--images web web-noble]
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
IMAGES = ("web", "web-bookworm", "web-noble", "web-jammy")


def bake(image: str, state: Path) -> dict[str, float]:
    """One `bake --image IMAGE --no-publish` into ``state``; its report's timings."""
    env = {**os.environ, "BAKEHOUSE_STATE_DIR": str(state)}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "bakehouse", "bake", "--image", image, "--no-publish"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    took = time.perf_counter() - start
    versions = sorted((state / "catalogue" / "local" / "images" / image).iterdir())
    report = json.loads((versions[-1] / "report.json").read_text())
    timings = report["timings"]
    return {
        "base": timings.get("base", 0.0),
        "bake": timings["bake"],
        "verify": timings["verify"],
        "total": took,
        "passed": report["verify"]["summary"].get("passed", 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed bakes per image")
    parser.add_argument("--images", nargs="+", default=list(IMAGES), help="images to compare")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: remove the state folders
    work = Path(tempfile.mkdtemp(prefix="bakehouse-bench-families-"))
    first: dict[str, dict[str, float]] = {}
    results: dict[str, list[dict[str, float]]] = {i: [] for i in args.images}
    try:
        for image in args.images:
            (work / image).mkdir()
            print(f"{image}: first bake (builds the base; only the base is kept)", flush=True)
            first[image] = bake(image, work / image)
        for n in range(args.runs):
            shift = n % len(args.images)
            for image in args.images[shift:] + args.images[:shift]:
                result = bake(image, work / image)
                results[image].append(result)
                print(
                    f"{image} run {n + 1}: bake {result['bake']:.1f} s, "
                    f"verify {result['verify']:.1f} s, total {result['total']:.1f} s",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def cell(image: str, key: str) -> str:
        values = [r[key] for r in results[image]]
        return f"{statistics.median(values):.1f} ({min(values):.0f}–{max(values):.0f})"

    print(f"\nlocal bake per family, {args.runs} runs each: median (min–max), seconds")
    print("| image | release | base build | bake | verify | total | controls passed |")
    print("|---|---|---|---|---|---|---|")
    from bakehouse.spec import Catalog

    catalog = Catalog(ROOT / "images")
    for image in args.images:
        release = catalog.load(image).base.local.release.title
        passed = int(statistics.median(r["passed"] for r in results[image]))
        print(
            f"| {image} | {release} | {first[image]['base']:.1f} | {cell(image, 'bake')} | "
            f"{cell(image, 'verify')} | {cell(image, 'total')} | {passed} |"
        )


if __name__ == "__main__":
    main()
