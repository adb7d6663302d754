"""Nightly benchmark: the decision for 10 images with nothing to do, against a full bake.

Builds a throwaway project with 10 images (extending web) whose catalogue says each was just
baked from the current inputs with every package current, warms the caches (package indexes,
tool versions) once, then times the nightly decision for all ten — no VM, no Packer build.
Target: under 2 s. The full bake time is the newest web bake in BAKEHOUSE_STATE_DIR (or
.bakehouse) — run `invoke bake --image web` first.

    .venv/bin/python benchmarks/nightly.py
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from bakehouse import debindex, nightly, plan  # noqa: E402
from bakehouse.catalogue import Catalogue, now_iso  # noqa: E402
from bakehouse.project import Project  # noqa: E402
from bakehouse.spec import Catalog  # noqa: E402

N = 10


def full_bake_seconds(state: Path) -> float | None:
    cat = Catalogue(state / "catalogue")
    for record in reversed(cat.images("web")):
        report = cat.image_dir("web", record["version"]) / "report.json"
        if report.is_file():
            data = json.loads(report.read_text())
            if "elapsed" in data:
                return float(data["elapsed"])
    return None


def main() -> None:
    real_state = Path(os.environ.get("BAKEHOUSE_STATE_DIR", ROOT / ".bakehouse")).resolve()
    tmp = Path(tempfile.mkdtemp(prefix="bakehouse-nightly-"))
    try:
        for sub in ("images", "packer"):
            shutil.copytree(ROOT / sub, tmp / sub)
        shutil.copytree(ROOT / "tests" / "hardening", tmp / "tests" / "hardening")
        for i in range(N):
            (tmp / "images" / f"app-{i}.yaml").write_text(
                f"description: application {i}\nextends: web\npackages: [curl]\n"
            )
        state = tmp / "state"
        (state / "cache").mkdir(parents=True)
        if (real_state / "cache" / "indexes").is_dir():  # reuse downloaded indexes if any
            shutil.copytree(real_state / "cache" / "indexes", state / "cache" / "indexes")
        os.environ["BAKEHOUSE_STATE_DIR"] = str(state)
        project = Project(tmp)
        specs = [
            Catalog(tmp / "images", tmp / "packer" / "scripts").load(f"app-{i}") for i in range(N)
        ]
        local = specs[0].base.local
        ix = debindex.IndexCache(state / "cache" / "indexes").load(
            debindex.suites_for(local.mirror, local.security_mirror, local.suite, local.components)
        )
        current = [
            {"name": n, "version": v, "architecture": "amd64", "source": n, "source_version": v}
            for n, (v, _) in sorted(ix.candidates().items())
            if n
            in (
                "openssl",
                "libssl3",
                "openssh-server",
                "nginx-light",
                "base-files",
                "libc6",
                "systemd",
                "curl",
                "tzdata",
                "apt",
            )
        ]
        cat = Catalogue(state / "catalogue")
        for spec in specs:
            fp, base_key = nightly.local_inputs(project, spec)
            stage = tmp / f"stage-{spec.name}"
            stage.mkdir()
            (stage / "manifest.json").write_text(json.dumps({"packages": current}))
            cat.add(
                {
                    "kind": "image",
                    "id": f"{spec.name}-1",
                    "name": spec.name,
                    "version": "1",
                    "created": now_iso(),
                    "state": "published",
                    "fingerprint": fp,
                    "base": {"key": base_key},
                },
                stage,
            )
        rows = []
        for run in range(4):
            start = time.perf_counter()
            decisions = [
                plan.decide(f, dt.datetime.now(dt.UTC)) for f in nightly.gather(project, specs)
            ]
            rows.append((run, time.perf_counter() - start, decisions))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    bake = full_bake_seconds(real_state)
    print(f"{'run':<10} {'images':>6} {'to bake':>7} {'seconds':>8}  target")
    for run, took, decisions in rows:
        label = "cold" if run == 0 else f"warm {run}"
        baking = sum(d.bake for d in decisions)
        ok = "ok" if took < 2 else "SLOW"
        print(f"{label:<10} {len(decisions):>6} {baking:>7} {took:8.3f}  < 2 s {ok if run else ''}")
    warm = min(t for r, t, _ in rows if r)
    if bake:
        print(
            f"\nfull bake of web (newest report): {bake:.0f} s; nightly decision for {N} "
            f"images: {warm:.3f} s; ratio {bake / warm:,.0f}x"
        )
    else:
        print("\nno web bake report found: run `invoke bake --image web` for the comparison")
    assert all(not d.bake for d in rows[-1][2]), [d.reason for d in rows[-1][2]]


if __name__ == "__main__":
    main()
