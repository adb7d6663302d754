"""Patch-aware rebuilds on any target: gather the facts for every image, decide (plan.py), bake
what needs it in parallel, write the reports.

The decision needs no VM and no Packer: the inputs fingerprint and base key come from the
target (rendering is pure; the aws target resolves the base AMI once per source), the newest
record and its package manifest from the target's catalogue (for AMIs: S3 in the account, so a
fresh CI runner decides like the machine that baked), and pending updates from comparing that
manifest with the signed package indexes (fetched once per distribution, cached by content).
A manifest that cannot be read, or does not match its recorded sha256, is "unknown": bake.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bakehouse import debindex, plan, proc, reports
from bakehouse.catalogue import Record
from bakehouse.errors import BakehouseError, CatalogueError, UsageError
from bakehouse.lifecycle.bake import indexes_for
from bakehouse.progress import Progress
from bakehouse.project import Project
from bakehouse.runs import terminate_as_exception
from bakehouse.spec import ImageSpec
from bakehouse.targets.base import BakeRequest, Say, Target


@dataclass
class Outcome:
    decision: plan.Decision
    ran: bool = False
    ok: bool = True
    seconds: float = 0.0
    result: str = ""
    log: str = ""
    run_id: str = ""  # the bake's run: its catalogue record carries the same id

    @property
    def image(self) -> str:
        return self.decision.image

    def to_dict(self) -> dict[str, Any]:
        return self.decision.to_dict() | {
            "ran": self.ran,
            "ok": self.ok,
            "seconds": round(self.seconds, 1),
            "result": self.result,
            "log": self.log,
            "run_id": self.run_id or None,
        }


@dataclass
class NightlyResult:
    target: str
    outcomes: list[Outcome]
    dry_run: bool
    reports: Path | None = None
    calls: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(o.ran and not o.ok for o in self.outcomes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "dry_run": self.dry_run,
            "images": [o.to_dict() for o in self.outcomes],
            "reports": str(self.reports) if self.reports else None,
        }


READERS = 8  # images whose records are read at once


def installed(target: Target, record: Record) -> dict[str, str] | None:
    """The newest image's packages, from the manifest kept with it — None when it is missing
    or does not match the sha256 its record names."""
    try:
        raw = target.catalogue.checked_artifact(record, "manifest")
    except CatalogueError:
        return None
    return debindex.installed_from_manifest(json.loads(raw))


def decide(
    project: Project,
    target: Target,
    specs: list[ImageSpec],
    forced: set[str] | None = None,
    now: dt.datetime | None = None,
) -> list[plan.Decision]:
    now = now or dt.datetime.now(dt.UTC)
    forced = forced or set()
    unknown = sorted(forced - {s.name for s in specs})
    if unknown:
        raise UsageError(
            f"--force names no image in this run: {', '.join(unknown)}",
            f"images: {', '.join(s.name for s in specs)}",
        )
    # the indexes once per distribution, then each image's facts; reading records and
    # manifests waits on the network (S3 for AMIs), so several images are read at once
    marks = target.index_marks()
    indexes = {id(s): indexes_for(project, s, marks) for s in specs}
    target.catalogue  # opened before the threads share it  # noqa: B018

    def facts(spec: ImageSpec) -> plan.Facts:
        ix = indexes[id(spec)]
        inputs = target.inputs(spec)
        last = target.catalogue.latest(spec.name)
        packages = installed(target, last) if last is not None else None
        return plan.Facts(
            spec.name,
            inputs.fingerprint,
            inputs.base_key,
            spec.patch.rebuild_on,
            spec.patch.max_age_days,
            last,
            tuple(debindex.pending(packages, ix)) if packages is not None else (),
            ix.offline,
            spec.name in forced,
            manifest=packages is not None,
            base_revoked=target.base_revoked(last) if last is not None else None,
        )

    def judged(spec: ImageSpec) -> plan.Decision:
        """One image whose facts cannot be read does not stop the others' decisions: it is
        baked (fail closed), and its bake says what is wrong."""
        try:
            return plan.decide(facts(spec), now)
        except UsageError:
            raise
        except BakehouseError as exc:
            return plan.Decision(spec.name, True, f"could not decide: {exc.message}")
        except (ValueError, KeyError, TypeError) as exc:  # a record that does not read right
            return plan.Decision(spec.name, True, f"could not decide: unreadable record ({exc})")

    with concurrent.futures.ThreadPoolExecutor(max_workers=READERS) as pool:
        return list(pool.map(judged, specs))


def bake_argv(image: str, target: Target, channels: list[str]) -> list[str]:
    """The bake of one image, as its own process: `bakehouse bake` with the target's flags."""
    argv = [sys.executable, "-m", "bakehouse", "bake", "--image", image, "--target", target.name]
    for channel in channels:
        argv += ["--channel", channel]
    options = target.options
    if options.profile:
        argv += ["--profile", options.profile]
    if options.runner_cidr:
        argv += ["--runner-cidr", options.runner_cidr]
    if options.wide_runner_cidr:
        argv += ["--wide-runner-cidr"]
    for region in options.regions:
        argv += ["--region", region]
    return argv


def run(
    project: Project,
    target: Target,
    decisions: list[plan.Decision],
    workers: int,
    logs: Path,
    channels: list[str],
    say: Say,
    detail: Say | None = None,
) -> list[Outcome]:
    """Bake every image that needs it, ``workers`` at a time; one failing does not stop the
    rest. Each bake is its own process, with its own log."""
    logs.mkdir(parents=True, exist_ok=True)
    outcomes = {d.image: Outcome(d) for d in decisions}
    todo = [d.image for d in decisions if d.bake]
    say(f"nightly: {len(todo)} of {len(decisions)} image(s) to bake, {workers} at a time")

    running: list[subprocess.Popen[bytes]] = []
    stopping = threading.Event()
    # each image's state as it changes: queued, its bake's current phase, its outcome
    states = {image: "queued" for image in todo}
    lock = threading.Lock()

    def state(image: str, text: str) -> None:
        with lock:  # one snapshot at a time, in the order the states changed
            states[image] = text
            if detail is not None:
                detail(" · ".join(f"{i}: {s}" for i, s in states.items()))

    def watch(image: str) -> Callable[[str], None]:
        def on_line(line: str) -> None:
            found = PHASE_LINE.match(line)
            if found:
                state(image, found.group(1)[:60])

        return on_line

    def started(child: subprocess.Popen[bytes]) -> None:
        running.append(child)
        if stopping.is_set():  # started just as nightly was stopped: stop it too
            proc.stop_groups([child], grace=0)

    def one(image: str) -> None:
        out = outcomes[image]
        if stopping.is_set():
            out.result = "not started: nightly was stopped"
            return
        log = logs / f"{image}.log"
        out.log = str(log)
        say(f"nightly: {image}: baking (log {log})")
        state(image, "baking")
        start = time.monotonic()
        try:
            code = proc.stream(
                bake_argv(image, target, channels),
                log=log,
                cwd=project.root,
                env={"BAKEHOUSE_STATE_DIR": str(project.state_dir)},
                timeout=4 * 3600,
                started=started,
                on_line=watch(image),
            )
            failure = None
        except BakehouseError as exc:  # the bake could not run, or ran out of time
            code, failure = 1, exc.message
        text = log.read_text(errors="replace") if log.is_file() else ""
        result = (failure or (text.strip().splitlines()[-1:] or [""])[0])[:200]
        # the run this bake was (a log kept from an earlier night holds older runs first)
        runs_seen = RUN_LINE.findall(text)
        out.run_id = runs_seen[-1] if runs_seen else ""
        out.ran, out.ok, out.seconds = True, code == 0, time.monotonic() - start
        out.result = result
        outcome = "ok" if out.ok else "FAILED"
        state(image, outcome)
        say(f"nightly: {image}: {outcome} in {out.seconds:.0f}s — {out.result}")

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        futures = [pool.submit(one, image) for image in todo]
        # the first one that fails unexpectedly stops the rest now, not when those before it end
        done, _ = concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        for future in done:
            future.result()
    except BaseException:
        # Ctrl-C or SIGTERM: the bakes run in their own sessions, so stop them here — each is
        # asked to clean up (its VM, its instances) and given the time to — then report
        stopping.set()
        with contextlib.suppress(OSError):  # saying so must never keep them from stopping
            say(f"nightly: stopping {sum(p.poll() is None for p in running)} running bake(s)")
        proc.stop_groups(list(running), grace=STOP_GRACE)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [outcomes[d.image] for d in decisions]


# a bake's own progress line: "[  12.3s] packer: provision:harden.sh" -> the part after the time
PHASE_LINE = re.compile(r"^\[\s*[\d.]+s\] (\S+: .*?)\s*$")
# its first line names its run: "bake: web on the local target (run 20261130T072210Z-df4169)"
RUN_LINE = re.compile(r"\] bake: \S+ on the \S+ target \(run ([0-9TZ]+-[0-9a-f]+)\)", re.M)
STOP_GRACE = 120.0  # seconds a stopped bake gets to remove what it started


def default_workers() -> int:
    """Each local bake runs a 2-vCPU VM: one bake per two cores."""
    return max(1, (os.cpu_count() or 2) // 2)


def nightly(
    project: Project,
    target: Target,
    specs: list[ImageSpec],
    *,
    forced: set[str] | None = None,
    dry_run: bool = False,
    workers: int = 0,
    channels: list[str] | None = None,
    report: Path | None = None,
    progress: Progress | None = None,
) -> NightlyResult:
    progress = progress or Progress()
    now = dt.datetime.now(dt.UTC)
    with progress.phase("decide", f"{len(specs)} image(s) on the {target.name} target"):
        decisions = decide(project, target, specs, forced, now)
    if dry_run:
        return NightlyResult(target.name, [Outcome(d) for d in decisions], True)
    for spec in specs:  # refuse missing flags before the first bake starts, not in its log
        target.check(spec, BakeRequest())
    folder = report or project.state_dir / "reports" / f"nightly-{target.name}-{now:%Y%m%dT%H%M%SZ}"
    with terminate_as_exception(), progress.phase("nightly", f"logs in {folder / 'logs'}"):
        outcomes = run(
            project,
            target,
            decisions,
            workers or default_workers(),
            folder / "logs",
            list(channels or ["latest"]),
            progress.say,
            progress.detail,
        )
    reports.write(reports.nightly([o.to_dict() for o in outcomes], target.name, now), folder)
    return NightlyResult(target.name, outcomes, False, folder)


# ---- nightly on a CI engine: plan → one bake job per image → gather ---------------------------


@dataclass
class NightlyPlan:
    """What nightly would bake, shaped for a CI matrix: ``matrix`` is GitHub Actions'
    ``strategy.matrix`` as it is (one ``include`` entry per image to bake), ``count`` says
    whether there is anything to fan out."""

    target: str
    decisions: list[plan.Decision]
    at: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        bake = [d for d in self.decisions if d.bake]
        return {
            "kind": "nightly-plan",
            "target": self.target,
            "at": self.at.isoformat(),
            "count": len(bake),
            "matrix": {
                "include": [
                    {"image": d.image, "reason": d.reason, "security": d.security} for d in bake
                ]
            },
            "decisions": [d.to_dict() for d in self.decisions],
        }


PLAN_FILE = "plan.json"
RESULT_FILE = "bake-{image}.json"  # what each bake job leaves: `bake --json`, result or error
GITLAB_FILE = "bakes.gitlab-ci.yml"  # the child pipeline of a GitLab nightly


def plan_bakes(
    project: Project,
    target: Target,
    specs: list[ImageSpec],
    forced: set[str] | None = None,
    folder: Path | None = None,
) -> NightlyPlan:
    """The decisions alone (no bake), for a pipeline that bakes each image in its own job.
    ``folder``: also write the plan there (``plan.json``, what ``--gather`` reads) and GitLab's
    child pipeline (``bakes.gitlab-ci.yml``: a parallel:matrix bake job, then the gathering)."""
    now = dt.datetime.now(dt.UTC)
    planned = NightlyPlan(target.name, decide(project, target, specs, forced, now), now)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / PLAN_FILE).write_text(json.dumps(planned.to_dict(), indent=2) + "\n")
        (folder / GITLAB_FILE).write_text(gitlab_child(planned, folder.name))
    return planned


def gitlab_child(planned: NightlyPlan, folder: str) -> str:
    """The child pipeline a GitLab nightly triggers with the plan: one bake job per planned
    image (``parallel:matrix``), then one job that gathers their results (also after failed
    bakes) with the plan from the parent pipeline's job ``nightly``."""
    import yaml

    role = [
        'export AWS_ROLE_ARN="$BAKEHOUSE_DEPLOY_ROLE_ARN" '
        'AWS_ROLE_SESSION_NAME="bakehouse-$CI_JOB_ID"',
        'export AWS_WEB_IDENTITY_TOKEN_FILE="$(mktemp)"',
        'printf \'%s\' "$AWS_ID_TOKEN" > "$AWS_WEB_IDENTITY_TOKEN_FILE"',
    ]
    aws = {
        "environment": {"name": "bakehouse-aws"},
        "id_tokens": {"AWS_ID_TOKEN": {"aud": "sts.amazonaws.com"}},
    }
    images = [d.image for d in planned.decisions if d.bake]
    doc: dict[str, Any] = {
        "stages": ["bake", "gather"],
        "default": {
            "image": "debian:12",
            "before_script": [
                "apt-get update -qq && apt-get install -y -qq --no-install-recommends git "
                "ca-certificates curl",
                "env -u AWS_ID_TOKEN ./run invoke --list",
            ],
        },
    }
    needs: list[dict[str, Any]] = [
        {"pipeline": "$PARENT_PIPELINE_ID", "job": "nightly", "artifacts": True}
    ]
    if images:
        doc["bake"] = {
            "stage": "bake",
            **aws,
            "parallel": {"matrix": [{"IMAGE": images}]},
            "resource_group": "bakehouse-bake-$IMAGE",
            "timeout": "4h",
            "script": [
                *role,
                f"mkdir -p {folder}",
                'runner_cidr="$(curl -fsS https://checkip.amazonaws.com)/32"',
                './run invoke bake --image "$IMAGE" --target aws --runner-cidr "$runner_cidr" '
                f'--channel latest --json > "{folder}/bake-$IMAGE.json"',
            ],
            "artifacts": {"when": "always", "expire_in": "30 days", "paths": [f"{folder}/"]},
        }
        needs.append({"job": "bake", "artifacts": True})
    doc["gather"] = {
        "stage": "gather",
        **aws,
        "when": "always",
        "needs": needs,
        "timeout": "1h",
        "script": [
            *role,
            "status=0",
            f"./run invoke nightly --gather {folder} --target aws --report reports || status=$?",
            "mkdir -p reports && ./run invoke report --target aws --runs reports --out site "
            "|| true",
            'exit "$status"',
        ],
        "artifacts": {
            "when": "always",
            "expire_in": "30 days",
            "expose_as": "report site",
            "paths": ["site/", "reports/"],
            "reports": {"junit": "reports/nightly.junit.xml"},
        },
    }
    head = (
        f"# Written by `bakehouse nightly --plan` ({planned.at:%Y-%m-%d %H:%M} UTC): "
        f"{len(images)} image(s) to bake on {planned.target}.\n"
    )
    return head + yaml.safe_dump(doc, sort_keys=False, width=200)


def gather(folder: Path, target: Target, report: Path | None = None) -> NightlyResult:
    """One nightly result from a fanned-out run: the plan (``plan.json``) and each bake job's
    ``bake --json`` output (``bake-<image>.json``) in ``folder``. A planned bake that left no
    result, or an unreadable one, failed: a job that died is never counted as a success."""
    path = folder / PLAN_FILE
    try:
        data = json.loads(path.read_text())
        if data.get("kind") != "nightly-plan":
            raise ValueError("not a plan written by `nightly --plan --json`")
        decisions = [plan.Decision(**{**d, "notes": tuple(d["notes"])}) for d in data["decisions"]]
        at = dt.datetime.fromisoformat(str(data["at"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"--gather {folder}: cannot read {path.name}: {exc}",
            "the plan job's artifact (nightly --plan --json > plan.json) goes in that folder",
        ) from None
    outcomes = []
    for d in decisions:
        out = Outcome(d)
        if d.bake:
            out.ran, out.ok, out.result = True, False, "no result: the bake job did not finish"
            result = folder / RESULT_FILE.format(image=d.image)
            if result.is_file():
                out.log = str(result)
                try:
                    done = json.loads(result.read_text() or "null")
                    if isinstance(done, dict) and "error" in done:
                        out.result = f"{d.image}: {done['error']}"[:200]
                    elif isinstance(done, dict) and done.get("image") == d.image:
                        out.ok = done.get("state") in ("verified", "published")
                        out.result = f"{done.get('id')}: {done.get('state')}"[:200]
                        out.run_id = str(done.get("run_id") or "")
                    else:
                        out.result = f"{result.name} is not a bake result of {d.image}"
                except ValueError as exc:
                    out.result = f"{result.name} is unreadable: {exc}"[:200]
        outcomes.append(out)
    folder_out = report or folder
    reports.write(reports.nightly([o.to_dict() for o in outcomes], target.name, at), folder_out)
    return NightlyResult(target.name, outcomes, False, folder_out)
