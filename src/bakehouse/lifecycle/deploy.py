"""The deploy-time step, on any target, as one declared sequence:

    decide → bake (verify, record, publish) → roll

A target whose base moves under it (the aws target: "built from images patched on every
deploy") always bakes; elsewhere a deploy with nothing new publishes the newest verified image
instead of baking the same thing again (``--fresh`` bakes anyway). Every step's outcome goes
into deploy.json, deploy.md and deploy.junit.xml — also when a step fails — in the report
folder given, or else under the state folder's ``reports/`` (where the report site finds it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bakehouse import reports
from bakehouse.catalogue import USABLE, Record
from bakehouse.errors import BakehouseError, UsageError
from bakehouse.lifecycle import bake as bake_step
from bakehouse.lifecycle import channels, nightly
from bakehouse.lifecycle import roll as roll_step
from bakehouse.progress import Progress
from bakehouse.project import Project
from bakehouse.runs import terminate_as_exception
from bakehouse.spec import ImageSpec
from bakehouse.targets.base import BakeRequest, Target


@dataclass
class DeployResult:
    image: str
    target: str
    channel: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    record: Record = field(default_factory=dict)
    where: list[str] = field(default_factory=list)
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def ok(self) -> bool:
        return all(s["ok"] for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "deploy",
            "at": self.at.isoformat(),
            "image": self.image,
            "target": self.target,
            "channel": self.channel,
            "steps": self.steps,
            "version": self.record.get("version"),
            "state": self.record.get("state"),
            "where": self.where,
            "verify": self.record.get("verify"),
        }


@dataclass
class Context:
    project: Project
    target: Target
    spec: ImageSpec
    fresh: bool
    progress: Progress
    result: DeployResult
    bake: bool = True


def step_decide(ctx: Context) -> str:
    if ctx.target.deploy_always_bakes:
        ctx.bake = True
        return f"bake: every deploy on the {ctx.target.name} target bakes from the current base"
    if ctx.fresh:
        ctx.bake = True
        return "bake: --fresh"
    (decision,) = nightly.decide(ctx.project, ctx.target, [ctx.spec])
    ctx.bake = decision.bake
    return f"{'bake' if decision.bake else 'skip'}: {decision.reason}"


def step_bake(ctx: Context) -> str:
    chan = ctx.result.channel
    if ctx.bake:
        request = BakeRequest(channels=(chan,))
        done = bake_step.bake(ctx.project, ctx.spec, ctx.target, request, ctx.progress)
        ctx.result.record, ctx.result.where = done.record, done.where
        return f"{done.record['id']} {done.record['state']}"
    newest = ctx.target.catalogue.latest(ctx.spec.name, USABLE)
    if newest is None:
        raise UsageError(f"no verified version of {ctx.spec.name} to publish", "deploy --fresh")
    ctx.result.record = channels.point(ctx.target, ctx.spec, newest, [chan]).record
    ctx.result.where = ctx.target.where(newest)
    return f"{newest['id']} (already baked) published to {chan}"


def step_roll(ctx: Context) -> str:
    done = roll_step.roll(
        ctx.target, ctx.spec, ctx.result.channel, dry_run=False, wait=False, say=ctx.progress.say
    )
    if done.outcome.skipped:
        return done.outcome.skipped
    if not done.ok:
        raise BakehouseError(f"the roll did not finish: {done.summary()}")
    return done.summary()


Step = Callable[[Context], str]
SEQUENCE: tuple[tuple[str, Step], ...] = (
    ("decide", step_decide),
    ("bake+verify+publish", step_bake),
    ("roll", step_roll),
)


def deploy(
    project: Project,
    target: Target,
    spec: ImageSpec,
    channel: str | None = None,
    fresh: bool = False,
    report: Path | None = None,
    progress: Progress | None = None,
) -> DeployResult:
    result = DeployResult(spec.name, target.name, channel or spec.publish.channels[0])
    channels.check_channels([result.channel])
    report = report or project.state_dir / "reports" / (
        f"deploy-{target.name}-{spec.name}-{result.at:%Y%m%dT%H%M%SZ}"
    )
    ctx = Context(project, target, spec, fresh, progress or Progress(), result)
    name = SEQUENCE[0][0]
    finished = False
    with terminate_as_exception():  # one stop handler across bake and roll
        try:
            for name, step in SEQUENCE:
                detail = step(ctx)
                result.steps.append({"step": name, "ok": True, "detail": detail})
                ctx.progress.say(f"deploy: {name}: {detail}")
            finished = True
        except BaseException as exc:
            message = exc.message if isinstance(exc, BakehouseError) else type(exc).__name__
            result.steps.append({"step": name, "ok": False, "detail": message})
            raise
        finally:
            try:
                reports.write(reports.deploy(result.to_dict()), report)
            except OSError as exc:  # never in place of the deploy's own error
                ctx.progress.say(f"deploy: the report could not be written to {report}: {exc}")
                if finished:
                    raise
    return result
