"""The aws target: the owner-pinned base AMI, a build instance bakehouse launches and Packer
provisions, AMIs tagged as they are made, verification on a fresh instance, and everything the
lifecycle needs kept in the AWS account itself:

- records, package manifests, SBOMs and reports in S3 (:mod:`bakehouse.aws.state`), so any
  runner — a fresh clone with no ``.bakehouse/`` — sees what the baking machine saw;
- each AMI's state as its ``bakehouse:state`` tag, which the publish and roll guards read;
- channels as SSM parameters ``/bakehouse/<image>/<channel>`` in every region, their history
  as the parameters' own history.

Its bake is a sequence too: resolve → render → launch (IMDSv2, encrypted volumes) → packer
(provisioning over SSH) → AMI and region copies (:mod:`bakehouse.aws.build`) → AMI settings
(IMDSv2 only, deprecation date); its verification launches the new AMI.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import ipaddress
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from bakehouse import packer
from bakehouse import render as rnd
from bakehouse.aws.publish import RegionalAmi
from bakehouse.aws.session import Aws, api_error
from bakehouse.catalogue import Catalogue, Record
from bakehouse.debindex import Marks
from bakehouse.errors import AwsError, UsageError
from bakehouse.files import describe
from bakehouse.inputs import fingerprint, git_commit, suite_hash
from bakehouse.names import check_flag
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
    TargetOptions,
    no_runner,
)

# Test-only switch: tests run the very same template against a moto server, without SSH. It
# is ignored unless BAKEHOUSE_AWS_ENDPOINT points the build at such an endpoint.
COMMUNICATOR_ENV = "BAKEHOUSE_PACKER_COMMUNICATOR"
STATE_BUCKET_ENV = "BAKEHOUSE_AWS_STATE_BUCKET"
STATE_REGION_ENV = "BAKEHOUSE_AWS_STATE_REGION"


def deprecation_time(spec: ImageSpec, now: dt.datetime) -> dt.datetime:
    """An image older than the patch policy's max age should not be launched any more."""
    return (now + dt.timedelta(days=spec.patch.max_age_days)).replace(second=0, microsecond=0)


def finish_amis(aws: Aws, spec: ImageSpec, amis: list[RegionalAmi], now: dt.datetime) -> None:
    """After the build: IMDSv2-only AMIs and a deprecation date, in every region."""
    from botocore.exceptions import BotoCoreError, ClientError

    from bakehouse.aws.publish import deprecate

    for ami in amis:
        ec2 = aws.client("ec2", ami.region)
        try:
            ec2.modify_image_attribute(ImageId=ami.ami_id, ImdsSupport={"Value": "v2.0"})
        except (ClientError, BotoCoreError) as exc:
            raise api_error(exc, f"finishing {ami.ami_id} in {ami.region}") from None
    deprecate(aws, amis, deprecation_time(spec, now))


def amis_of(record: Record) -> list[RegionalAmi]:
    return [RegionalAmi(a["region"], a["ami_id"]) for a in record.get("amis", [])]


def check_runner_cidr(cidr: str, wide: bool) -> None:
    """The runner's address as a network that only it is in (a /32 or /128), unless ``wide``
    says a NAT pool is meant; never wider than a /16 (IPv6: /32)."""
    try:
        net = ipaddress.ip_network(cidr, strict=True)
    except ValueError:
        raise UsageError(
            f"--runner-cidr {cidr!r} is not an address range", "e.g. 203.0.113.7/32"
        ) from None
    public = (net.version == 4 and net.prefixlen < 16) or (net.version == 6 and net.prefixlen < 32)
    if public:  # 0.0.0.0/0 and friends: nothing a flag can make right
        raise UsageError(
            f"--runner-cidr {cidr} would let much of the Internet reach the instances over SSH",
            "give the runner's own address, e.g. 203.0.113.7/32",
        )
    if net.num_addresses > 1 and not wide:
        raise UsageError(
            f"--runner-cidr {cidr} holds {net.num_addresses} addresses, not one runner",
            f"give the runner's address ({net.network_address}/{net.max_prefixlen}), or add "
            "--wide-runner-cidr if the runner really leaves through this whole range",
        )


class AwsTarget(Target):
    name = "aws"
    summary = "AMIs provisioned by Packer, tagged at creation; state in the account (S3, tags, SSM)"
    deploy_always_bakes = True  # "built from images patched on every deploy"

    def __init__(self, project: Any, options: TargetOptions | None = None):
        super().__init__(project, options)
        check_flag("region", list(self.options.regions))
        if self.options.runner_cidr is not None:
            check_runner_cidr(self.options.runner_cidr, self.options.wide_runner_cidr)
        self.aws = Aws(profile=self.options.profile)
        self._bases: dict[tuple[str, str], Any] = {}
        self._base_images: dict[tuple[str, str], dict[str, Any] | None] = {}
        self._lock = threading.Lock()  # nightly reads several images at once

    # ---- settings -----------------------------------------------------------------------------
    def settings(self, spec: ImageSpec) -> Any:
        """The definition's targets.aws, with --region replacing its regions."""
        aws = spec.targets.aws
        if self.options.regions:
            aws = dataclasses.replace(aws, regions=tuple(dict.fromkeys(self.options.regions)))
        return aws

    def with_settings(self, spec: ImageSpec) -> ImageSpec:
        return dataclasses.replace(
            spec, targets=dataclasses.replace(spec.targets, aws=self.settings(spec))
        )

    def open_catalogue(self) -> Catalogue:
        from bakehouse.aws.state import S3Store, default_bucket

        bucket = os.environ.get(STATE_BUCKET_ENV) or default_bucket(self.aws.account())
        region = os.environ.get(STATE_REGION_ENV) or self.aws.session.region_name or "us-east-1"
        return Catalogue(S3Store(self.aws, bucket, region), self.name)

    def where(self, record: Record) -> list[str]:
        return [f"{a.region}:{a.ami_id}" for a in amis_of(record)]

    def index_marks(self) -> Marks:
        """The newest index Date accepted per mirror and suite, kept in the account with the
        records: a fresh CI runner refuses an index older than any runner accepted."""
        from bakehouse.debindex import StoreMarks

        return StoreMarks(self.catalogue.store)

    # ---- bake ---------------------------------------------------------------------------------
    def base(self, spec: ImageSpec, rebuild: bool, run: Run, progress: Progress) -> str:
        """The base AMI a bake would start from now (owner-pinned; nothing is built)."""
        from bakehouse.aws.resolve import resolve

        spec = self.with_settings(spec)
        home = spec.targets.aws.regions[0]
        r = resolve(self.aws, spec.base.aws, home)
        return f"{r.ami_id} in {home}: {r.name}, owner {r.owner}, {r.created} (via {r.via})"

    def check(self, spec: ImageSpec, request: BakeRequest) -> None:
        if request.keep_on_failure:
            raise UsageError(
                "--keep-on-failure keeps a local build VM; the aws target removes its build "
                "instance whatever happens",
                f"reproduce on the local target: bakehouse bake {spec.name} --keep-on-failure",
            )
        if self.options.runner_cidr is None:
            raise no_runner(self.name)
        # the catalogue must be able to take this bake's record: find out now, not after it
        self.catalogue.store.ensure()
        self.adopt_legacy()

    def adopt_legacy(self) -> list[str]:
        """Records of AWS bakes made before the account held them sit in the local catalogue
        (moved there by its one-time migration): upload them once, create-only, then rename the
        folder so nothing is uploaded twice. Returns the versions uploaded."""
        from bakehouse import catalogue as cat

        local = cat.local(self.project.state_dir)  # migrated, and sealed with this machine's key
        folder = self.project.state_dir / "catalogue" / "aws" / "images"
        if not folder.is_dir():
            return []
        done = []
        for record_file in sorted(folder.glob("*/*/record.json")):
            entry = record_file.parent
            prefix = self.catalogue.entry_key(entry.parent.name, entry.name)
            # only what this machine's key sealed reaches the account (else: Untrusted)
            record = local.store.read(f"aws/images/{entry.parent.name}/{entry.name}/record.json")
            assert record is not None
            if self.catalogue.store.read(f"{prefix}/record.json") is None:
                self.catalogue.store.add_entry(prefix, entry, record)
                done.append(f"{entry.parent.name} {entry.name}")
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        folder.rename(folder.parent / f"images.uploaded-{stamp}")
        return done

    def bake(self, spec: ImageSpec, request: BakeRequest, run: Run, progress: Progress) -> Baked:
        from bakehouse.aws import build
        from bakehouse.aws.instances import access, resource_tags
        from bakehouse.aws.resolve import resolve

        spec = self.with_settings(spec)
        target = spec.targets.aws
        home = target.regions[0]
        with progress.phase("resolve", f"base AMI in {home}"):
            resolved = resolve(self.aws, spec.base.aws, home)
        progress.say(
            f"resolve: {resolved.ami_id} ({resolved.name}, owner {resolved.owner}, "
            f"{resolved.created}) via {resolved.via}"
        )
        version = packer.version()
        template = rnd.render(spec, "aws", self.project.packer_dir, version)
        path = run.path("build.pkr.hcl")
        path.write_text(template)
        stage = run.path("stage")
        stage.mkdir()
        root = self.project.root
        fp = fingerprint(
            spec, template, self.project.scripts_dir, resolved.ami_id, suite_hash(root)
        )
        commit = git_commit(root)
        variables = self.packer_variables(run, stage, fp, commit)
        tags = build.image_tags(spec.name, run.version, run.id, fp, resolved.ami_id, commit)
        launch_tags = [
            *resource_tags(run.id, spec.name, "build"),
            {"Key": "bakehouse:version", "Value": run.version},
            {"Key": "bakehouse:git-commit", "Value": commit},
        ]
        volumes = build.Volumes(
            resolved.root_device, target.volume_size, target.data_volume_size, target.kms_key_id
        )
        name = f"bakehouse-{spec.name}-{run.version}"
        amis: list[RegionalAmi] = []  # made and available (make_images removes its own on failure)
        try:
            with contextlib.ExitStack() as stack:
                way = stack.enter_context(
                    access(
                        self.aws,
                        home,
                        spec.name,
                        run.id,
                        "build",
                        self.options.runner_cidr,
                        target.subnet_id,
                        run.dir,
                    )
                )
                launch = build.launch_request(
                    resolved.ami_id,
                    target.instance_type,
                    way.key_name,
                    way.group_id,
                    target.subnet_id,
                    volumes,
                    launch_tags,
                )
                with progress.phase("launch", f"build instance from {resolved.ami_id} in {home}"):
                    inst = stack.enter_context(build.build_instance(self.aws, home, launch))
                progress.say(f"launch: {inst.instance_id} at {inst.address or 'no address'}")
                if variables.get("communicator") != "none" and not inst.address:
                    raise AwsError(
                        f"build instance {inst.instance_id} has no address to reach",
                        "use a subnet that gives public addresses, or run from inside the VPC",
                    )
                variables["ssh_host"] = inst.address or ""
                variables["ssh_private_key_file"] = str(way.key_file or "")
                with progress.phase("bake", f"packer build {spec.name} {run.version}"):
                    timings = packer.build(
                        path,
                        variables,
                        log=stage / "packer.log",
                        cwd=run.dir,
                        tmp=run.tmp,
                        progress=progress,
                        timeout=7200,
                        env={},
                    )
                with progress.phase("ami", f"{name} in {', '.join(target.regions)}"):
                    amis = build.make_images(
                        self.aws,
                        inst,
                        list(target.regions),
                        name,
                        spec.description,
                        tags,
                        target.kms_key_id,
                    )
            with progress.phase("finish", "IMDSv2 only, deprecation date"):
                finish_amis(self.aws, spec, amis, run.started)
        except BaseException as exc:
            # a failure after the AMIs exist (removing the build instance, finishing them):
            # no half-made version stays behind
            left = build.discard(self.aws, amis)
            if left and isinstance(exc, AwsError):
                exc.hint = f"could not remove {'; '.join(left)}: run `invoke gc --target aws --yes`"
            raise
        manifest_file = stage / "manifest.json"
        manifest = json.loads(manifest_file.read_text()) if manifest_file.is_file() else None
        notes = []
        if manifest is None:
            notes.append("no package manifest: the build did not reach the instance")
            progress.say(f"bake: {notes[-1]}; nightly will not trust this image's patch level")
        return Baked(
            version=run.version,
            stage=stage,
            fingerprint=fp,
            git_commit=commit,
            base=resolved.to_dict() | {"key": resolved.ami_id, "id": resolved.ami_id},
            manifest=manifest,
            artifacts={"manifest": describe(manifest_file)} if manifest else {},
            timings=timings,
            fields={
                "amis": [{"region": a.region, "ami_id": a.ami_id} for a in amis],
                "build_instance": inst.instance_id,
                "notes": notes,
            },
            where=[f"{a.region}:{a.ami_id}" for a in amis],
            context=amis,
        )

    def packer_variables(self, run: Run, stage: Path, fp: str, commit: str) -> dict[str, str]:
        """The template's run-specific values (the build instance's address and key are added
        once it runs)."""
        variables = {
            "run_id": run.id,
            "version": run.version,
            "artifacts_dir": str(stage),
            "scripts_dir": str(self.project.scripts_dir),
            "git_commit": commit,
            "fingerprint": fp,
        }
        if self.aws.endpoint and os.environ.get(COMMUNICATOR_ENV):
            # an emulated endpoint (tests): never against AWS itself
            variables["communicator"] = os.environ[COMMUNICATOR_ENV]
        return variables

    def verify(self, spec: ImageSpec, baked: Baked, run: Run, progress: Progress) -> Verified:
        amis: list[RegionalAmi] = baked.context
        return self.on_instance(self.with_settings(spec), amis[0], run, progress)

    def on_instance(
        self,
        spec: ImageSpec | None,
        ami: RegionalAmi,
        run: Run,
        progress: Progress,
        spec_for: ImageSpec | None = None,
    ) -> Verified:
        """A fresh instance from ``ami``, the hardening suite over SSH (or SSM), nothing left."""
        from bakehouse import debindex, suite, vm
        from bakehouse.aws import hostkeys, ssm
        from bakehouse.aws.instances import verify_instance

        settings = spec_for or spec
        assert settings is not None
        folder = run.path("verify")
        folder.mkdir()
        target = settings.targets.aws
        local = settings.base.local
        indexes = debindex.state_cache(self.project.state_dir, self.index_marks()).load(
            local.index_suites(settings.base.arch)
        )
        candidates = suite.write_candidates(indexes, folder / "candidates.json")
        ctx = folder / "context.json"
        # no verify key: over SSH it is an EC2 key pair, whose public half authorized_keys holds
        ctx.write_text(json.dumps(suite.context(spec, "", candidates)))
        via_ssm = target.verify_via == "ssm"
        if not via_ssm and self.options.runner_cidr is None:
            raise no_runner(self.name)
        with (
            progress.phase(
                "verify",
                f"fresh instance from {ami.ami_id} in {ami.region} ({target.verify_via.upper()})",
            ),
            verify_instance(
                self.aws,
                ami.region,
                ami.ami_id,
                settings.name,
                run.id,
                None if via_ssm else self.options.runner_cidr,
                target.instance_type,
                target.subnet_id,
                folder,
                instance_profile=target.instance_profile if via_ssm else None,
            ) as inst,
        ):
            if via_ssm:
                progress.say(
                    f"verify: waiting for the SSM agent on {inst.instance_id} (up to 600 s)"
                )
                took = ssm.wait_until_managed(
                    self.aws.client("ssm", ami.region), inst.instance_id, 600
                )
                progress.say(f"verify: {inst.instance_id} online in SSM after {took:.0f} s")
                profile = self.options.profile
                return suite.run_suite(
                    self.project.root,
                    folder,
                    suite.over_ssm(inst.instance_id, ami.region),
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
            user = settings.base.aws.ssh_username
            start = time.monotonic()
            progress.say(f"verify: reading {inst.instance_id}'s SSH host keys from its console")
            keys = hostkeys.wait_for_keys(self.aws.client("ec2", ami.region), inst.instance_id, 600)
            known = hostkeys.write_known_hosts(folder / "known_hosts", inst.address, keys)
            took = vm.wait_for_ssh(
                22,
                inst.key_file,
                user,
                start + 600,
                None,
                None,
                host=inst.address,
                known_hosts=known,
            )
            ssh_config = vm.write_ssh_config(
                folder / "ssh_config", inst.address, 22, user, inst.key_file, known_hosts=known
            )
            return suite.run_suite(
                self.project.root, folder, suite.over_ssh(ssh_config), ctx, progress, took
            )

    def record(self, spec: ImageSpec, record: Record, baked: Baked, progress: Progress) -> Record:
        from bakehouse.aws.publish import tag_state

        tag_state(self.aws, baked.context, record["state"])
        where = self.catalogue.add(record, baked.stage)
        progress.say(f"catalogue: {record['id']} recorded as {record['state']} ({where})")
        return record

    def verify_recorded(
        self, spec: ImageSpec, record: Record | None, run: Run, progress: Progress
    ) -> Verified:
        from bakehouse.aws.resolve import resolve

        spec = self.with_settings(spec)
        if record is None:
            home = spec.targets.aws.regions[0]
            resolved = resolve(self.aws, spec.base.aws, home)
            return self.on_instance(None, RegionalAmi(home, resolved.ami_id), run, progress, spec)
        return self.on_instance(spec, amis_of(record)[0], run, progress)

    # ---- channels and states ------------------------------------------------------------------
    def all_regions(self, spec: ImageSpec) -> list[str]:
        """The definition's regions and --region's: where channels may exist."""
        return list(dict.fromkeys([*spec.targets.aws.regions, *self.options.regions]))

    def channels(self, spec: ImageSpec) -> dict[str, dict[str, Any]]:
        """Each channel's version in the home region, and its history: the SSM parameter's
        own versions, each written by publish with the image version and who in its
        description (one call per channel; a value someone else wrote shows as the AMI id)."""
        from bakehouse.aws import publish as pub

        home = self.settings(spec).regions[0]
        out: dict[str, dict[str, Any]] = {}
        for channel, ami in sorted(pub.channel_values(self.aws, spec.name, home).items()):
            history = []
            previous = None
            for entry in pub.channel_history(self.aws, spec.name, channel, home):
                written = pub.describe_channel(str(entry.get("Description", "")))
                version = written[0] if written else entry["Value"]
                history.append(
                    {
                        "version": version,
                        "previous": previous,
                        "at": str(entry.get("LastModifiedDate", "")),
                        "by": written[1] if written else "?",
                        "ami": entry["Value"],
                    }
                )
                previous = version
            current = history[-1]["version"] if history and history[-1]["ami"] == ami else ami
            out[channel] = {"current": current, "history": history}
        return out

    def point(self, spec: ImageSpec, record: Record, channels: list[str], by: str) -> None:
        from bakehouse.aws.publish import publish

        share = self.settings(spec).share
        publish(self.aws, spec.name, record["version"], amis_of(record), channels, share, by)

    def unpoint(self, spec: ImageSpec, channels: list[str], by: str) -> None:
        from bakehouse.aws.publish import remove_channels

        remove_channels(self.aws, spec.name, channels, self.all_regions(spec))

    def deliverable(self, record: Record) -> bool:
        """Every AMI of the version still exists and its own tag allows publishing."""
        from bakehouse.aws.publish import PUBLISHABLE, ami_state

        amis = amis_of(record)
        return bool(amis) and all(ami_state(self.aws, a) in PUBLISHABLE for a in amis)

    def revoked(self, spec: ImageSpec, record: Record, reason: str) -> list[str]:
        """Tag and deprecate every AMI of the version; then, in every region it is in, no
        channel parameter may still deliver it (one published with --region, or left by a run
        stopped half-way, is removed)."""
        from bakehouse.aws.publish import (
            ami_state,
            channel_values,
            deprecate,
            next_minute,
            remove_channels,
            tag_state,
        )

        everywhere = amis_of(record)
        amis = [a for a in everywhere if ami_state(self.aws, a) != "missing"]
        tag_state(self.aws, amis, "revoked", reason)
        when = next_minute(dt.datetime.now(dt.UTC))
        deprecate(self.aws, amis, when)
        notes = [
            f"{a.region} {a.ami_id}: tagged revoked, deprecated at {when:%Y-%m-%d %H:%M} UTC"
            for a in amis
        ]
        notes += [
            f"{a.region} {a.ami_id}: deregistered already" for a in everywhere if a not in amis
        ]
        for ami in everywhere:
            still = [
                c
                for c, v in channel_values(self.aws, spec.name, ami.region).items()
                if v == ami.ami_id
            ]
            if still:
                remove_channels(self.aws, spec.name, still, [ami.region])
                notes.append(
                    f"{ami.region}: channel(s) {', '.join(still)} still delivered it: removed"
                )
        return notes

    # ---- nightly ------------------------------------------------------------------------------
    def inputs(self, spec: ImageSpec) -> Inputs:
        from bakehouse.aws.resolve import resolve

        spec = self.with_settings(spec)
        home = spec.targets.aws.regions[0]
        source = (home, repr(spec.base.aws))
        with self._lock:  # one resolution per base source, whichever image asks first
            if source not in self._bases:
                self._bases[source] = resolve(self.aws, spec.base.aws, home)
            resolved = self._bases[source]
        template = rnd.render(spec, "aws", self.project.packer_dir, packer.version())
        fp = fingerprint(
            spec, template, self.project.scripts_dir, resolved.ami_id, suite_hash(self.project.root)
        )
        return Inputs(fp, resolved.ami_id)

    def base_revoked(self, record: Record) -> str | None:
        """A base AMI that has been deregistered, or deprecated, must not be baked from again."""
        base = record.get("base", {})
        ami, region = base.get("ami_id"), base.get("region")
        if not ami or not region:
            return None
        key = (region, ami)
        with self._lock:
            return self._base_state(key, ami, region)

    def _base_state(self, key: tuple[str, str], ami: str, region: str) -> str | None:
        if key not in self._base_images:
            from botocore.exceptions import BotoCoreError, ClientError

            try:
                found = self.aws.client("ec2", region).describe_images(ImageIds=[ami])["Images"]
            except ClientError as exc:
                if "NotFound" in str(exc.response.get("Error", {}).get("Code", "")):
                    found = []
                else:
                    raise api_error(exc, f"reading the base AMI {ami}") from None
            except BotoCoreError as exc:
                raise api_error(exc, f"reading the base AMI {ami}") from None
            self._base_images[key] = found[0] if found else None
        image = self._base_images[key]
        if image is None or image.get("State") not in (None, "available"):
            return f"base AMI {ami} is gone from {region}"
        when = image.get("DeprecationTime")
        if when and dt.datetime.fromisoformat(str(when).replace("Z", "+00:00")) <= dt.datetime.now(
            dt.UTC
        ):
            return f"base AMI {ami} is deprecated since {when}"
        return None

    # ---- fleets -------------------------------------------------------------------------------
    def roll(
        self, spec: ImageSpec, channel: str, record: Record, *, dry_run: bool, wait: bool, say: Say
    ) -> RollOutcome:
        from bakehouse.aws import roll as rl

        spec = self.with_settings(spec)
        regions = list(spec.targets.aws.regions)
        images = rl.channel_images(self.aws, spec.name, channel, regions)
        groups = rl.gather(self.aws, dict(spec.roll.selector), regions)
        if not groups:
            raise UsageError(
                f"no auto-scaling group is tagged {dict(spec.roll.selector)} in "
                f"{', '.join(regions)}",
                "check roll.selector and the regions",
            )
        plans = rl.plan(groups, images, spec.roll)
        if dry_run:
            return RollOutcome(True, plans=[p.to_dict() for p in plans])
        busy = rl.busy_groups(plans)
        if busy and not wait:
            raise UsageError(
                "a refresh is already running on "
                + ", ".join(f"{g.region}/{g.name}" for g in busy),
                "wait for it, or pass --wait",
            )
        for g in busy:
            rl.watch(self.aws, g, str(g.active_refresh), True, spec.roll.timeout, say=say)
        results = rl.execute(self.aws, plans, spec.roll, spec.name, record["version"], say=say)
        ok = all(g.get("outcome") == "updated" for g in results)
        return RollOutcome(
            ok, plans=[p.to_dict() for p in plans], groups=results, record={"images": images}
        )

    # ---- housekeeping -------------------------------------------------------------------------
    def prune_plan(self, spec: ImageSpec, now: dt.datetime) -> list[PruneItem]:
        from bakehouse.aws import prune as aws_prune

        spec = self.with_settings(spec)
        amis, usage = aws_prune.gather(self.aws, spec.name, list(spec.targets.aws.regions))
        decisions = aws_prune.plan(
            amis, usage, spec.retention.keep, spec.retention.min_age_days, now
        )
        return [
            PruneItem(
                d.ami.region,
                d.ami.ami_id,
                d.ami.version,
                d.ami.state,
                d.ami.created,
                d.action,
                d.reason,
                d,
            )
            for d in decisions
        ]

    def prune(self, items: list[PruneItem]) -> list[str]:
        """Deregister what the plan says; each version's record keeps which AMIs went."""
        from bakehouse.aws import prune as aws_prune
        from bakehouse.catalogue import now_iso

        gone = aws_prune.execute(self.aws, [i.detail for i in items])
        for item in items:
            if item.action != "delete" or not item.version:
                continue
            name = item.detail.ami.image
            if item.version not in self.catalogue.versions(name):
                continue
            entry = {"region": item.where, "ami_id": item.ident, "at": now_iso()}

            def note(record: Record, entry: dict[str, str] = entry) -> None:
                record.setdefault("pruned", []).append(entry)

            self.catalogue.update(name, item.version, note)
        return gone

    def leftovers(self, specs: list[ImageSpec], older_than: dt.timedelta) -> list[Leftover]:
        from bakehouse.aws import gc as aws_gc
        from bakehouse.runs import dead

        regions = list(self.options.regions) or sorted(
            {r for s in specs for r in s.targets.aws.regions}
        )
        runs = self.project.state_dir / "runs"
        active = {f.name for f in runs.glob("*")} - {x.run_id for x in dead(self.project.state_dir)}
        return [
            Leftover(x.region, x.kind, x.id, x.run_id, x.detail, 0, x)
            for x in aws_gc.find(self.aws, regions, active, older_than)
        ]

    def collect(self, leftovers: list[Leftover]) -> None:
        from bakehouse.aws import gc as aws_gc

        aws_gc.remove(self.aws, [x.handle for x in leftovers])
