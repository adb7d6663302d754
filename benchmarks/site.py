"""Report site benchmark: write the site of a local catalogue with N recorded versions (each
with the 306 controls of a real suite run, a real package manifest and its SBOM), then open
every page in Debian's chromium. Fresh state for every size; 3 runs each; medians and spreads.

    .venv/bin/python benchmarks/site.py [--versions 10 30 100] [--runs 3]

Prints, per catalogue size: the time to write the site (without the pending-update check, which
reads the signed indexes: that is nightly's cost, measured in benchmarks/nightly.py), the pages,
the largest page, and the load time of a page in the browser (median and slowest).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))


def catalogue(state: Path, versions: int) -> None:
    from tests.conftest import TODAY
    from tests.recorded import record_version

    from bakehouse.project import Project
    from bakehouse.spec import Catalog
    from bakehouse.targets import get

    os.environ["BAKEHOUSE_STATE_DIR"] = str(state)
    target = get("local", Project(ROOT))
    spec = Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("web", TODAY)
    for i in range(versions):
        version = f"{2026 + i // 336}{1 + i // 28 % 12:02d}{1 + i % 28:02d}.000000"
        record_version(target, spec, version, state / "work", evidence="web-debian-13")


def one(versions: int) -> dict[str, float]:
    from tests.browser import visit

    from bakehouse.project import Project
    from bakehouse.site import build
    from bakehouse.targets import get

    with tempfile.TemporaryDirectory(prefix="bakehouse-site-bench-") as tmp:
        state = Path(tmp) / "state"
        catalogue(state, versions)
        start = time.perf_counter()
        result = build(
            Project(ROOT), [get("local", Project(ROOT))], Path(tmp) / "site", [],
            images=["web"], pending=False,
        )  # fmt: skip
        took = time.perf_counter() - start
        pages = visit(result.out)
        loads = [p.load_ms for p in pages.values()]
        return {
            "write": took,
            "pages": len(pages),
            "largest_kb": max(p.size for p in pages.values()) / 1024,
            "load_median_ms": statistics.median(loads),
            "load_max_ms": max(loads),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, nargs="+", default=[10, 30, 100])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for n in args.versions:
        runs = [one(n) for _ in range(args.runs)]

        def stat(key: str, fmt: str, runs: list[dict[str, float]] = runs) -> str:
            values = sorted(r[key] for r in runs)
            mid = format(statistics.median(values), fmt)
            return f"{mid} ({format(values[0], fmt)}–{format(values[-1], fmt)})"

        rows.append(
            [
                str(n),
                str(int(runs[0]["pages"])),
                stat("write", ".2f"),
                stat("largest_kb", ".0f"),
                stat("load_median_ms", ".0f"),
                stat("load_max_ms", ".0f"),
            ]
        )
    header = ["versions", "pages", "write (s)", "largest page (KB)", "load, median (ms)",
              "load, slowest (ms)"]  # fmt: skip
    print(f"report site, {args.runs} runs each, median (min–max)")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
