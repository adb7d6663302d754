"""Render benchmark: load + validate + render 100 generated image definitions, and time
`invoke --list`. Targets: under 1 s for the 100 images (both targets), under 0.5 s for the list.

    .venv/bin/python benchmarks/render.py
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from bakehouse import render  # noqa: E402
from bakehouse import targets as registry  # noqa: E402
from bakehouse.spec import Catalog  # noqa: E402

N = 100


def generate(folder: Path) -> None:
    shutil.copytree(ROOT / "images", folder / "images")
    shutil.copytree(ROOT / "packer", folder / "packer")
    for i in range(N):
        parent = "web" if i % 2 else "worker"
        (folder / "images" / f"gen-{i:03d}.yaml").write_text(
            f"description: generated image {i} for the render benchmark\n"
            f"extends: {parent}\n"
            f"packages: [pkg-{i:03d}, curl]\n"
            f"hardening:\n  waivers:\n    - id: os-{i % 20:02d}\n"
            f"      reason: generated waiver number {i}\n      expires: 2099-01-01\n"
            f"roll:\n  selector: {{role: gen-{i}}}\n  warmup: {i}\n"
            f"targets:\n  local: {{cpus: {1 + i % 4}, memory: {512 + i}M}}\n"
        )


def time_list() -> list[float]:
    took = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run(
            [str(Path(sys.executable).parent / "invoke"), "--list"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        took.append(time.perf_counter() - start)
    return sorted(took)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        generate(folder)
        names = [n for n in Catalog(folder / "images").names() if n.startswith("gen-")]
        rows = []
        for run in range(3):
            render.environment.cache_clear()
            start = time.perf_counter()
            catalog = Catalog(folder / "images", folder / "packer" / "scripts")
            t_load = 0.0
            t_render = 0.0
            for name in names:
                a = time.perf_counter()
                spec = catalog.load(name)
                b = time.perf_counter()
                for target in registry.names():
                    render.render(spec, target, folder / "packer")
                t_load += b - a
                t_render += time.perf_counter() - b
            rows.append((run + 1, t_load, t_render, time.perf_counter() - start))
    listing = time_list()
    header = ("run", "images", "load+validate", "render x2", "total")
    print(
        f"{header[0]:>3}  {header[1]:>6}  {header[2]:>13}  {header[3]:>9}  {header[4]:>7}  target"
    )
    for run, t_load, t_render, total in rows:
        verdict = "ok" if total < 1.0 else "SLOW"
        print(
            f"{run:>3}  {len(names):>6}  {t_load:>12.3f}s  {t_render:>8.3f}s  {total:>6.3f}s  "
            f"< 1 s {verdict}"
        )
    totals = sorted(total for *_, total in rows)
    median = statistics.median(totals)
    print(f"total, median (min–max): {median:.3f} s ({totals[0]:.3f}–{totals[-1]:.3f})")
    median = statistics.median(listing)
    verdict = "ok" if median < 0.5 else "SLOW"
    print(
        f"\ninvoke --list, 5 runs, median (min–max): {median:.3f} s "
        f"({listing[0]:.3f}–{listing[-1]:.3f})   target < 0.5 s {verdict}"
    )


if __name__ == "__main__":
    main()
