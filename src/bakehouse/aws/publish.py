"""Publish verified AMIs: state tags, an SSM parameter per channel and region, launch
permissions for the configured accounts, organisations and OUs — never public unless the
definition says so. One call per kind of change per AMI: O(images), whatever the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bakehouse.aws.session import Aws, AwsError, api_error
from bakehouse.spec import Share

TAG_STATE = "bakehouse:state"
TAG_CHANNELS = "bakehouse:channels"


@dataclass(frozen=True)
class RegionalAmi:
    region: str
    ami_id: str


def channel_parameter(image: str, channel: str) -> str:
    return f"/bakehouse/{image}/{channel}"


def launch_permission(share: Share) -> dict[str, Any]:
    """The ModifyImageAttribute LaunchPermission for ``share`` (pure)."""
    add: list[dict[str, str]] = [{"UserId": a} for a in share.accounts]
    add += [{"OrganizationArn": o} for o in share.organizations]
    add += [{"OrganizationalUnitArn": u} for u in share.organizational_units]
    if share.public:
        add.append({"Group": "all"})
    return {"Add": add}


def publish(
    aws: Aws, image: str, version: str, amis: list[RegionalAmi], channels: list[str], share: Share
) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    for ami in amis:
        ec2 = aws.client("ec2", ami.region)
        ssm = aws.client("ssm", ami.region)
        try:
            state = ec2.describe_images(ImageIds=[ami.ami_id])["Images"]
            if not state:
                raise AwsError(f"{ami.ami_id} does not exist in {ami.region}")
            tags = {t["Key"]: t["Value"] for t in state[0].get("Tags", [])}
            if tags.get(TAG_STATE) not in ("verified", "published"):
                raise AwsError(
                    f"{ami.ami_id} in {ami.region} is {tags.get(TAG_STATE, 'untagged')}"
                    "; only verified AMIs are published",
                    "bake and verify it first",
                )
            permission = launch_permission(share)
            if permission["Add"]:
                ec2.modify_image_attribute(ImageId=ami.ami_id, LaunchPermission=permission)
            for channel in channels:
                ssm.put_parameter(
                    Name=channel_parameter(image, channel),
                    Value=ami.ami_id,
                    Type="String",
                    DataType="aws:ec2:image",
                    Overwrite=True,
                    Description=f"bakehouse {image} {version} ({channel})",
                )
            ec2.create_tags(
                Resources=[ami.ami_id],
                Tags=[
                    {"Key": TAG_STATE, "Value": "published"},
                    {"Key": TAG_CHANNELS, "Value": " ".join(sorted(channels))},
                ],
            )
        except (ClientError, BotoCoreError) as exc:
            raise api_error(exc, f"publishing {ami.ami_id} in {ami.region}") from None
