"""AMI states and channels: state tags, an SSM parameter per channel and region, launch
permissions for the configured accounts, organisations and OUs — never public unless the
definition says so — and deprecation. One call per kind of change per AMI: O(images).

The guard that only verified AMIs are published lives here too, on the AMIs' own state tags,
whatever the catalogue says: a record and its AMIs can disagree (a run killed in between), and
what reaches a fleet is the AMI.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from bakehouse.aws.session import Aws, api_error
from bakehouse.errors import AwsError
from bakehouse.spec import Share

TAG_STATE = "bakehouse:state"
TAG_CHANNELS = "bakehouse:channels"
TAG_REVOKED = "bakehouse:revoked"
PUBLISHABLE = ("verified", "published")
PREFIX = "/bakehouse"


@dataclass(frozen=True)
class RegionalAmi:
    region: str
    ami_id: str


def channel_parameter(image: str, channel: str) -> str:
    return f"{PREFIX}/{image}/{channel}"


def channel_description(image: str, version: str, channel: str, by: str) -> str:
    """What publish writes with a channel's value: the image version and who (pure)."""
    return f"bakehouse {image} {version} ({channel}) by {by}"[:1024]


def describe_channel(text: str) -> tuple[str, str] | None:
    """(version, by) from a description :func:`channel_description` wrote, else None."""
    m = re.fullmatch(r"bakehouse \S+ (\S+) \(\S+\) by (.*)", text)
    return (m.group(1), m.group(2)) if m else None


def launch_permission(share: Share) -> dict[str, Any]:
    """The ModifyImageAttribute LaunchPermission for ``share`` (pure)."""
    add: list[dict[str, str]] = [{"UserId": a} for a in share.accounts]
    add += [{"OrganizationArn": o} for o in share.organizations]
    add += [{"OrganizationalUnitArn": u} for u in share.organizational_units]
    if share.public:
        add.append({"Group": "all"})
    return {"Add": add}


def tags_of(image: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in image.get("Tags", [])}


def ami_state(aws: Aws, ami: RegionalAmi) -> str:
    """The AMI's own ``bakehouse:state`` tag (``missing`` for a deregistered AMI)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        found = aws.client("ec2", ami.region).describe_images(ImageIds=[ami.ami_id])["Images"]
    except ClientError as exc:
        if "NotFound" in str(exc.response.get("Error", {}).get("Code", "")):
            return "missing"
        raise api_error(exc, f"reading {ami.ami_id} in {ami.region}") from None
    except BotoCoreError as exc:
        raise api_error(exc, f"reading {ami.ami_id} in {ami.region}") from None
    return tags_of(found[0]).get(TAG_STATE, "untagged") if found else "missing"


def publish(
    aws: Aws,
    image: str,
    version: str,
    amis: list[RegionalAmi],
    channels: list[str],
    share: Share,
    by: str = "bakehouse",
) -> None:
    """Share each AMI, point the channels' parameters at it and tag it published. Refuses an
    AMI whose own state tag is not verified or published, before changing anything."""
    from botocore.exceptions import BotoCoreError, ClientError

    for ami in amis:
        state = ami_state(aws, ami)
        if state not in PUBLISHABLE:
            raise AwsError(
                f"{ami.ami_id} in {ami.region} is {state}; only verified AMIs are published",
                "bake and verify it first",
            )
    for ami in amis:
        ec2 = aws.client("ec2", ami.region)
        ssm = aws.client("ssm", ami.region)
        try:
            permission = launch_permission(share)
            if permission["Add"]:
                ec2.modify_image_attribute(ImageId=ami.ami_id, LaunchPermission=permission)
            if share.accounts:  # so they can copy it too (snapshots share with accounts only)
                for snapshot in snapshots_of(ec2, ami.ami_id):
                    ec2.modify_snapshot_attribute(
                        SnapshotId=snapshot,
                        Attribute="createVolumePermission",
                        OperationType="add",
                        UserIds=list(share.accounts),
                    )
            shared = bool(share.accounts or share.organizations or share.organizational_units)
            for channel in channels:
                ssm.put_parameter(
                    Name=channel_parameter(image, channel),
                    Value=ami.ami_id,
                    Type="String",
                    DataType="aws:ec2:image",
                    Overwrite=True,
                    Description=channel_description(image, version, channel, by),
                    # only advanced-tier parameters can be shared with other accounts (and
                    # an advanced one cannot go back: the tier is left alone when not sharing)
                    **({"Tier": "Advanced"} if shared else {}),
                )
            if shared:
                share_channels(aws, ami.region, image, channels, share)
            ec2.create_tags(
                Resources=[ami.ami_id],
                Tags=[
                    {"Key": TAG_STATE, "Value": "published"},
                    {"Key": TAG_CHANNELS, "Value": " ".join(sorted(channels))},
                ],
            )
        except (ClientError, BotoCoreError) as exc:
            raise api_error(exc, f"publishing {ami.ami_id} in {ami.region}") from None


def snapshots_of(ec2: Any, ami_id: str) -> list[str]:
    """The EBS snapshots behind an AMI."""
    images = ec2.describe_images(ImageIds=[ami_id])["Images"]
    return [
        m["Ebs"]["SnapshotId"]
        for image in images
        for m in image.get("BlockDeviceMappings", [])
        if m.get("Ebs", {}).get("SnapshotId")
    ]


def share_name(image: str) -> str:
    return f"bakehouse-{image}-channels"


def share_channels(aws: Aws, region: str, image: str, channels: list[str], share: Share) -> None:
    """Share the image's channel parameters with the accounts and organizations its AMIs are
    shared with, through one AWS RAM resource share per image and region (created once,
    extended as channels are added)."""
    ram = aws.client("ram", region)
    account = aws.account()
    arns = [
        f"arn:aws:ssm:{region}:{account}:parameter{channel_parameter(image, c)}" for c in channels
    ]
    principals = [*share.accounts, *share.organizations, *share.organizational_units]
    found = ram.get_resource_shares(
        resourceOwner="SELF", name=share_name(image), resourceShareStatus="ACTIVE"
    )["resourceShares"]
    if not found:
        ram.create_resource_share(
            name=share_name(image),
            resourceArns=arns,
            principals=principals,
            allowExternalPrincipals=bool(share.accounts),
            tags=[{"key": "bakehouse:image", "value": image}],
        )
        return
    ram.associate_resource_share(
        resourceShareArn=found[0]["resourceShareArn"], resourceArns=arns, principals=principals
    )


def tag_state(aws: Aws, amis: list[RegionalAmi], state: str, note: str | None = None) -> None:
    """Set the AMIs' state tag (and, for a revocation, the reason)."""
    from botocore.exceptions import BotoCoreError, ClientError

    tags = [{"Key": TAG_STATE, "Value": state}]
    if note is not None:
        tags.append({"Key": TAG_REVOKED, "Value": note[:255]})
    for ami in amis:
        try:
            aws.client("ec2", ami.region).create_tags(Resources=[ami.ami_id], Tags=tags)
        except (ClientError, BotoCoreError) as exc:
            raise api_error(exc, f"tagging {ami.ami_id} in {ami.region}") from None


def deprecate(aws: Aws, amis: list[RegionalAmi], when: dt.datetime) -> None:
    """Deprecate the AMIs at ``when`` (EC2 refuses a time in the past: pass one to come)."""
    from botocore.exceptions import BotoCoreError, ClientError

    for ami in amis:
        try:
            aws.client("ec2", ami.region).enable_image_deprecation(
                ImageId=ami.ami_id, DeprecateAt=when
            )
        except (ClientError, BotoCoreError) as exc:
            raise api_error(exc, f"deprecating {ami.ami_id} in {ami.region}") from None


def next_minute(now: dt.datetime) -> dt.datetime:
    """The soonest deprecation time EC2 accepts: the next whole minute."""
    return (now + dt.timedelta(minutes=1)).replace(second=0, microsecond=0)


def channel_values(aws: Aws, image: str, region: str) -> dict[str, str]:
    """{channel: AMI id} of an image's channel parameters in ``region``."""
    from botocore.exceptions import BotoCoreError, ClientError

    out = {}
    try:
        pages = (
            aws.client("ssm", region)
            .get_paginator("get_parameters_by_path")
            .paginate(Path=f"{PREFIX}/{image}/", Recursive=False)
        )
        for page in pages:
            for param in page["Parameters"]:
                out[param["Name"].rsplit("/", 1)[-1]] = param["Value"]
    except (ClientError, BotoCoreError) as exc:
        raise api_error(exc, f"reading the channels of {image} in {region}") from None
    return out


def channel_history(aws: Aws, image: str, channel: str, region: str) -> list[dict[str, Any]]:
    """The channel parameter's versions, oldest first: value, when, description."""
    from botocore.exceptions import BotoCoreError, ClientError

    out: list[dict[str, Any]] = []
    try:
        pages = (
            aws.client("ssm", region)
            .get_paginator("get_parameter_history")
            .paginate(Name=channel_parameter(image, channel))
        )
        for page in pages:
            out += page["Parameters"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return []
        raise api_error(exc, f"reading the history of channel {channel} in {region}") from None
    except BotoCoreError as exc:
        raise api_error(exc, f"reading the history of channel {channel} in {region}") from None
    return out


def remove_channels(aws: Aws, image: str, channels: list[str], regions: list[str]) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    for region in regions:
        for channel in channels:
            try:
                aws.client("ssm", region).delete_parameter(Name=channel_parameter(image, channel))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
                    continue
                raise api_error(exc, f"removing channel {channel} in {region}") from None
            except BotoCoreError as exc:
                raise api_error(exc, f"removing channel {channel} in {region}") from None
