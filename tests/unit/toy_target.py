"""A third target, written the way a new cloud would be: one module with a Target subclass,
plus one registry entry. It bakes nothing real (its "artifact" is a file, its "verification"
reports one control) — it exists to show that every command and lifecycle step works for a
target they have never heard of."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from bakehouse.catalogue import Catalogue, DirStore, Record
from bakehouse.files import describe
from bakehouse.progress import Progress
from bakehouse.runs import Run
from bakehouse.spec import ImageSpec
from bakehouse.suite import Verified
from bakehouse.targets.base import Baked, BakeRequest, Inputs, Leftover, PruneItem, Target

MANIFEST = Path(__file__).parents[1] / "fixtures" / "web-manifest.json"


class ToyTarget(Target):
    name = "toy"
    summary = "a file per image, in a folder"

    def open_catalogue(self) -> Catalogue:
        return Catalogue(DirStore(self.project.state_dir / "toy"), self.name)

    def base(self, spec: ImageSpec, rebuild: bool, run: Run, progress: Progress) -> str:
        return "toy base"

    def bake(self, spec: ImageSpec, request: BakeRequest, run: Run, progress: Progress) -> Baked:
        stage = run.path("stage")
        stage.mkdir()
        (stage / "image.txt").write_text(spec.name)
        (stage / "manifest.json").write_text(MANIFEST.read_text())
        inputs = self.inputs(spec)
        return Baked(
            run.version,
            stage,
            inputs.fingerprint,
            "toy",
            {"key": inputs.base_key},
            json.loads(MANIFEST.read_text()),
            {"manifest": describe(stage / "manifest.json")},
        )

    def verify(self, spec: ImageSpec, baked: Baked, run: Run, progress: Progress) -> Verified:
        junit = run.path("junit.xml")
        junit.write_text("<testsuite/>")
        control = {"id": "toy-01", "title": "", "reference": "", "test": "", "outcome": "passed"}
        summary = {"passed": 1, "failed": 0, "waived": 0, "skipped": 0}
        return Verified(True, [control | {"message": ""}], 0, 0, junit, junit, summary)

    def record(self, spec: ImageSpec, record: Record, baked: Baked, progress: Progress) -> Record:
        self.catalogue.add(record, baked.stage)
        return record

    def verify_recorded(
        self, spec: ImageSpec, record: Record | None, run: Run, progress: Progress
    ) -> Verified:
        return self.verify(spec, None, run, progress)  # type: ignore[arg-type]

    def inputs(self, spec: ImageSpec) -> Inputs:
        return Inputs(f"toy-{spec.name}", "toy-base")

    def prune_plan(self, spec: ImageSpec, now: dt.datetime) -> list[PruneItem]:
        return []

    def prune(self, items: list[PruneItem]) -> list[str]:
        return []

    def leftovers(self, specs: list[ImageSpec], older_than: dt.timedelta) -> list[Leftover]:
        return []

    def collect(self, leftovers: list[Leftover]) -> None:
        return None
