"""The aws build: bakehouse launches the build instance, Packer provisions it over SSH (its
``null`` builder, the same provisioners as the local target), and bakehouse makes the AMI from
the stopped instance and copies it to the other regions.

Why bakehouse and not Packer's amazon-ebs builder makes the instance and the images: Packer
1.6.6 creates AMIs and snapshots untagged and tags them afterwards, so the pipeline's role
would need to tag any image of the account — and, holding the tag, share or deregister it. It
cannot require IMDSv2 at launch either. Here every instance, volume, AMI and snapshot is tagged
in the call that creates it (``TagSpecifications``), so the IAM policy allows tags only at
creation (``ec2:CreateAction``), and every later change only on what carries ``bakehouse:image``.

A failure after an AMI exists (a copy refused, Ctrl-C while waiting) deregisters what this run
made, snapshots included, before the error goes on: no half-made version is left behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bakehouse.aws.instances import cleanup, launch
from bakehouse.aws.publish import RegionalAmi
from bakehouse.aws.session import Aws, api_error
from bakehouse.errors import AwsError

DATA_DEVICE = "/dev/xvdf"  # /var, /var/tmp, /var/log, /var/log/audit and /home (filesystems.sh)


@dataclass(frozen=True)
class Volumes:
    root_device: str  # the base AMI's RootDeviceName
    root_size: int  # GiB
    data_size: int  # GiB
    kms_key_id: str | None  # None: the account's default EBS key


def _ebs(size: int, kms_key_id: str | None) -> dict[str, Any]:
    ebs: dict[str, Any] = {
        "VolumeSize": size,
        "VolumeType": "gp3",
        "Iops": 3000,
        "Throughput": 125,
        "DeleteOnTermination": True,
        "Encrypted": True,
    }
    if kms_key_id:
        ebs["KmsKeyId"] = kms_key_id
    return ebs


def launch_request(
    ami_id: str,
    instance_type: str,
    key_name: str | None,
    group_id: str,
    subnet_id: str | None,
    volumes: Volumes,
    tags: list[dict[str, str]],
) -> dict[str, Any]:
    """The build instance's RunInstances request (pure): IMDSv2 only from the first second,
    both volumes encrypted, tagged at launch, and stopped — never terminated — by a shutdown
    from inside, so the image can still be made."""
    request = launch(ami_id, instance_type, key_name, group_id, subnet_id, tags, shutdown="stop")
    request["BlockDeviceMappings"] = [
        {"DeviceName": volumes.root_device, "Ebs": _ebs(volumes.root_size, volumes.kms_key_id)},
        {"DeviceName": DATA_DEVICE, "Ebs": _ebs(volumes.data_size, volumes.kms_key_id)},
    ]
    return request


@dataclass(frozen=True)
class BuildInstance:
    region: str
    instance_id: str
    address: str | None


@contextlib.contextmanager
def build_instance(
    aws: Aws, region: str, request: dict[str, Any], timeout: float = 600
) -> Iterator[BuildInstance]:
    """Launch the build instance and wait until it runs; terminated when the block ends,
    whatever ends it."""
    from botocore.exceptions import BotoCoreError, ClientError, WaiterError

    ec2 = aws.client("ec2", region)
    created: dict[str, str] = {}
    try:
        try:
            reservation = ec2.run_instances(**request)
            instance_id = reservation["Instances"][0]["InstanceId"]
            created["instance"] = instance_id
            ec2.get_waiter("instance_running").wait(
                InstanceIds=[instance_id],
                WaiterConfig={"Delay": 5, "MaxAttempts": max(1, int(timeout // 5))},
            )
            inst = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0][
                "Instances"
            ][0]
        except (ClientError, BotoCoreError, WaiterError) as exc:
            raise api_error(exc, f"launching the build instance in {region}") from None
        address = inst.get("PublicIpAddress") or inst.get("PrivateIpAddress")
        yield BuildInstance(region, instance_id, address)
    finally:
        cleanup(aws, region, created)


def image_tags(
    image: str, version: str, run_id: str, fingerprint: str, base_ami: str, git_commit: str
) -> list[dict[str, str]]:
    """What every AMI of a version (and its snapshots) carries from the moment it exists."""
    return [
        {"Key": "Name", "Value": f"bakehouse-{image}-{version}"},
        {"Key": "bakehouse:image", "Value": image},
        {"Key": "bakehouse:version", "Value": version},
        {"Key": "bakehouse:run-id", "Value": run_id},
        {"Key": "bakehouse:fingerprint", "Value": fingerprint},
        {"Key": "bakehouse:base-ami", "Value": base_ami},
        {"Key": "bakehouse:git-commit", "Value": git_commit},
        {"Key": "bakehouse:state", "Value": "baked"},
    ]


def tag_specifications(tags: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The AMI and its snapshots, tagged in the call that makes them."""
    return [{"ResourceType": "image", "Tags": tags}, {"ResourceType": "snapshot", "Tags": tags}]


def capture(
    aws: Aws,
    instance: BuildInstance,
    name: str,
    description: str,
    tags: list[dict[str, str]],
    timeout: float = 3600,
) -> RegionalAmi:
    """Stop the provisioned instance (a clean shutdown, so the file systems are consistent),
    start the AMI and its snapshots, tagged as they are made. Returned as soon as it exists,
    so that a failure while waiting for it still finds it to remove."""
    from botocore.exceptions import BotoCoreError, ClientError, WaiterError

    ec2 = aws.client("ec2", instance.region)
    try:
        ec2.stop_instances(InstanceIds=[instance.instance_id])
        ec2.get_waiter("instance_stopped").wait(
            InstanceIds=[instance.instance_id],
            WaiterConfig={"Delay": 5, "MaxAttempts": max(1, int(timeout // 5))},
        )
        image = ec2.create_image(
            InstanceId=instance.instance_id,
            Name=name,
            Description=description,
            TagSpecifications=tag_specifications(tags),
        )
    except (ClientError, BotoCoreError, WaiterError) as exc:
        raise api_error(exc, f"making the AMI from {instance.instance_id}") from None
    return RegionalAmi(instance.region, str(image["ImageId"]))


def copy(
    aws: Aws,
    source: RegionalAmi,
    region: str,
    name: str,
    description: str,
    tags: list[dict[str, str]],
    kms_key_id: str | None,
) -> RegionalAmi:
    """Start the copy of ``source`` into ``region``: encrypted (with the definition's key,
    which must exist there under that id or alias), tagged as it is made."""
    from botocore.exceptions import BotoCoreError, ClientError

    request: dict[str, Any] = {
        "SourceRegion": source.region,
        "SourceImageId": source.ami_id,
        "Name": name,
        "Description": description,
        "Encrypted": True,
        "TagSpecifications": tag_specifications(tags),
    }
    if kms_key_id:
        request["KmsKeyId"] = kms_key_id
    try:
        reply = aws.client("ec2", region).copy_image(**request)
    except (ClientError, BotoCoreError) as exc:
        raise api_error(exc, f"copying {source.ami_id} to {region}") from None
    return RegionalAmi(region, str(reply["ImageId"]))


def wait_available(aws: Aws, amis: list[RegionalAmi], timeout: float = 3600) -> None:
    from botocore.exceptions import BotoCoreError, ClientError, WaiterError

    for ami in amis:
        try:
            aws.client("ec2", ami.region).get_waiter("image_available").wait(
                ImageIds=[ami.ami_id],
                WaiterConfig={"Delay": 15, "MaxAttempts": max(1, int(timeout // 15))},
            )
        except (ClientError, BotoCoreError, WaiterError) as exc:
            raise api_error(exc, f"waiting for {ami.ami_id} in {ami.region}") from None


def tagged_by_run(aws: Aws, regions: list[str], run_id: str) -> list[RegionalAmi]:
    """Every AMI carrying this run's id, in ``regions``: also one whose call returned just as
    the run was interrupted, before the run could note it."""
    from botocore.exceptions import BotoCoreError, ClientError

    found = []
    for region in regions:
        try:
            images = aws.client("ec2", region).describe_images(
                Owners=["self"], Filters=[{"Name": "tag:bakehouse:run-id", "Values": [run_id]}]
            )["Images"]
        except (ClientError, BotoCoreError):
            continue  # the AMIs noted so far are still removed; gc finds the rest by tag
        found += [RegionalAmi(region, str(i["ImageId"])) for i in images]
    return found


def discard(aws: Aws, amis: list[RegionalAmi]) -> list[str]:
    """Deregister the AMIs and delete their snapshots; keeps going past errors and returns
    them (the caller's error is the one to report)."""
    from botocore.exceptions import BotoCoreError, ClientError

    errors = []
    for ami in dict.fromkeys(amis):
        ec2 = aws.client("ec2", ami.region)
        try:
            found = ec2.describe_images(ImageIds=[ami.ami_id])["Images"]
            snapshots = [
                m["Ebs"]["SnapshotId"]
                for image in found
                for m in image.get("BlockDeviceMappings", [])
                if m.get("Ebs", {}).get("SnapshotId")
            ]
            if found:
                ec2.deregister_image(ImageId=ami.ami_id)
            for snapshot in snapshots:
                ec2.delete_snapshot(SnapshotId=snapshot)
        except (ClientError, BotoCoreError) as exc:
            errors.append(f"{ami.region} {ami.ami_id}: {exc}")
    return errors


def make_images(
    aws: Aws,
    instance: BuildInstance,
    regions: list[str],
    name: str,
    description: str,
    tags: list[dict[str, str]],
    kms_key_id: str | None,
    timeout: float = 3600,
) -> list[RegionalAmi]:
    """The AMI in the build's region, then its copies in ``regions[1:]``, all available; on any
    failure (or interruption) every AMI made so far is removed before the error goes on."""
    made: list[RegionalAmi] = []
    try:
        made.append(capture(aws, instance, name, description, tags, timeout))
        wait_available(aws, made, timeout)
        for region in regions[1:]:
            made.append(copy(aws, made[0], region, name, description, tags, kms_key_id))
        wait_available(aws, made[1:], timeout)
    except BaseException as exc:
        run_id = next(t["Value"] for t in tags if t["Key"] == "bakehouse:run-id")
        left = discard(aws, made + tagged_by_run(aws, regions, run_id))
        if left and isinstance(exc, AwsError):
            exc.hint = f"could not remove {'; '.join(left)}: run `invoke gc --target aws --yes`"
        raise
    return made
