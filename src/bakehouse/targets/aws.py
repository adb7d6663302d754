"""The aws target: resolve the owner-pinned base AMI, bake with Packer's amazon-ebs builder,
verify on a fresh instance, publish through tags and SSM channel parameters.

AWS holds the state (AMI tags ``bakehouse:state``); a local catalogue record keeps the history
of every bake with one entry per region.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bakehouse import packer, proc
from bakehouse import render as rnd
from bakehouse.aws.instances import ImdsGuard, imds_account_default
from bakehouse.aws.publish import RegionalAmi
from bakehouse.aws.resolve import ResolvedAmi, resolve
from bakehouse.aws.session import Aws, AwsError, api_error
from bakehouse.catalogue import Catalogue, Record, now_iso
from bakehouse.progress import Progress
from bakehouse.project import Project
from bakehouse.runs import Run, image_lock, run_dir, terminate_as_exception
from bakehouse.spec import ImageSpec
from bakehouse.stages.bake import PackerWatch, fingerprint, git_commit, version_of

# Test-only switches: tests run the very same template against a moto server.
COMMUNICATOR_ENV = "BAKEHOUSE_PACKER_COMMUNICATOR"


@dataclass
class AwsBakeOptions:
    profile: str | None = None
    runner_cidr: str | None = None
    verify: bool = True


def parse_manifest(path: Path) -> list[RegionalAmi]:
    """Packer's manifest → one AMI per region (``artifact_id`` is ``region:ami,region:ami``)."""
    data = json.loads(path.read_text())
    builds = data.get("builds", [])
    if not builds:
        raise AwsError(f"Packer's manifest {path} lists no build")
    last = [b for b in builds if b.get("packer_run_uuid") == data.get("last_run_uuid")] or builds
    out = []
    for part in str(last[-1]["artifact_id"]).split(","):
        region, _, ami = part.partition(":")
        if not region or not ami.startswith("ami-"):
            raise AwsError(f"cannot read the artifact id {last[-1]['artifact_id']!r}")
        out.append(RegionalAmi(region, ami))
    return out


def deprecation_time(spec: ImageSpec, now: dt.datetime) -> dt.datetime:
    """An image older than the patch policy's max age should not be launched any more."""
    return (now + dt.timedelta(days=spec.patch.max_age_days)).replace(second=0, microsecond=0)


def packer_variables(
    spec: ImageSpec,
    run: Run,
    resolved: ResolvedAmi,
    scripts_dir: Path,
    stage: Path,
    fp: str,
    commit: str,
    runner_cidr: str,
) -> dict[str, str]:
    variables = {
        "run_id": run.id,
        "version": version_of(run),
        "artifacts_dir": str(stage),
        "scripts_dir": str(scripts_dir),
        "git_commit": commit,
        "fingerprint": fp,
        "source_ami": resolved.ami_id,
        "runner_cidrs": json.dumps([runner_cidr]),
    }
    if os.environ.get(COMMUNICATOR_ENV):
        variables["communicator"] = os.environ[COMMUNICATOR_ENV]
    endpoint = os.environ.get("BAKEHOUSE_AWS_ENDPOINT")
    if endpoint:
        variables["ec2_endpoint"] = endpoint
    return variables


def finish_amis(aws: Aws, spec: ImageSpec, amis: list[RegionalAmi], now: dt.datetime) -> list[str]:
    """After the build: IMDSv2-only AMIs and a deprecation date. Returns what could not be set
    (an endpoint without these APIs); real AWS supports both."""
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    notes = []
    when = deprecation_time(spec, now)
    for ami in amis:
        ec2 = aws.client("ec2", ami.region)
        for what in ("ImdsSupport v2.0", f"deprecation at {when.isoformat()}"):
            try:
                if what.startswith("Imds"):
                    ec2.modify_image_attribute(ImageId=ami.ami_id, ImdsSupport={"Value": "v2.0"})
                else:
                    ec2.enable_image_deprecation(ImageId=ami.ami_id, DeprecateAt=when)
            except ClientError as exc:
                raise api_error(exc, f"setting {what} on {ami.ami_id}") from None
            except (BotoCoreError, ResponseParserError) as exc:  # an emulator's HTTP 500
                notes.append(f"{ami.region} {ami.ami_id}: {what} not set ({type(exc).__name__})")
    return notes


def tag_state(aws: Aws, amis: list[RegionalAmi], state: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    for ami in amis:
        try:
            aws.client("ec2", ami.region).create_tags(
                Resources=[ami.ami_id], Tags=[{"Key": "bakehouse:state", "Value": state}]
            )
        except (ClientError, BotoCoreError) as exc:
            raise api_error(exc, f"tagging {ami.ami_id}") from None


def bake(
    project: Project, spec: ImageSpec, options: AwsBakeOptions, progress: Progress | None = None
) -> Record:
    progress = progress or Progress()
    target = spec.targets.aws
    aws = Aws(profile=options.profile, region=target.regions[0])
    catalogue = Catalogue(project.state_dir / "catalogue")
    if options.runner_cidr is None:
        raise AwsError(
            "say which address may reach the build instance: --runner-cidr A.B.C.D/32",
            "the runner's public address; the temporary security group allows only it",
        )
    with (
        terminate_as_exception(),
        image_lock(project.state_dir, f"{spec.name}-aws"),
        run_dir(project.state_dir, spec.name, "bake-aws") as run,
    ):
        with progress.phase("resolve", f"base AMI in {target.regions[0]}"):
            resolved = resolve(aws, spec.base.aws, target.regions[0])
        progress.say(
            f"resolve: {resolved.ami_id} ({resolved.name}, owner {resolved.owner}, "
            f"{resolved.created}) via {resolved.via}"
        )
        version = packer.version()
        template = rnd.render(spec, "aws", project.packer_dir, version)
        path = run.path("build.pkr.hcl")
        path.write_text(template)
        stage = run.path("stage")
        stage.mkdir()
        from bakehouse.nightly import suite_hash

        fp = fingerprint(
            spec, template, project.scripts_dir, resolved.ami_id, suite_hash(project.root)
        )
        commit = git_commit(project.root)
        variables = packer_variables(
            spec, run, resolved, project.scripts_dir, stage, fp, commit, options.runner_cidr
        )
        env = {
            "CHECKPOINT_DISABLE": "1",
            "TMPDIR": str(run.tmp),
            **packer.debug_env(stage),
        }
        if options.profile:
            env["AWS_PROFILE"] = options.profile
        watch = PackerWatch(progress)
        with progress.phase(
            "bake", f"packer build (amazon-ebs) {spec.name} {variables['version']}"
        ):
            # Packer >= 1.7 requires IMDSv2 itself (metadata_options in the template)
            guard = ImdsGuard(aws, target.regions[0], run.id) if not version.plugins else None
            imds_default = imds_account_default(aws, target.regions[0]) if guard else None
            if guard and imds_default != "required":
                progress.say(
                    f"bake: Packer {version} cannot ask for IMDSv2, so bakehouse sets it on "
                    "the build instance once it exists; to have it from launch run: aws ec2 "
                    "modify-instance-metadata-defaults --http-tokens required "
                    f"--region {target.regions[0]}"
                )
            with guard or contextlib.nullcontext():
                code = proc.stream(
                    packer.build_argv(path, variables),
                    log=stage / "packer.log",
                    on_line=watch,
                    cwd=run.dir,
                    env=env,
                    timeout=7200,
                )
        if code != 0:
            raise AwsError(
                f"packer build failed: {' | '.join(watch.errors[-3:]) or code}",
                f"the full log is {stage / 'packer.log'}",
            )
        order = {r: i for i, r in enumerate(target.regions)}
        amis = sorted(
            parse_manifest(stage / "packer-manifest.json"),
            key=lambda a: order.get(a.region, len(order)),
        )
        notes = finish_amis(aws, spec, amis, run.started)
        for note in notes:
            progress.say(f"bake: {note}")
        state = "baked"
        verified = None
        interrupted: BaseException | None = None
        if options.verify:
            try:
                verified = verify_on_instance(
                    project, spec, aws, amis[0], run, options.runner_cidr, progress, options.profile
                )
                state = "verified" if verified.ok else "failed"
            except BaseException as exc:  # recorded as failed below, then raised again
                state, interrupted = "failed", exc
        try:
            tag_state(aws, amis, state)
        except AwsError:
            if interrupted is None:
                raise
        record: Record = {
            "kind": "image",
            "id": f"{spec.name}-{variables['version']}",
            "name": spec.name,
            "version": variables["version"],
            "target": "aws",
            "created": now_iso(),
            "run_id": run.id,
            "by": getpass.getuser(),
            "state": state,
            "history": [{"state": state, "at": now_iso(), "note": f"run {run.id}"}],
            "base": resolved.to_dict(),
            "fingerprint": fp,
            "git_commit": commit,
            "amis": [{"region": a.region, "ami_id": a.ami_id} for a in amis],
            "imds_guard": sorted(guard.done) if guard is not None else [],
            "imds_account_default": imds_default,
            "notes": notes,
            "channels": [],
            "artifacts": {},
            "verify": {
                "ok": bool(verified and verified.ok),
                "summary": verified.summary if verified else {},
                "failed": verified.failed_ids() if verified else [],
            },
        }
        if interrupted is not None:
            record["verify"]["error"] = str(interrupted) or type(interrupted).__name__
            record["history"][0]["note"] += ": verification did not finish"
        catalogue.add(record, stage)
        if interrupted is not None:
            raise interrupted
        progress.say(
            f"bake: {record['id']} {state}: " + ", ".join(f"{a.region} {a.ami_id}" for a in amis)
        )
        return record


def verify_on_instance(
    project: Project,
    spec: ImageSpec,
    aws: Aws,
    ami: RegionalAmi,
    run: Run,
    runner_cidr: str,
    progress: Progress,
    profile: str | None = None,
) -> Any:
    """A fresh instance from the new AMI, the hardening suite over SSH (or SSM), nothing left."""
    import time

    from bakehouse import debindex, vm
    from bakehouse.aws import ssm
    from bakehouse.aws.instances import verify_instance
    from bakehouse.stages import verify as verify_stage

    folder = run.path("verify")
    folder.mkdir()
    target = spec.targets.aws
    local = spec.base.local
    indexes = debindex.IndexCache(project.state_dir / "cache" / "indexes").load(
        debindex.suites_for(local.mirror, local.security_mirror, local.suite, local.components)
    )
    candidates = verify_stage.write_candidates(indexes, folder / "candidates.json")
    ctx = folder / "context.json"
    # no verify key: over SSH it is an EC2 key pair, whose public half authorized_keys holds
    ctx.write_text(json.dumps(verify_stage.context(spec, "", candidates)))
    via_ssm = target.verify_via == "ssm"
    with (
        progress.phase(
            "verify",
            f"fresh instance from {ami.ami_id} in {ami.region} ({target.verify_via.upper()})",
        ),
        verify_instance(
            aws,
            ami.region,
            ami.ami_id,
            spec.name,
            run.id,
            None if via_ssm else runner_cidr,
            target.instance_type,
            target.subnet_id,
            folder,
            instance_profile=target.instance_profile if via_ssm else None,
        ) as inst,
    ):
        if via_ssm:
            progress.say(f"verify: waiting for the SSM agent on {inst.instance_id} (up to 600 s)")
            took = ssm.wait_until_managed(aws.client("ssm", ami.region), inst.instance_id, 600)
            progress.say(f"verify: {inst.instance_id} online in SSM after {took:.0f} s")
            return verify_stage.run_suite(
                project.root,
                folder,
                verify_stage.over_ssm(inst.instance_id, ami.region),
                ctx,
                progress,
                took,
                env={"AWS_PROFILE": profile} if profile else None,
            )
        if not inst.address or not inst.key_file:
            raise AwsError(
                f"instance {inst.instance_id} has no address to reach",
                "use a subnet that gives public addresses, or run from inside the VPC",
            )
        user = spec.base.aws.ssh_username
        start = time.monotonic()
        took = vm.wait_for_ssh(22, inst.key_file, user, start + 600, None, None, host=inst.address)
        ssh_config = vm.write_ssh_config(
            folder / "ssh_config", inst.address, 22, user, inst.key_file
        )
        return verify_stage.run_suite(
            project.root, folder, verify_stage.over_ssh(ssh_config), ctx, progress, took
        )


def amis_of(record: Record) -> list[RegionalAmi]:
    return [RegionalAmi(a["region"], a["ami_id"]) for a in record.get("amis", [])]
