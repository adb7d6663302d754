"""Prune AMIs by retention, never one that is in use.

``gather`` reads, per region, the image's AMIs and everything that can reference an AMI —
launch template versions, auto-scaling groups (through their launch templates or launch
configurations), instances, and bakehouse's SSM channel parameters — with paginated list calls
(O(images + templates), never a call per AMI). ``plan`` is pure: it keeps the newest ``keep``
verified AMIs, anything younger than ``min_age_days``, and anything in use, and says why for
each survivor. ``execute`` deregisters, then deletes the snapshots the AMI owned that bakehouse
tagged.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from bakehouse.aws.session import Aws, api_error

VERIFIED = ("verified", "published")


@dataclass(frozen=True)
class Ami:
    region: str
    ami_id: str
    name: str
    created: dt.datetime
    state: str
    snapshots: tuple[str, ...]
    version: str = ""
    image: str = ""


@dataclass
class Usage:
    """AMI id → what uses it, per region."""

    users: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, ami_id: str, user: str) -> None:
        self.users[ami_id].append(user)


@dataclass(frozen=True)
class Decision:
    ami: Ami
    action: str  # delete | keep
    reason: str


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def plan(
    amis: list[Ami], usage: dict[str, Usage], keep: int, min_age_days: int, now: dt.datetime
) -> list[Decision]:
    """Pure: what goes and what stays, and why (per region, newest first: by bakehouse
    version, then creation time)."""
    decisions: list[Decision] = []
    by_region: dict[str, list[Ami]] = defaultdict(list)
    for ami in amis:
        by_region[ami.region].append(ami)
    for region, items in sorted(by_region.items()):
        items.sort(key=lambda a: (a.version, a.created, a.ami_id), reverse=True)
        kept_verified = 0
        users = usage.get(region, Usage()).users
        for ami in items:
            age = now - ami.created
            if ami.state in VERIFIED and kept_verified < keep:
                kept_verified += 1
                decisions.append(Decision(ami, "keep", f"among the {keep} newest verified"))
            elif users.get(ami.ami_id):
                decisions.append(
                    Decision(ami, "keep", "in use by " + ", ".join(sorted(users[ami.ami_id])[:3]))
                )
            elif age < dt.timedelta(days=min_age_days):
                decisions.append(
                    Decision(ami, "keep", f"younger than {min_age_days} days ({age.days} d)")
                )
            else:
                why = "older than retention" if ami.state in VERIFIED else f"{ami.state}, unused"
                decisions.append(Decision(ami, "delete", why))
    return decisions


def gather(aws: Aws, image: str, regions: list[str]) -> tuple[list[Ami], dict[str, Usage]]:
    from botocore.exceptions import BotoCoreError, ClientError

    amis: list[Ami] = []
    usage: dict[str, Usage] = {}
    for region in regions:
        ec2 = aws.client("ec2", region)
        try:
            pages = ec2.get_paginator("describe_images").paginate(
                Owners=["self"], Filters=[{"Name": "tag:bakehouse:image", "Values": [image]}]
            )
            for page in pages:
                for img in page["Images"]:
                    tags = {t["Key"]: t["Value"] for t in img.get("Tags", [])}
                    snaps = tuple(
                        b["Ebs"]["SnapshotId"]
                        for b in img.get("BlockDeviceMappings", [])
                        if "Ebs" in b and b["Ebs"].get("SnapshotId")
                    )
                    amis.append(
                        Ami(
                            region,
                            img["ImageId"],
                            img.get("Name", ""),
                            _parse_time(img["CreationDate"]),
                            tags.get("bakehouse:state", "baked"),
                            snaps,
                            tags.get("bakehouse:version", ""),
                            image,
                        )
                    )
            usage[region] = _usage(aws, region)
        except (ClientError, BotoCoreError) as exc:
            raise api_error(exc, f"listing AMIs and their users in {region}") from None
    return amis, usage


def _usage(aws: Aws, region: str) -> Usage:
    ec2 = aws.client("ec2", region)
    asg = aws.client("autoscaling", region)
    ssm = aws.client("ssm", region)
    usage = Usage()
    lt_images: dict[tuple[str, str], str] = {}
    for page in ec2.get_paginator("describe_launch_templates").paginate():
        for lt in page["LaunchTemplates"]:
            for vpage in ec2.get_paginator("describe_launch_template_versions").paginate(
                LaunchTemplateId=lt["LaunchTemplateId"]
            ):
                for v in vpage["LaunchTemplateVersions"]:
                    image_id = v.get("LaunchTemplateData", {}).get("ImageId")
                    if image_id:
                        usage.add(
                            image_id,
                            f"launch template {lt['LaunchTemplateName']} v{v['VersionNumber']}",
                        )
                        lt_images[(lt["LaunchTemplateId"], str(v["VersionNumber"]))] = image_id
    lc_images: dict[str, str] = {}
    for page in asg.get_paginator("describe_launch_configurations").paginate():
        for lc in page["LaunchConfigurations"]:
            lc_images[lc["LaunchConfigurationName"]] = lc["ImageId"]
    for page in asg.get_paginator("describe_auto_scaling_groups").paginate():
        for group in page["AutoScalingGroups"]:
            name = group["AutoScalingGroupName"]
            if group.get("LaunchConfigurationName") in lc_images:
                usage.add(lc_images[group["LaunchConfigurationName"]], f"auto-scaling group {name}")
            spec = group.get("LaunchTemplate") or (
                group.get("MixedInstancesPolicy", {})
                .get("LaunchTemplate", {})
                .get("LaunchTemplateSpecification")
            )
            if spec:
                for (lt_id, _version), image_id in lt_images.items():
                    if lt_id == spec.get("LaunchTemplateId"):
                        usage.add(image_id, f"auto-scaling group {name}")
    for page in ec2.get_paginator("describe_instances").paginate(
        Filters=[
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}
        ]
    ):
        for reservation in page["Reservations"]:
            for inst in reservation["Instances"]:
                usage.add(inst["ImageId"], f"instance {inst['InstanceId']}")
    for page in ssm.get_paginator("get_parameters_by_path").paginate(
        Path="/bakehouse/", Recursive=True
    ):
        for param in page["Parameters"]:
            usage.add(param["Value"], f"SSM {param['Name']}")
    return usage


def execute(aws: Aws, decisions: list[Decision]) -> list[str]:
    from botocore.exceptions import BotoCoreError, ClientError

    done = []
    for d in decisions:
        if d.action != "delete":
            continue
        ec2 = aws.client("ec2", d.ami.region)
        try:
            owned: list[str] = []
            if d.ami.snapshots:
                snaps = ec2.describe_snapshots(
                    SnapshotIds=list(d.ami.snapshots), OwnerIds=["self"]
                )["Snapshots"]
                owned = [
                    s["SnapshotId"]
                    for s in snaps
                    if any(t["Key"] == "bakehouse:image" for t in s.get("Tags", []))
                ]
            ec2.deregister_image(ImageId=d.ami.ami_id)
            for snap in owned:
                ec2.delete_snapshot(SnapshotId=snap)
        except (ClientError, BotoCoreError) as exc:
            raise api_error(exc, f"pruning {d.ami.ami_id} in {d.ami.region}") from None
        done.append(f"{d.ami.region} {d.ami.ami_id}")
    return done
