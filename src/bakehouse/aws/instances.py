"""Verification instances: launched from the new AMI (never the build instance), IMDSv2
required, and always removed — instance, key pair and security group — when the ``with`` block
ends, whatever ends it (a failed check, an API error, Ctrl-C). The build instance
(:mod:`bakehouse.aws.build`) reaches the runner the same way.

Over SSH the instance gets an ephemeral key pair and a security group open to the runner's
address on port 22 only. Over SSM it gets neither a key pair nor any inbound rule: only the
instance profile that lets its agent talk to Systems Manager.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bakehouse.aws.session import Aws, api_error
from bakehouse.errors import AwsError

IMDSV2 = {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1}


@dataclass
class VerifyInstance:
    region: str
    instance_id: str
    key_name: str | None
    key_file: Path | None
    group_id: str
    address: str | None


def resource_tags(run_id: str, image: str, role: str) -> list[dict[str, str]]:
    return [
        {"Key": "bakehouse:run-id", "Value": run_id},
        {"Key": "bakehouse:image", "Value": image},
        {"Key": "bakehouse:role", "Value": role},
        {"Key": "Name", "Value": f"bakehouse-{role}-{image}-{run_id}"},
    ]


def run_instances_request(
    ami_id: str,
    instance_type: str,
    key_name: str | None,
    group_id: str,
    subnet_id: str | None,
    run_id: str,
    image: str,
    instance_profile: str | None = None,
) -> dict[str, Any]:
    """The RunInstances request for a verification instance (pure)."""
    request = launch(
        ami_id,
        instance_type,
        key_name,
        group_id,
        subnet_id,
        resource_tags(run_id, image, "verify"),
        shutdown="terminate",
    )
    if instance_profile:
        key = "Arn" if instance_profile.startswith("arn:") else "Name"
        request["IamInstanceProfile"] = {key: instance_profile}
    return request


def launch(
    ami_id: str,
    instance_type: str,
    key_name: str | None,
    group_id: str,
    subnet_id: str | None,
    tags: list[dict[str, str]],
    shutdown: str,
) -> dict[str, Any]:
    """What every instance bakehouse launches asks for (pure): one instance, IMDSv2 only,
    bakehouse's security group (and key pair, for SSH), instance and volumes tagged at launch."""
    request: dict[str, Any] = {
        "ImageId": ami_id,
        "InstanceType": instance_type,
        "MinCount": 1,
        "MaxCount": 1,
        "SecurityGroupIds": [group_id],
        "MetadataOptions": dict(IMDSV2),
        "InstanceInitiatedShutdownBehavior": shutdown,
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": tags},
            {"ResourceType": "volume", "Tags": tags},
        ],
    }
    if key_name:
        request["KeyName"] = key_name
    if subnet_id:
        request["SubnetId"] = subnet_id
    return request


@dataclass
class Access:
    """How the runner reaches one build or verification instance: a security group (and, for
    SSH, a key pair), made by bakehouse and tagged when created, so the IAM policy can hold
    every later change to bakehouse's own resources."""

    group_id: str
    key_name: str | None
    key_file: Path | None


@contextlib.contextmanager
def access(
    aws: Aws,
    region: str,
    image: str,
    run_id: str,
    role: str,
    runner_cidr: str | None,
    subnet_id: str | None,
    workdir: Path,
) -> Iterator[Access]:
    """A security group open to ``runner_cidr`` on port 22 only (no inbound rule at all
    without one) and an ephemeral key pair for SSH, both removed when the block ends."""
    from botocore.exceptions import BotoCoreError, ClientError

    ec2 = aws.client("ec2", region)
    name = f"bakehouse-{role}-{run_id}"
    key_name = name if runner_cidr else None
    key_file = None
    created: dict[str, str] = {}
    try:
        try:
            if key_name:
                key = ec2.create_key_pair(
                    KeyName=key_name,
                    KeyType="ed25519",
                    TagSpecifications=[
                        {"ResourceType": "key-pair", "Tags": resource_tags(run_id, image, role)}
                    ],
                )
                created["key"] = key_name
                key_file = workdir / f"{role}-key"
                fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(key["KeyMaterial"])
            if subnet_id:
                vpc_id = ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]["VpcId"]
            else:
                vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])
                if not vpcs["Vpcs"]:
                    raise AwsError(
                        f"no default VPC in {region}",
                        "set targets.aws.subnet_id in the image definition",
                    )
                vpc_id = vpcs["Vpcs"][0]["VpcId"]
            reach = "SSH from the runner only" if runner_cidr else "no inbound (SSM)"
            group = ec2.create_security_group(
                GroupName=name,
                VpcId=vpc_id,
                Description=f"bakehouse {role} {image} {run_id}: {reach}",
                TagSpecifications=[
                    {"ResourceType": "security-group", "Tags": resource_tags(run_id, image, role)}
                ],
            )
            created["group"] = group["GroupId"]
            if runner_cidr:
                ec2.authorize_security_group_ingress(
                    GroupId=group["GroupId"],
                    IpPermissions=[
                        {
                            "IpProtocol": "tcp",
                            "FromPort": 22,
                            "ToPort": 22,
                            "IpRanges": [
                                {"CidrIp": runner_cidr, "Description": "bakehouse runner"}
                            ],
                        }
                    ],
                )
        except (ClientError, BotoCoreError) as exc:
            raise api_error(exc, f"preparing the {role} instance's access in {region}") from None
        yield Access(group["GroupId"], key_name, key_file)
    finally:
        cleanup(aws, region, created)


@contextlib.contextmanager
def verify_instance(
    aws: Aws,
    region: str,
    ami_id: str,
    image: str,
    run_id: str,
    runner_cidr: str | None,
    instance_type: str,
    subnet_id: str | None,
    workdir: Path,
    timeout: float = 600,
    instance_profile: str | None = None,
) -> Iterator[VerifyInstance]:
    """``runner_cidr`` set: reachable over SSH from there. ``None``: no key, no inbound rule,
    for SSM (then ``instance_profile`` is required)."""
    from botocore.exceptions import BotoCoreError, ClientError

    if runner_cidr is None and instance_profile is None:
        raise AwsError("a verification instance without SSH needs an instance profile for SSM")
    ec2 = aws.client("ec2", region)
    with access(aws, region, image, run_id, "verify", runner_cidr, subnet_id, workdir) as way:
        created: dict[str, str] = {}
        try:
            try:
                reservation = ec2.run_instances(
                    **run_instances_request(
                        ami_id,
                        instance_type,
                        way.key_name,
                        way.group_id,
                        subnet_id,
                        run_id,
                        image,
                        instance_profile,
                    )
                )
                instance_id = reservation["Instances"][0]["InstanceId"]
                created["instance"] = instance_id
                ec2.get_waiter("instance_running").wait(
                    InstanceIds=[instance_id],
                    WaiterConfig={"Delay": 5, "MaxAttempts": max(1, int(timeout // 5))},
                )
                desc = ec2.describe_instances(InstanceIds=[instance_id])
                inst = desc["Reservations"][0]["Instances"][0]
                address = inst.get("PublicIpAddress") or inst.get("PrivateIpAddress")
            except (ClientError, BotoCoreError) as exc:
                raise api_error(exc, f"launching the verification instance in {region}") from None
            yield VerifyInstance(
                region, instance_id, way.key_name, way.key_file, way.group_id, address
            )
        finally:
            cleanup(aws, region, created)


def cleanup(aws: Aws, region: str, created: dict[str, str], timeout: float = 600) -> None:
    """Remove what ``verify_instance``, ``access`` or the build made, in dependency order;
    keeps going past errors."""
    from botocore.exceptions import BotoCoreError, ClientError, WaiterError

    ec2 = aws.client("ec2", region)
    errors = []
    if "instance" in created:
        try:
            ec2.terminate_instances(InstanceIds=[created["instance"]])
            ec2.get_waiter("instance_terminated").wait(
                InstanceIds=[created["instance"]],
                WaiterConfig={"Delay": 5, "MaxAttempts": max(1, int(timeout // 5))},
            )
        except (ClientError, BotoCoreError, WaiterError) as exc:
            errors.append(f"instance {created['instance']}: {exc}")
    if "group" in created:
        deadline = time.monotonic() + 120
        while True:
            try:
                ec2.delete_security_group(GroupId=created["group"])
                break
            except ClientError as exc:  # DependencyViolation while the instance goes away
                if time.monotonic() > deadline:
                    errors.append(f"security group {created['group']}: {exc}")
                    break
                time.sleep(5)
            except BotoCoreError as exc:
                errors.append(f"security group {created['group']}: {exc}")
                break
    if "key" in created:
        try:
            ec2.delete_key_pair(KeyName=created["key"])
        except (ClientError, BotoCoreError) as exc:
            errors.append(f"key pair {created['key']}: {exc}")
    if errors:
        raise AwsError(
            "could not remove everything the run launched in " + region + ": " + "; ".join(errors),
            "run `invoke gc --target aws --yes` to remove what is left",
        )
