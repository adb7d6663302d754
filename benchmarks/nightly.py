"""Nightly benchmark: how long the decisions take, and what they cost, on both targets.

local  10 images (extending web, real 166-package manifests) whose newest bake is current: the
       decision for all ten, no VM, no Packer (target: under 2 s warm).
aws    25, 50 and 100 images, each with verified AMIs in 3 regions and its record and package
       manifest in the account (moto, as the tests run it): the decision for all of them from a
       fresh process's point of view (a new session, the package indexes fetched and checked),
       with the API calls counted by operation — they must grow with the images, not with the
       regions or the history (target: 100 images under 5 s).

Each figure is the median (and spread) of 5 runs with fresh clients, each run as a new process
sees it (nothing parsed in memory). "cold": an empty index cache, every run (the indexes are
downloaded, checked and parsed); "warm": the checked, parsed indexes on disk (each run still
fetches and checks the signed InRelease files). Seeding is not timed.

    .venv/bin/python benchmarks/nightly.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from tests.recorded import manifest, record_version  # noqa: E402

from _moto import moto_server  # noqa: E402
from bakehouse.lifecycle import bake, nightly  # noqa: E402
from bakehouse.project import Project  # noqa: E402
from bakehouse.spec import Catalog  # noqa: E402
from bakehouse.targets.aws import AwsTarget  # noqa: E402
from bakehouse.targets.local import LocalTarget  # noqa: E402

RUNS = 5
LOCAL_N = 10
AWS_N = (25, 50, 100)
REGIONS = ["eu-west-1", "eu-central-1", "us-east-1"]


def project_with(folder: Path, n: int, regions: list[str] | None = None) -> Project:
    for sub in ("images", "packer", "tests/hardening"):
        shutil.copytree(ROOT / sub, folder / sub)
    extra = f"targets:\n  aws:\n    regions: [{', '.join(regions)}]\n" if regions else ""
    for i in range(n):
        (folder / "images" / f"app-{i:03d}.yaml").write_text(
            f"description: application {i}\nextends: web\npackages: [curl]\n{extra}"
        )
    return Project(folder)


def current_packages(project: Project) -> dict[str, object]:
    """The web manifest with every package at the version the indexes offer now."""
    spec = Catalog(project.images_dir).load("web")
    offered = bake.indexes_for(project, spec).candidates()
    data = manifest()
    for pkg in data["packages"]:  # type: ignore[union-attr]
        if pkg["name"] in offered:
            pkg["version"] = offered[pkg["name"]][0]
    return data


def timed(fn: object, runs: int = RUNS, cold: Path | None = None) -> tuple[str, float, object]:
    """Median (min–max) over ``runs``; ``cold``: that index cache is emptied before each run."""
    from bakehouse import debindex

    times, out = [], None
    for _ in range(runs):
        # nothing the process read before: the indexes are fetched and checked again
        bake._INDEXES.clear()
        debindex._PARSED.clear()
        if cold is not None:
            shutil.rmtree(cold, ignore_errors=True)
        start = time.perf_counter()
        out = fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    times.sort()
    med = statistics.median(times)
    return f"{med:.3f} ({times[0]:.3f}–{times[-1]:.3f})", med, out


def local_section(tmp: Path) -> None:
    project = project_with(tmp / "local", LOCAL_N)
    os.environ["BAKEHOUSE_STATE_DIR"] = str(tmp / "local-state")
    target = LocalTarget(project)
    specs = [Catalog(project.images_dir).load(f"app-{i:03d}") for i in range(LOCAL_N)]
    packages = current_packages(project)
    for spec in specs:
        record_version(target, spec, "20261101.000000", tmp, packages=packages)  # type: ignore[arg-type]
    cache = tmp / "local-state" / "cache" / "indexes"
    print("\nlocal target: seconds, median (min–max)")
    print("| images | to bake | indexes | seconds | target |")
    print("|---|---|---|---|---|")
    for label, cold in (("cold", cache), ("warm", None)):
        shown, took, decisions = timed(
            lambda: nightly.decide(project, LocalTarget(project), specs), cold=cold
        )
        baking = sum(d.bake for d in decisions)  # type: ignore[attr-defined]
        verdict = ("met" if took < 2 else "MISSED") if label == "warm" else "-"
        print(f"| {LOCAL_N} | {baking} | {label} | {shown} | < 2 s warm: {verdict} |")


def aws_section(tmp: Path) -> None:
    biggest = max(AWS_N)
    project = project_with(tmp / "aws", biggest, REGIONS)
    os.environ["BAKEHOUSE_STATE_DIR"] = str(tmp / "aws-state")
    packages = current_packages(project)
    names = [f"app-{i:03d}" for i in range(biggest)]
    specs = [Catalog(project.images_dir).load(n) for n in names]
    seed = AwsTarget(project)
    print(f"\nseeding {biggest} images x {len(REGIONS)} regions in moto (not timed) …", flush=True)
    for i, spec in enumerate(specs):
        # every tenth has an old openssl: those are the ones to bake
        pkgs = manifest(openssl="3.0.0-1", libssl3="3.0.0-1") if i % 10 == 9 else packages
        record_version(seed, spec, "20261101.000000", tmp, packages=pkgs)  # type: ignore[arg-type]
    print("\naws target (moto, 3 regions per image; warm indexes): seconds, median (min–max)")
    print("| images | to bake | seconds | calls | per image | by operation |")
    print("|---|---|---|---|---|---|")
    for n in AWS_N:
        calls: Counter[tuple[str, str]] = Counter()

        def decide(count: int = n, tally: Counter[tuple[str, str]] = calls) -> object:
            target = AwsTarget(project)
            out = nightly.decide(project, target, specs[:count])
            tally.clear()
            tally.update(target.aws.calls)
            return out

        shown, _, decisions = timed(decide)
        baking = sum(d.bake for d in decisions)  # type: ignore[attr-defined]
        total = sum(calls.values())
        ops = ", ".join(f"{op} {c}" for (_, op), c in sorted(calls.items()))
        print(f"| {n} | {baking} | {shown} | {total} | {total / n:.2f} | {ops} |")
    print("target: 100 images under 5 s, calls per image constant")


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bakehouse-nightly-bench-"))
    try:
        local_section(tmp)
        with moto_server():
            aws_section(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
