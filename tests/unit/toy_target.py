"""A third target, written the way a new cloud would be: one module with a Target subclass,
plus one registry entry. It bakes nothing real (its "artifact" is a file, its "verification"
reports one control) — it exists to show that every command and lifecycle step works for a
target they have never heard of."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import time
from pathlib import Path
from typing import ClassVar

from bakehouse.catalogue import Catalogue, DirStore, Record
from bakehouse.errors import AwsError
from bakehouse.files import describe
from bakehouse.progress import Progress
from bakehouse.runs import Run
from bakehouse.spec import ImageSpec
from bakehouse.suite import Verified
from bakehouse.targets.base import (
    Baked,
    BakeRequest,
    Inputs,
    Leftover,
    PruneItem,
    RollOutcome,
    Say,
    Target,
)

MANIFEST = Path(__file__).parents[1] / "fixtures" / "web-manifest.json"


class ToyTarget(Target):
    name = "toy"
    summary = "a file per image, in a folder"
    passes: ClassVar[bool] = True  # what its verification says

    def open_catalogue(self) -> Catalogue:
        return Catalogue(DirStore(self.project.state_dir / "toy"), self.name)

    def base(self, spec: ImageSpec, rebuild: bool, run: Run, progress: Progress) -> str:
        return "toy base"

    def bake(self, spec: ImageSpec, request: BakeRequest, run: Run, progress: Progress) -> Baked:
        stage = run.path("stage")
        stage.mkdir()
        with progress.phase("bake", "a file"):  # timed like a real target's phases
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
        with progress.phase("verify", "one control"):
            junit.write_text("<testsuite/>")
        outcome = "passed" if self.passes else "failed"
        control = {"id": "toy-01", "title": "", "reference": "", "test": "", "outcome": outcome}
        summary = {"passed": int(self.passes), "failed": int(not self.passes), "waived": 0}
        return Verified(self.passes, [control | {"message": ""}], 0, 0, junit, junit, summary)

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


class FailingToyTarget(ToyTarget):
    """Its verification finds a failing control."""

    name = "toy-failing"
    passes = False


class FleetToyTarget(ToyTarget):
    """A toy with a fleet: its roll succeeds, fails, errs or is interrupted, as told."""

    name = "toy-fleet"
    behaviour: ClassVar[str] = "ok"

    def roll(
        self, spec: ImageSpec, channel: str, record: Record, *, dry_run: bool, wait: bool, say: Say
    ) -> RollOutcome:
        if self.behaviour == "error":
            raise AwsError("the refresh could not start")
        if self.behaviour == "interrupt":
            raise KeyboardInterrupt
        if self.behaviour == "sigterm":  # a cancelled CI job, mid-roll
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)
            raise AssertionError("SIGTERM did not stop the roll")
        group = {"region": "here", "group": "g", "before": 1, "after": 2}
        outcome = "updated" if self.behaviour == "ok" else "Failed: back on v1"
        return RollOutcome(self.behaviour == "ok", groups=[group | {"outcome": outcome}])
