"""Base AMI resolution: one concrete AMI id, from an SSM public parameter or an owner-pinned
name filter, recorded as lineage.

The owners allow-list is required by the schema and applied twice: as DescribeImages' Owners
(so AWS never returns anyone else's image) and again on the answer (so a mistake in either
cannot let a look-alike in). A base named by an SSM parameter is held to an allow-list too
(for the public parameters of Debian, Canonical and Amazon: their publisher), since whoever
can write a parameter could otherwise point it at any AMI. A public AMI named like Debian's,
from another account, with a newer date — the 2024/2025 "whoAMI" name-confusion attack — is
never a candidate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bakehouse.aws.session import Aws, api_error
from bakehouse.errors import AwsError
from bakehouse.spec import AwsBase

AMI_ID = re.compile(r"ami-[0-9a-f]{8,17}")


@dataclass(frozen=True)
class ResolvedAmi:
    ami_id: str
    region: str
    owner: str
    name: str
    created: str
    via: str
    root_device: str  # the image's RootDeviceName: the build puts an encrypted volume there

    def to_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


def _describe(ec2: Any, **kwargs: Any) -> list[dict[str, Any]]:
    images: list[dict[str, Any]] = []
    for page in ec2.get_paginator("describe_images").paginate(**kwargs):
        images.extend(page["Images"])
    return images


ALIASES = ("amazon", "aws-marketplace")  # owner aliases AWS puts in ImageOwnerAlias


def _allowed(image: dict[str, Any], owners: tuple[str, ...], account: str | None) -> bool:
    """Whether ``image`` is owned by one of ``owners`` as AWS defines them: account ids,
    ``self`` (the caller's account) and the ``amazon`` / ``aws-marketplace`` aliases."""
    owner = image.get("OwnerId")
    if owner in owners or ("self" in owners and owner is not None and owner == account):
        return True
    alias = image.get("ImageOwnerAlias")
    return alias in ALIASES and alias in owners


def resolve(aws: Aws, base: AwsBase, region: str) -> ResolvedAmi:
    from botocore.exceptions import BotoCoreError, ClientError

    ec2 = aws.client("ec2", region)
    owners = base.allowed_owners()
    if not owners:  # the schema requires one; never resolve without
        raise AwsError("the base has no owners allow-list", "add base.aws.owners")
    account = aws.account() if "self" in owners else None
    try:
        if base.ssm_parameter:
            value = aws.client("ssm", region).get_parameter(Name=base.ssm_parameter)
            ami_id = str(value["Parameter"]["Value"]).strip()
            if not AMI_ID.fullmatch(ami_id):
                raise AwsError(
                    f"SSM parameter {base.ssm_parameter} holds {ami_id!r}, not an AMI id",
                    "point base.aws.ssm_parameter at an image parameter",
                )
            images = _describe(ec2, ImageIds=[ami_id])
            others = [i for i in images if not _allowed(i, owners, account)]
            if others:
                raise AwsError(
                    f"SSM parameter {base.ssm_parameter} names {ami_id}, owned by "
                    f"{others[0].get('OwnerId')}, not by {', '.join(owners)}",
                    "someone changed the parameter, or base.aws.owners is wrong: nothing was built",
                )
            via = f"ssm:{base.ssm_parameter} owners={','.join(owners)}"
        else:
            assert base.filter is not None
            f = base.filter
            images = _describe(
                ec2,
                Owners=list(f.owners),
                Filters=[
                    {"Name": "name", "Values": [f.name]},
                    {"Name": "architecture", "Values": [f.architecture]},
                    {"Name": "state", "Values": ["available"]},
                ],
            )
            images = [i for i in images if _allowed(i, f.owners, account)]
            via = f"filter:{f.name} owners={','.join(f.owners)}"
    except (ClientError, BotoCoreError) as exc:
        raise api_error(exc, f"resolving the base AMI in {region}") from None
    if not images:
        raise AwsError(
            f"no base AMI found in {region} ({via})",
            "check the name pattern, the owners and the region",
        )
    newest = max(images, key=lambda i: str(i.get("CreationDate", "")))
    # the build puts an encrypted EBS volume on that device: an instance-store AMI has none
    if not newest.get("RootDeviceName") or newest.get("RootDeviceType", "ebs") != "ebs":
        raise AwsError(
            f"base AMI {newest['ImageId']} is not EBS-backed with a named root device "
            f"({newest.get('RootDeviceType', '?')}, {newest.get('RootDeviceName') or 'none'})",
            "use an EBS-backed base AMI",
        )
    return ResolvedAmi(
        newest["ImageId"],
        region,
        str(newest.get("OwnerId", "")),
        str(newest.get("Name", "")),
        str(newest.get("CreationDate", "")),
        via,
        str(newest["RootDeviceName"]),
    )
