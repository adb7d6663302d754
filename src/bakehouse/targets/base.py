"""The target interface: what the lifecycle asks of a place images are baked for.

A target bakes (resolve its base, run Packer, collect the artifact), verifies (boot or launch
the artifact without changing it and run tests/hardening against it), records (its catalogue,
plus whatever the target's own platform keeps: AMI tags), moves channels, marks revocations,
computes the inputs nightly compares, rolls fleets (if it has any), prunes and collects
leftovers. The lifecycle steps (bake, verify, publish, revoke, roll, nightly, deploy, diff,
history) are written once against this interface; they never ask which target they run on.

Adding a target is a module with a :class:`Target` subclass and an entry in
``bakehouse.targets.REGISTRY``.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from bakehouse.catalogue import Catalogue, Record
from bakehouse.debindex import Marks
from bakehouse.errors import UsageError
from bakehouse.progress import Progress
from bakehouse.project import Project
from bakehouse.runs import Run
from bakehouse.spec import ImageSpec
from bakehouse.suite import Verified

Say = Callable[[str], None]


@dataclass(frozen=True)
class TargetOptions:
    """What the command line says about the target, whatever it is."""

    profile: str | None = None  # credentials profile (clouds)
    regions: tuple[str, ...] = ()  # replaces the definition's regions (clouds)
    runner_cidr: str | None = None  # the address allowed to reach build and verify machines
    wide_runner_cidr: bool = False  # allow a range wider than one address (a NAT pool)


@dataclass(frozen=True)
class BakeRequest:
    """What one bake is asked to do (the flags of `invoke bake`)."""

    publish: bool = True
    channels: tuple[str, ...] = ()  # default: the definition's publish.channels
    verify: bool = True
    keep_run: bool = False
    rebuild_base: bool = False
    keep_on_failure: bool = False  # a failed build's machine stays up to look at
    # knobs the benchmarks use to compare variants of the local bake
    tuning: dict[str, Any] = field(default_factory=dict)


@dataclass
class Baked:
    """What a target's bake produced, before verification."""

    version: str
    stage: Path  # a folder holding what the catalogue entry keeps (manifest, logs, disk…)
    fingerprint: str
    git_commit: str
    base: dict[str, Any]  # lineage; base["key"] is what nightly compares
    manifest: dict[str, Any] | None  # the package manifest (None: the build could not read it)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)  # the target's own record fields
    where: list[str] = field(default_factory=list)  # where the artifact is (for messages)
    context: Any = None  # the target's own state between bake and verify


@dataclass(frozen=True)
class Inputs:
    """What a bake of a definition would be made of now (for nightly decisions)."""

    fingerprint: str
    base_key: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PruneItem:
    where: str  # region, or "local"
    ident: str  # AMI id, or the version
    version: str
    state: str
    created: dt.datetime
    action: str  # delete | keep
    reason: str
    detail: Any = None  # what execute needs


@dataclass(frozen=True)
class Leftover:
    where: str
    kind: str
    ident: str
    run_id: str
    detail: str = ""
    size: int = 0
    handle: Any = None  # what remove needs


@dataclass
class RollOutcome:
    ok: bool
    plans: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)
    skipped: str = ""  # why nothing was rolled (a target without a fleet)


class Target(ABC):
    """One place images are baked for. Instances live for one command."""

    name: ClassVar[str]
    summary: ClassVar[str]
    # a deploy on this target always bakes (the base moves: "patched on every deploy")
    deploy_always_bakes: ClassVar[bool] = False

    def __init__(self, project: Project, options: TargetOptions | None = None):
        self.project = project
        self.options = options or TargetOptions()
        self._catalogue: Catalogue | None = None

    # ---- the catalogue ------------------------------------------------------------------------
    @property
    def catalogue(self) -> Catalogue:
        if self._catalogue is None:
            self._catalogue = self.open_catalogue()
        return self._catalogue

    @abstractmethod
    def open_catalogue(self) -> Catalogue:
        """Where this target's records live."""

    def where(self, record: Record) -> list[str]:
        """Where a recorded image is (regions and ids, or a folder), for messages."""
        return []

    def index_marks(self) -> Marks | None:
        """Where the newest package-index dates accepted are kept beside the index cache: a
        target whose state lives elsewhere (an account) keeps them there too."""
        return None

    # ---- bake ---------------------------------------------------------------------------------
    @abstractmethod
    def base(self, spec: ImageSpec, rebuild: bool, run: Run, progress: Progress) -> str:
        """Make sure the base ``spec`` bakes from is there (build it, or resolve it); a line
        saying what it is."""

    def check(self, spec: ImageSpec, request: BakeRequest) -> None:
        """Refuse a bake that cannot work, before anything starts (bad flags: UsageError)."""
        return None

    @abstractmethod
    def bake(self, spec: ImageSpec, request: BakeRequest, run: Run, progress: Progress) -> Baked:
        """Resolve the base and build the image; nothing reaches the catalogue here."""

    @abstractmethod
    def verify(self, spec: ImageSpec, baked: Baked, run: Run, progress: Progress) -> Verified:
        """Boot (or launch) the new artifact, unchanged, and run tests/hardening against it."""

    @abstractmethod
    def record(self, spec: ImageSpec, record: Record, baked: Baked, progress: Progress) -> Record:
        """Keep the finished record: the platform's own marks (tags), then the catalogue."""

    @abstractmethod
    def verify_recorded(
        self, spec: ImageSpec, record: Record | None, run: Run, progress: Progress
    ) -> Verified:
        """Verify a recorded image again (``record``), or the unhardened base (None)."""

    def shell(
        self,
        spec: ImageSpec,
        record: Record | None,
        run: Run,
        progress: Progress,
        command: str | None,
    ) -> int:
        """Boot a recorded image (or the base: None) unchanged and open SSH into it — an
        interactive shell, or ``command`` — gone when the session ends; the session's status."""
        raise UsageError(
            f"shell is not available on the {self.name} target yet",
            f"boot the image on the local target (bakehouse shell {spec.name}), or launch it "
            "from its launch template",
        )

    # ---- channels and states ------------------------------------------------------------------
    def channels(self, spec: ImageSpec) -> dict[str, dict[str, Any]]:
        """{channel: {"current": version or None, "history": [...]}} of an image."""
        return self.catalogue.channels(spec.name)

    def point(self, spec: ImageSpec, record: Record, channels: list[str], by: str) -> None:
        """Make ``channels`` deliver ``record`` (the lifecycle has checked its state)."""
        self.catalogue.set_channels(spec.name, record["version"], channels, by)

    def deliverable(self, record: Record) -> bool:
        """Whether a usable record's artifact is still there to be delivered."""
        return True

    def unpoint(self, spec: ImageSpec, channels: list[str], by: str) -> None:
        """Remove ``channels``: nothing earlier may be delivered in their place."""
        self.catalogue.set_channels(spec.name, None, channels, by)

    def revoked(self, spec: ImageSpec, record: Record, reason: str) -> list[str]:
        """The platform's own marks of a revocation (tags, deprecation); returns notes."""
        return []

    def revoke_base(
        self, spec: ImageSpec, record: Record, reason: str, by: str, dry_run: bool = False
    ) -> str:
        """Mark the base ``record`` was baked from as not to be used again (``dry_run``: only
        name it); returns its id."""
        raise UsageError(
            f"the {self.name} target does not build its bases, so it cannot revoke them",
            "pin another base in the definition, or revoke the image versions baked from it",
        )

    # ---- nightly ------------------------------------------------------------------------------
    @abstractmethod
    def inputs(self, spec: ImageSpec) -> Inputs:
        """The fingerprint and base key a bake of ``spec`` would have now."""

    def base_revoked(self, record: Record) -> str | None:
        """Why the base ``record`` was baked from must not be used any more, or None."""
        return None

    # ---- fleets -------------------------------------------------------------------------------
    def roll(
        self,
        spec: ImageSpec,
        channel: str,
        record: Record,
        *,
        dry_run: bool,
        wait: bool,
        say: Say,
    ) -> RollOutcome:
        return RollOutcome(True, skipped=f"the {self.name} target has no fleet to roll")

    # ---- housekeeping -------------------------------------------------------------------------
    @abstractmethod
    def prune_plan(self, spec: ImageSpec, now: dt.datetime) -> list[PruneItem]:
        """What retention removes and what it keeps, and why (nothing changes)."""

    @abstractmethod
    def prune(self, items: list[PruneItem]) -> list[str]:
        """Remove what the plan says; returns what went."""

    @abstractmethod
    def leftovers(self, specs: list[ImageSpec], older_than: dt.timedelta) -> list[Leftover]:
        """What killed or finished runs left behind (nothing changes)."""

    @abstractmethod
    def collect(self, leftovers: list[Leftover]) -> None:
        """Remove the leftovers."""


def no_runner(target: str) -> UsageError:
    return UsageError(
        f"say which address may reach the {target} build and verify machines: "
        "--runner-cidr A.B.C.D/32",
        "the runner's public address; the temporary security groups allow only it",
    )
