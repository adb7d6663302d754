"""The invoke task collection: ``invoke --list`` at the project root, or the ``bakehouse`` command.

Tasks are thin: parse flags, call one function in :mod:`bakehouse.app` (or a stage), print.
Heavy modules (jinja2, yaml, boto3) are imported inside the tasks so that listing stays fast.
Errors are reported once, here at the edge: a message and a hint, no traceback unless
``--debug`` (or INVOKE_DEBUG=1) is given.
"""

from __future__ import annotations

import contextlib
import functools
import json as _json
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from invoke.collection import Collection
from invoke.exceptions import Exit
from invoke.tasks import task

from bakehouse.errors import EXIT_INTERRUPTED, BakehouseError

if TYPE_CHECKING:
    from bakehouse.project import Project

F = TypeVar("F", bound=Callable[..., Any])


def _debugging() -> bool:
    return os.environ.get("INVOKE_DEBUG") == "1" or logging.getLogger("invoke").isEnabledFor(
        logging.DEBUG
    )


def reported(fn: F) -> F:
    """Turn project errors into one message with a hint and the right exit status."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BakehouseError as exc:
            if _debugging():
                raise
            raise Exit(exc.render(), code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=EXIT_INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


def _project() -> Project:
    from bakehouse.project import find_project

    return find_project()


def _emit_json(data: Any) -> None:
    sys.stdout.write(_json.dumps(data, indent=2, sort_keys=False) + "\n")


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    return "\n".join(lines)


# ---- images.* ------------------------------------------------------------------------------------


@task(name="list", positional=[], help={"json": "print JSON for pipelines"})
@reported
def images_list(c: Any, json: bool = False) -> None:
    """List the image definitions in images/ and each one's newest bake in the catalogue."""
    from bakehouse import app
    from bakehouse.catalogue import Catalogue

    project = _project()
    rows = app.list_images(project)
    catalogue = Catalogue(project.state_dir / "catalogue")
    for row in rows:
        latest = catalogue.latest(row["name"])
        row["latest"] = (
            {
                "version": latest["version"],
                "state": latest["state"],
                "channels": latest.get("channels", []),
            }
            if latest
            else None
        )
    if json:
        _emit_json(rows)
        return
    table = []
    for r in rows:
        chain = " ← ".join(f.split("/")[-1].removesuffix(".yaml") for f in reversed(r["files"]))
        newest = f"{r['latest']['version']} {r['latest']['state']}" if r["latest"] else "-"
        table.append([r["name"], chain, newest, ",".join(r["channels"]), r["description"]])
    print(_table(table, ["IMAGE", "DEFINED BY", "LATEST BAKE", "CHANNELS", "DESCRIPTION"]))


@task(
    positional=[],
    name="show",
    help={"image": "image name (file stem in images/)", "json": "print JSON instead of YAML"},
)
@reported
def images_show(c: Any, image: str, json: bool = False) -> None:
    """Show an image's fully resolved definition: defaults and extends merged, validated."""
    from bakehouse import app

    spec = app.show_image(_project(), image)
    data = spec.to_dict()
    if json:
        _emit_json(data)
        return
    import yaml

    sys.stdout.write(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


# ---- render / validate ---------------------------------------------------------------------------

_SELECT_HELP = {
    "image": "one image (default: every image in images/)",
    "target": "local or aws (default: both)",
    "json": "print JSON for pipelines",
}


@task(positional=[], help=_SELECT_HELP)
@reported
def render(c: Any, image: str | None = None, target: str | None = None, json: bool = False) -> None:
    """Render Packer templates (HCL2) for image × target into build/<image>/<target>.pkr.hcl."""
    from bakehouse import app

    project = _project()
    results = app.render_images(project, image, target)
    if json:
        _emit_json([r.to_dict(project.root) for r in results])
        return
    for r in results:
        state = "written" if r.changed else "unchanged"
        print(f"{r.image}/{r.target}: {r.path.relative_to(project.root)} ({state})")


@task(
    positional=[],
    help={
        **_SELECT_HELP,
        "packer": "also run `packer validate` and `packer fmt -check` "
        "(default; --no-packer checks the definitions only)",
    },
)
@reported
def validate(
    c: Any,
    image: str | None = None,
    target: str | None = None,
    packer: bool = True,
    json: bool = False,
) -> None:
    """Validate image definitions and the Packer templates rendered from them."""
    from bakehouse import app
    from bakehouse.errors import EXIT_FAILED, EXIT_USAGE

    project = _project()
    results = app.validate_images(project, image, target, with_packer=packer)
    if json:
        _emit_json(
            [
                {
                    "image": v.image,
                    "ok": v.ok,
                    "error": v.error.message if v.error else None,
                    "hint": v.error.hint if v.error else None,
                    "rendered": [r.to_dict(project.root) for r in v.rendered],
                }
                for v in results
            ]
        )
    else:
        for v in results:
            if v.error is not None:
                print(f"FAIL {v.image}: {v.error.render()}", file=sys.stderr)
                continue
            for r in v.rendered:
                if r.problems:
                    print(
                        f"FAIL {v.image}/{r.target}:\n  " + "\n  ".join(r.problems), file=sys.stderr
                    )
                else:
                    checked = "schema, packer validate, packer fmt" if packer else "schema"
                    print(f"ok   {v.image}/{r.target} ({checked})")
    if any(v.error for v in results):
        raise Exit(code=EXIT_USAGE)
    if not all(v.ok for v in results):
        raise Exit(code=EXIT_FAILED)


@task(
    positional=[],
    help={
        "image": "image to bake (file stem in images/)",
        "target": "local (default: qemu on this machine) or aws (amazon-ebs)",
        "channel": "publish to this channel instead of the definition's publish.channels "
        "(repeatable)",
        "no_publish": "bake and verify, but do not move any channel",
        "rebuild_base": "local: build the base image again even if the cached one is intact",
        "keep_run": "local: keep the run's working folder (keys, logs, Packer output)",
        "profile": "aws: the AWS profile (default: the standard credential chain)",
        "runner_cidr": "aws: the address allowed to reach the build instance (and the verify "
        "instance, unless targets.aws.verify_via is ssm) over SSH, e.g. 203.0.113.7/32",
        "no_verify": "aws: bake only; the AMI stays 'baked' and cannot be published",
        "region": "aws: bake in (and copy to) these regions instead of the definition's "
        "targets.aws.regions (repeatable; the first one builds)",
    },
    iterable=["channel", "region"],
)
@reported
def bake(
    c: Any,
    image: str,
    target: str = "local",
    channel: list[str] | None = None,
    no_publish: bool = False,
    rebuild_base: bool = False,
    keep_run: bool = False,
    profile: str | None = None,
    runner_cidr: str | None = None,
    no_verify: bool = False,
    region: list[str] | None = None,
) -> None:
    """Bake a patched, hardened image, boot it, prove it with tests/hardening, publish it.

    local: base (cached) → accelerator probe → package indexes → host patch → packer build →
    SBOM → verify → catalogue record → publish. aws: owner-pinned base AMI → packer build
    (encrypted, gp3, tagged) → IMDSv2 + deprecation → verify on a fresh instance (SSH or SSM)
    → publish. Ctrl-C stops everything and leaves nothing behind."""
    from bakehouse import app
    from bakehouse.errors import UsageError

    project = _project()
    spec = app.show_image(project, image)
    channels = list(channel or spec.publish.channels)
    if region:
        spec = app.with_regions(spec, region)
    if target == "aws":
        from bakehouse.aws.publish import publish as aws_publish
        from bakehouse.aws.session import Aws
        from bakehouse.targets import aws as aws_target

        record = aws_target.bake(
            project,
            spec,
            aws_target.AwsBakeOptions(
                profile=profile, runner_cidr=runner_cidr, verify=not no_verify
            ),
        )
        if record["state"] == "failed":
            from bakehouse.targets.local import VerifyFailed

            raise VerifyFailed(
                f"{record['id']} failed verification: "
                + ", ".join(record["verify"]["failed"][:15]),
                "not published",
            )
        if record["state"] == "verified" and not no_publish:
            aws_publish(
                Aws(profile=profile),
                spec.name,
                record["version"],
                aws_target.amis_of(record),
                channels,
                spec.targets.aws.share,
            )
            record["channels"] = channels
        print(
            f"{record['id']}: {record['state']} "
            + " ".join(f"{a['region']}:{a['ami_id']}" for a in record["amis"])
        )
        return
    if target != "local":
        raise UsageError(f"unknown target {target!r}", "targets: local, aws")
    from bakehouse.targets import local

    options = local.BakeOptions(
        publish=not no_publish,
        channels=tuple(channel or ()) or None,
        rebuild_base=rebuild_base,
        keep_run=keep_run,
    )
    record = local.bake(project, spec, options)
    print(
        f"{record['id']}: {record['state']}"
        + (f", channels {', '.join(record['channels'])}" if record.get("channels") else "")
    )


@task(
    positional=[],
    help={
        "image": "image whose AMIs to prune",
        "yes": "deregister what the plan says (default: only print the plan)",
        "profile": "AWS profile",
        "json": "print the plan as JSON",
        "region": "only these regions (repeatable; default: the definition's regions)",
    },
    iterable=["region"],
)
@reported
def prune(
    c: Any,
    image: str,
    yes: bool = False,
    profile: str | None = None,
    json: bool = False,
    region: list[str] | None = None,
) -> None:
    """Deregister old AMIs by retention; never one in use. Dry-run unless --yes.

    Keeps the N newest verified AMIs and every AMI younger than the minimum age or in use by a
    launch template, auto-scaling group, instance or SSM channel, in every configured region;
    prints what would go and why each survivor stays."""
    import datetime as dt

    from bakehouse import app
    from bakehouse.aws import prune as aws_prune
    from bakehouse.aws.session import Aws

    spec = app.show_image(_project(), image)
    aws = Aws(profile=profile)
    amis, usage = aws_prune.gather(aws, spec.name, list(region or spec.targets.aws.regions))
    decisions = aws_prune.plan(
        amis, usage, spec.retention.keep, spec.retention.min_age_days, dt.datetime.now(dt.UTC)
    )
    rows = [
        [
            d.ami.region,
            d.ami.ami_id,
            d.ami.state,
            d.ami.created.date().isoformat(),
            d.action,
            d.reason,
        ]
        for d in decisions
    ]
    if json:
        _emit_json(
            [
                dict(zip(["region", "ami", "state", "created", "action", "reason"], r, strict=True))
                for r in rows
            ]
        )
    else:
        print(
            _table(rows, ["REGION", "AMI", "STATE", "CREATED", "ACTION", "WHY"])
            if rows
            else f"no AMIs of {image}"
        )
    if yes:
        done = aws_prune.execute(aws, decisions)
        if not json:
            print(f"pruned {len(done)} AMI(s) and their bakehouse snapshots")
    elif any(d.action == "delete" for d in decisions) and not json:
        print("dry run: nothing deregistered; run again with --yes")


@task(
    positional=[],
    help={
        "image": "image whose base to build (default: web)",
        "rebuild": "build again even if the cached base is intact",
    },
)
@reported
def base(c: Any, image: str = "web", rebuild: bool = False) -> None:
    """Build (or check) the local base image: mmdebstrap → qcow2, cached by content key."""
    from bakehouse import app
    from bakehouse.catalogue import Catalogue
    from bakehouse.progress import Progress
    from bakehouse.runs import run_dir, terminate_as_exception
    from bakehouse.stages import base as base_stage

    project = _project()
    spec = app.show_image(project, image)
    catalogue = Catalogue(project.state_dir / "catalogue")
    with terminate_as_exception(), run_dir(project.state_dir, f"base-{image}", "base") as run:
        result = base_stage.ensure(
            spec.base.local, project.packer_dir, catalogue, run, Progress(), rebuild=rebuild
        )
    print(
        f"{result.record['id']}: {result.record['packages']} packages, kernel "
        f"{result.record['kernel']}, {result.dir}"
    )


@task(
    positional=[],
    help={
        "yes": "remove what was found (default: only list it)",
        "json": "print JSON",
        "target": "local (processes and folders) or aws (tagged resources)",
        "region": "aws: regions to search (repeatable; default: every image's regions)",
        "older_than": "aws: hours after which a run that is not running here is over",
        "profile": "aws: the AWS profile",
    },
    iterable=["region"],
)
@reported
def gc(
    c: Any,
    yes: bool = False,
    json: bool = False,
    target: str = "local",
    region: list[str] | None = None,
    older_than: int = 6,
    profile: str | None = None,
) -> None:
    """Find what killed runs left behind; --yes removes it.

    local: VMs, Packer and working folders of runs whose process is gone. aws: instances, key
    pairs, security groups, volumes, snapshots and unverified AMIs tagged with a finished run."""
    from bakehouse.stages import gc as gc_stage

    project = _project()
    if target == "aws":
        import datetime as dt

        from bakehouse import app
        from bakehouse.aws import gc as aws_gc
        from bakehouse.aws.session import Aws

        regions = list(
            region
            or sorted({r for s in app.catalog(project).load_all() for r in s.targets.aws.regions})
        )
        active = {f.name for f in (project.state_dir / "runs").glob("*")} - {
            x.run_id for x in gc_stage.find(project.state_dir)
        }
        aws = Aws(profile=profile)
        left = aws_gc.find(aws, regions, active, dt.timedelta(hours=older_than))
        if json:
            _emit_json([x.__dict__ | {"removed": yes} for x in left])
        else:
            print(
                _table(
                    [[x.region, x.kind, x.id, x.run_id, x.detail] for x in left],
                    ["REGION", "KIND", "ID", "RUN", "DETAIL"],
                )
                if left
                else "nothing to collect"
            )
        if yes:
            aws_gc.remove(aws, left)
        elif left and not json:
            print("dry run: nothing removed; run `invoke gc --target aws --yes` to remove")
        return
    found = gc_stage.find(project.state_dir)
    if json:
        _emit_json(
            [
                {
                    "run_id": f.run_id,
                    "folder": str(f.folder),
                    "owner_pid": f.owner_pid,
                    "processes": [{"pid": p, "cmd": cmd[:200]} for p, cmd in f.processes],
                    "bytes": f.size,
                    "removed": yes,
                }
                for f in found
            ]
        )
    elif not found:
        print("nothing to collect")
    else:
        print(
            _table(
                [
                    [f.run_id, str(f.owner_pid), str(len(f.processes)), f"{f.size / 2**20:.0f} MiB"]
                    for f in found
                ],
                ["RUN", "OWNER PID (gone)", "PROCESSES", "SIZE"],
            )
        )
    if yes:
        for f in found:
            gc_stage.remove(f)
        if not json:
            print(f"removed {len(found)} run(s)")
    elif found and not json:
        print("dry run: nothing removed; run `invoke gc --yes` to remove")


@task(name="history", positional=[], help={"image": "image name", "json": "print JSON"})
@reported
def images_history(c: Any, image: str, json: bool = False) -> None:
    """Every baked version of an image (state, base, verify) and its channel history."""
    from bakehouse.catalogue import Catalogue

    project = _project()
    catalogue = Catalogue(project.state_dir / "catalogue")
    records = catalogue.images(image)
    channels = catalogue.channels().get(image, {})
    if json:
        _emit_json({"images": records, "channels": channels, "rolls": catalogue.rolls(image)})
        return
    if not records:
        print(f"no baked versions of {image} yet (bake one with `invoke bake --image {image}`)")
        return
    print(
        _table(
            [
                [
                    r["version"],
                    r["state"],
                    r.get("base", {}).get("id", ""),
                    f"{r['verify']['summary'].get('passed', 0)}/"
                    f"{r['verify']['summary'].get('failed', 0)}/"
                    f"{r['verify']['summary'].get('waived', 0)}",
                    ",".join(r.get("channels", [])),
                    r["created"],
                ]
                for r in records
            ],
            ["VERSION", "STATE", "BASE", "PASS/FAIL/WAIVED", "CHANNELS", "CREATED"],
        )
    )
    for r in catalogue.rolls(image):
        print(f"\nroll {r['at']} by {r['by']}: channel {r['channel']}: {r.get('outcome')}")
        for g in r.get("groups", []):
            print(
                f"  {g['region']}/{g['group']}: v{g['before']} -> "
                f"{'v' + str(g['after']) if g.get('after') else '-'}  {g.get('outcome')}"
            )
    for name, entry in sorted(channels.items()):
        print(f"\nchannel {name}: now {entry['current']}")
        for h in entry["history"]:
            print(f"  {h['at']}  {h.get('previous') or '-'} → {h['version']}  by {h['by']}")


@task(
    positional=[],
    help={
        "image": "image name",
        "version": "version to publish (default: newest verified)",
        "channel": "channel to point at it (repeatable)",
    },
    iterable=["channel"],
)
@reported
def publish(c: Any, image: str, channel: list[str], version: str | None = None) -> None:
    """Point channels at a verified image (e.g. promote latest to stable)."""
    import getpass

    from bakehouse.catalogue import Catalogue
    from bakehouse.errors import UsageError

    if not channel:
        raise UsageError("say which channel(s): --channel stable", "repeat --channel for more")
    project = _project()
    catalogue = Catalogue(project.state_dir / "catalogue")
    if version is None:
        newest = [r for r in catalogue.images(image) if r["state"] in ("verified", "published")]
        if not newest:
            raise UsageError(
                f"no verified version of {image} to publish",
                f"bake one: invoke bake --image {image}",
            )
        version = str(newest[-1]["version"])
    record = catalogue.point(image, version, list(channel), by=getpass.getuser())
    print(f"{record['id']}: channels {', '.join(record['channels'])}")


@task(
    positional=[],
    help={
        "image": "image whose newest bake (or --version) to verify",
        "version": "a version from `invoke images.history` (default: the newest)",
        "base": "verify the image's base instead: the unhardened starting point",
        "json": "print per-control results as JSON",
    },
)
@reported
def verify(
    c: Any, image: str, version: str | None = None, base: bool = False, json: bool = False
) -> None:
    """Boot a baked image (or its base) without changing it and run tests/hardening against it.

    Exits 1 and names the failing controls when any control fails. Nothing is published or
    recorded: use it to re-check an image, or to see what an unhardened base gets wrong."""
    from bakehouse import app
    from bakehouse.errors import EXIT_FAILED
    from bakehouse.targets import local

    project = _project()
    spec = app.show_image(project, image)
    result = local.verify_only(project, spec, version, base)
    if json:
        _emit_json({"ok": result.ok, "summary": result.summary, "controls": result.controls})
    else:
        s = result.summary
        print(
            f"{'passed' if result.ok else 'FAILED'}: {s['passed']} passed, {s['failed']} failed, "
            f"{s['waived']} waived, {s['skipped']} not applicable"
        )
        for cid in result.failed_ids():
            print(f"  failed: {cid}")
    if not result.ok:
        raise Exit(code=EXIT_FAILED)


@task(
    positional=[],
    help={
        "image": "only these images (repeatable; default: every image)",
        "force": "bake these images whatever the decision (repeatable)",
        "dry_run": "decide and print, bake nothing",
        "workers": "bakes at a time (default: one per two cores)",
        "channel": "channel the nightly bakes publish to (repeatable; default: latest)",
        "report": "folder for nightly.json, nightly.md and nightly.junit.xml",
        "json": "print the decisions (and outcomes) as JSON",
    },
    iterable=["image", "force", "channel"],
)
@reported
def nightly(
    c: Any,
    image: list[str] | None = None,
    force: list[str] | None = None,
    dry_run: bool = False,
    workers: int = 0,
    channel: list[str] | None = None,
    report: str | None = None,
    json: bool = False,
) -> None:
    """Rebake exactly the images that need it (new patches, changed inputs), in parallel.

    For every image: up to date / inputs changed / N pending updates (M security) / base image
    changed / last bake failed / too old / forced. Bakes run in parallel (one per two cores); a
    failure does not stop the others; exits 1 if any failed, with a summary table and reports."""
    import datetime as dt
    from pathlib import Path

    from bakehouse import app, plan
    from bakehouse import nightly as nl
    from bakehouse.errors import EXIT_FAILED

    project = _project()
    names = image or app.select(project, None)
    specs = [app.show_image(project, n) for n in names]
    now = dt.datetime.now(dt.UTC)
    decisions = [plan.decide(f, now) for f in nl.gather(project, specs, set(force or []))]
    if not json:
        print(
            _table(
                [
                    [
                        d.image,
                        "bake" if d.bake else "skip",
                        d.reason,
                        str(d.pending),
                        str(d.security),
                    ]
                    for d in decisions
                ],
                ["IMAGE", "DECISION", "REASON", "PENDING", "SECURITY"],
            )
        )
        for note in sorted({n for d in decisions for n in d.notes}):
            print(f"note: {note}")
    if dry_run:
        if json:
            _emit_json([d.to_dict() for d in decisions])
        return
    folder = (
        Path(report) if report else project.state_dir / "reports" / f"nightly-{now:%Y%m%dT%H%M%SZ}"
    )
    outcomes = nl.run(
        project,
        decisions,
        workers or nl.default_workers(),
        folder / "logs",
        list(channel or ["latest"]),
        say=lambda m: print(m, file=sys.stderr),
    )
    nl.write_reports(outcomes, folder, now)
    if json:
        _emit_json([o.decision.to_dict() | {"ran": o.ran, "ok": o.ok} for o in outcomes])
    else:
        print(
            _table(
                [
                    [
                        o.image,
                        o.decision.reason,
                        ("ok" if o.ok else "FAILED") if o.ran else "skipped",
                        f"{o.seconds:.0f}s",
                    ]
                    for o in outcomes
                ],
                ["IMAGE", "REASON", "RESULT", "TIME"],
            )
        )
        print(f"reports: {folder}")
    if any(o.ran and not o.ok for o in outcomes):
        raise Exit(code=EXIT_FAILED)


@task(
    positional=[],
    help={
        "image": "the image whose auto-scaling groups to roll (roll.selector)",
        "channel": "the channel whose AMI to roll onto (default: the definition's first)",
        "dry_run": "print the plan (groups, versions, AMIs, preferences, waves, rollback)",
        "wait": "wait for a refresh already running instead of refusing",
        "profile": "the AWS profile",
        "json": "print the plan or the outcome as JSON",
        "region": "only these regions (repeatable; default: the definition's regions)",
    },
    iterable=["region"],
)
@reported
def roll(
    c: Any,
    image: str,
    channel: str | None = None,
    dry_run: bool = False,
    wait: bool = False,
    profile: str | None = None,
    json: bool = False,
    region: list[str] | None = None,
) -> None:
    """Move the image's auto-scaling groups onto a published image; roll back on failure.

    A new launch template version (the full current data, only ImageId changed, IMDSv2 kept),
    an instance refresh pinned to that version number with the definition's preferences, a
    canary group first, a watch with backoff and deadline, and a rollback on failure, timeout
    or Ctrl-C. Refuses a group with a refresh already running (unless --wait)."""
    import datetime as dt
    import getpass

    from bakehouse import app
    from bakehouse.aws import roll as rl
    from bakehouse.aws.session import Aws, AwsError
    from bakehouse.catalogue import Catalogue
    from bakehouse.errors import EXIT_FAILED, UsageError

    project = _project()
    spec = app.show_image(project, image)
    chan = channel or spec.publish.channels[0]
    aws = Aws(profile=profile)
    regions = list(region or spec.targets.aws.regions)
    images = rl.channel_images(aws, spec.name, chan, regions)
    groups = rl.gather(aws, dict(spec.roll.selector), regions)
    if not groups:
        raise UsageError(
            f"no auto-scaling group is tagged {dict(spec.roll.selector)} in {', '.join(regions)}",
            "check roll.selector and the regions",
        )
    plans = rl.plan(groups, images, spec.roll)
    if dry_run:
        if json:
            _emit_json([p.to_dict() for p in plans])
            return
        print(
            _table(
                [
                    [
                        str(p.wave),
                        p.group.region,
                        p.group.name,
                        f"{p.group.template_name} v{p.group.version} ({p.group.version_spec})",
                        ",".join(p.group.current_amis) or "-",
                        str(len(p.group.instance_amis)),
                        f"v{p.new_version} {p.image}",
                        f"v{p.group.version}",
                    ]
                    for p in plans
                ],
                [
                    "WAVE",
                    "REGION",
                    "GROUP",
                    "LAUNCH TEMPLATE",
                    "RUNNING AMIS",
                    "INSTANCES",
                    "NEW",
                    "ROLLBACK TO",
                ],
            )
        )
        for wave in sorted({p.wave for p in plans}):
            prefs = next(p.preferences for p in plans if p.wave == wave)
            print(f"wave {wave} preferences: {_json.dumps(prefs, sort_keys=True)}")
        print("dry run: nothing changed")
        return
    busy = rl.busy_groups(plans)
    if busy and not wait:
        raise UsageError(
            "a refresh is already running on " + ", ".join(f"{g.region}/{g.name}" for g in busy),
            "wait for it, or pass --wait",
        )
    for g in busy:
        rl.watch(
            aws,
            g,
            str(g.active_refresh),
            True,
            spec.roll.timeout,
            say=lambda m: print(m, file=sys.stderr),
        )
    record: dict[str, Any] = {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "by": getpass.getuser(),
        "image": spec.name,
        "channel": chan,
        "images": images,
        "groups": [],
    }
    catalogue = Catalogue(project.state_dir / "catalogue")
    try:
        record["groups"] = rl.execute(
            aws, plans, spec.roll, spec.name, chan, say=lambda m: print(m, file=sys.stderr)
        )
    except KeyboardInterrupt:
        record["outcome"] = "interrupted"
        catalogue.add_roll(spec.name, record)
        raise
    except AwsError as exc:
        record["outcome"] = f"error: {exc.message}"
        catalogue.add_roll(spec.name, record)
        raise
    ok = all(g.get("outcome") == "updated" for g in record["groups"])
    record["outcome"] = "success" if ok else "failed"
    catalogue.add_roll(spec.name, record)
    if json:
        _emit_json(record)
    else:
        print(
            _table(
                [
                    [
                        g["region"],
                        g["group"],
                        f"v{g['before']}",
                        f"v{g['after']}" if g.get("after") else "-",
                        g["outcome"],
                    ]
                    for g in record["groups"]
                ],
                ["REGION", "GROUP", "BEFORE", "AFTER", "OUTCOME"],
            )
        )
    if not ok:
        raise Exit(code=EXIT_FAILED)


@task(
    positional=[],
    help={
        "image": "the image to deploy",
        "fresh": "local: bake a new image even if the newest one is up to date",
        "channel": "channel to publish to and roll from (default: the definition's first)",
        "target": "local (default) or aws",
        "runner_cidr": "aws: the address allowed to reach build and verify instances",
        "profile": "aws: the AWS profile",
        "report": "folder for deploy.json, deploy.md and deploy.junit.xml",
    },
)
@reported
def deploy(
    c: Any,
    image: str,
    fresh: bool = False,
    channel: str | None = None,
    target: str = "local",
    runner_cidr: str | None = None,
    profile: str | None = None,
    report: str | None = None,
) -> None:
    """The deploy-time step: bake if needed, verify, publish, roll — one declared sequence.

    local: decide (an image with nothing new is not baked again unless --fresh) -> bake and
    verify -> publish. aws: every deploy bakes from the freshly patched base AMI -> verify on a
    fresh instance -> publish -> roll the image's auto-scaling groups onto it."""
    import datetime as dt
    import getpass

    from bakehouse import app, plan
    from bakehouse import nightly as nl
    from bakehouse.catalogue import Catalogue
    from bakehouse.errors import EXIT_FAILED

    project = _project()
    spec = app.show_image(project, image)
    chan = channel or spec.publish.channels[0]
    steps: list[dict[str, Any]] = []
    record: dict[str, Any] = {}
    failed = False
    try:
        if target == "aws":
            bake(
                c,
                image=image,
                target="aws",
                channel=[chan],
                profile=profile,
                runner_cidr=runner_cidr,
            )
            steps.append({"step": "bake+verify+publish", "ok": True})
            roll(c, image=image, channel=chan, profile=profile)
            steps.append({"step": "roll", "ok": True})
            latest = Catalogue(project.state_dir / "catalogue").latest(image)
            record = latest or {}
        else:
            from bakehouse.targets import local

            (decision,) = [
                plan.decide(f, dt.datetime.now(dt.UTC))
                for f in nl.gather(project, [spec], {image} if fresh else set())
            ]
            steps.append({"step": "decide", "ok": True, "detail": decision.reason})
            print(
                f"deploy: decide: {'bake' if decision.bake else 'skip'} ({decision.reason})",
                file=sys.stderr,
            )
            catalogue = Catalogue(project.state_dir / "catalogue")
            if decision.bake:
                record = local.bake(project, spec, local.BakeOptions(channels=(chan,)))
                steps.append({"step": "bake+verify+publish", "ok": True})
            else:
                newest = [
                    r for r in catalogue.images(image) if r["state"] in ("verified", "published")
                ]
                record = catalogue.point(image, newest[-1]["version"], [chan], by=getpass.getuser())
                steps.append({"step": "publish", "ok": True})
            steps.append(
                {
                    "step": "roll",
                    "ok": True,
                    "detail": "the local target has no auto-scaling groups",
                }
            )
    except (BakehouseError, Exit) as exc:
        failed = True
        message = exc.message if isinstance(exc, BakehouseError) else str(exc.message or exc)
        steps.append({"step": "failed", "ok": False, "detail": message})
        raise
    finally:
        if report:
            _deploy_report(report, image, target, chan, steps, record)
    if failed:
        raise Exit(code=EXIT_FAILED)
    print(f"{record.get('id', image)}: {record.get('state', '?')}, channel {chan}")


def _deploy_report(
    folder: str,
    image: str,
    target: str,
    channel: str,
    steps: list[dict[str, Any]],
    record: dict[str, Any],
) -> None:
    from pathlib import Path
    from xml.sax.saxutils import quoteattr  # nosec B406

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    data = {
        "image": image,
        "target": target,
        "channel": channel,
        "steps": steps,
        "version": record.get("version"),
        "state": record.get("state"),
        "amis": record.get("amis"),
        "verify": record.get("verify"),
    }
    (out / "deploy.json").write_text(_json.dumps(data, indent=2, default=str) + "\n")
    lines = [
        f"## bakehouse deploy: {image} ({target}) -> {channel}",
        "",
        "| step | result | detail |",
        "|---|---|---|",
    ]
    lines += [
        f"| {s['step']} | {'ok' if s['ok'] else 'FAILED'} | {s.get('detail', '')} |" for s in steps
    ]
    if record.get("version"):
        lines += ["", f"image `{record.get('id')}`: {record.get('state')}"]
    (out / "deploy.md").write_text("\n".join(lines) + "\n")
    cases = "".join(
        f'<testcase classname="deploy" name={quoteattr(s["step"])}>'
        + ("" if s["ok"] else f"<failure message={quoteattr(str(s.get('detail', '')))}/>")
        + "</testcase>"
        for s in steps
    )
    failures = sum(not s["ok"] for s in steps)
    (out / "deploy.junit.xml").write_text(
        f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="bakehouse-deploy" '
        f'tests="{len(steps)}" failures="{failures}">{cases}</testsuite>\n'
    )


@task(
    positional=[],
    name="diff",
    help={
        "image": "image name",
        "old": "older version (default: the previous)",
        "new": "newer version (default: the newest)",
        "json": "print JSON",
    },
)
@reported
def images_diff(
    c: Any, image: str, old: str | None = None, new: str | None = None, json: bool = False
) -> None:
    """Packages added, removed and upgraded between two versions of an image."""
    import json as _j

    from bakehouse import debindex, plan
    from bakehouse.catalogue import Catalogue
    from bakehouse.errors import UsageError

    project = _project()
    catalogue = Catalogue(project.state_dir / "catalogue")
    versions = [r["version"] for r in catalogue.images(image)]
    if len(versions) < (0 if old and new else 2 if not (old or new) else 1):
        raise UsageError(f"{image} has fewer than two baked versions", "bake it again first")
    new = new or versions[-1]
    old = old or versions[versions.index(new) - 1]

    def manifest(version: str) -> dict[str, str]:
        catalogue.image(image, version)
        path = catalogue.image_dir(image, version) / "manifest.json"
        return debindex.installed_from_manifest(_j.loads(path.read_text()))

    from bakehouse import app

    spec_local = None
    with contextlib.suppress(BakehouseError):  # the definition may be gone: the diff still works
        spec_local = app.show_image(project, image).base.local
    security: dict[str, str] = {}
    if spec_local is not None:
        with contextlib.suppress(BakehouseError):
            ix = debindex.IndexCache(project.state_dir / "cache" / "indexes").load(
                debindex.suites_for(
                    spec_local.mirror,
                    spec_local.security_mirror,
                    spec_local.suite,
                    spec_local.components,
                )
            )
            security = ix.security_versions()
    changes = plan.diff(manifest(old), manifest(new), security)
    if json:
        _emit_json(
            [
                {
                    "name": x.name,
                    "change": x.kind,
                    "from": x.old,
                    "to": x.new,
                    "security": x.security,
                }
                for x in changes
            ]
        )
        return
    print(f"{image}: {old} -> {new}: {len(changes)} change(s)")
    if changes:
        print(
            _table(
                [
                    [x.name, x.kind, x.old or "", x.new or "", "yes" if x.security else ""]
                    for x in changes
                ],
                ["PACKAGE", "CHANGE", "FROM", "TO", "SECURITY"],
            )
        )


images = Collection("images", images_list, images_show, images_history, images_diff)
ns = Collection(
    render, validate, bake, verify, base, publish, nightly, deploy, roll, prune, gc, images
)
ns.configure({"run": {"echo": False}})
