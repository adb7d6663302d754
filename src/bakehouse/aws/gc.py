"""AWS gc: resources tagged with a bakehouse run id whose run is over, and their removal.

A run is over when it is not running on this machine and its id (which starts with its UTC start
time) is older than ``older_than``. Found: instances, volumes, key pairs, security groups,
AMIs that never passed verification (baked and left, or failed), and snapshots no registered
AMI uses. Removal goes in dependency order. Verified, published and revoked AMIs are never gc's
business: a revoked AMI may still run in a fleet (a launch template names it); prune, which
checks what uses an AMI, decides about those.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from bakehouse.aws.session import Aws, api_error

TAG = "bakehouse:run-id"
ORDER = ("instance", "volume", "key-pair", "security-group", "image", "snapshot")
KEPT = ("verified", "published", "revoked")  # AMI states that are prune's business, not gc's


@dataclass(frozen=True)
class Leftover:
    region: str
    kind: str
    id: str
    run_id: str
    detail: str = ""


def run_started(run_id: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(run_id.split("-", maxsplit=1)[0], "%Y%m%dT%H%M%SZ").replace(
            tzinfo=dt.UTC
        )
    except ValueError:
        return None


def is_over(run_id: str, active: set[str], older_than: dt.timedelta, now: dt.datetime) -> bool:
    if run_id in active:
        return False
    started = run_started(run_id)
    return started is None or now - started > older_than


def _tags(item: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in item.get("Tags", [])}


def find(
    aws: Aws,
    regions: list[str],
    active: set[str],
    older_than: dt.timedelta,
    now: dt.datetime | None = None,
) -> list[Leftover]:
    from botocore.exceptions import BotoCoreError, ClientError

    now = now or dt.datetime.now(dt.UTC)
    tagged = [{"Name": "tag-key", "Values": [TAG]}]
    out: list[Leftover] = []

    def add(region: str, kind: str, ident: str, tags: dict[str, str], detail: str = "") -> None:
        run_id = tags.get(TAG, "")
        if is_over(run_id, active, older_than, now):
            out.append(Leftover(region, kind, ident, run_id, detail))

    for region in regions:
        ec2 = aws.client("ec2", region)
        try:
            for page in ec2.get_paginator("describe_instances").paginate(
                Filters=[
                    *tagged,
                    {
                        "Name": "instance-state-name",
                        "Values": ["pending", "running", "stopping", "stopped"],
                    },
                ]
            ):
                for res in page["Reservations"]:
                    for inst in res["Instances"]:
                        add(
                            region,
                            "instance",
                            inst["InstanceId"],
                            _tags(inst),
                            inst["State"]["Name"],
                        )
            for page in ec2.get_paginator("describe_volumes").paginate(
                Filters=[*tagged, {"Name": "status", "Values": ["available"]}]
            ):
                for vol in page["Volumes"]:
                    add(region, "volume", vol["VolumeId"], _tags(vol))
            for kp in ec2.describe_key_pairs(Filters=tagged)["KeyPairs"]:
                add(region, "key-pair", kp["KeyName"], _tags(kp))
            for page in ec2.get_paginator("describe_security_groups").paginate(Filters=tagged):
                for sg in page["SecurityGroups"]:
                    add(region, "security-group", sg["GroupId"], _tags(sg), sg["GroupName"])
            in_use: set[str] = set()
            for page in ec2.get_paginator("describe_images").paginate(Owners=["self"]):
                for img in page["Images"]:
                    tags = _tags(img)
                    snaps = {
                        b["Ebs"]["SnapshotId"]
                        for b in img.get("BlockDeviceMappings", [])
                        if b.get("Ebs", {}).get("SnapshotId")
                    }
                    if TAG in tags and tags.get("bakehouse:state") not in KEPT:
                        add(
                            region,
                            "image",
                            img["ImageId"],
                            tags,
                            tags.get("bakehouse:state", "unverified"),
                        )
                    else:
                        in_use |= snaps
            for page in ec2.get_paginator("describe_snapshots").paginate(
                OwnerIds=["self"], Filters=tagged
            ):
                for snap in page["Snapshots"]:
                    if snap["SnapshotId"] not in in_use:
                        add(region, "snapshot", snap["SnapshotId"], _tags(snap))
        except (ClientError, BotoCoreError) as exc:
            raise api_error(exc, f"looking for leftovers in {region}") from None
    return sorted(out, key=lambda x: (x.region, ORDER.index(x.kind), x.id))


def remove(aws: Aws, leftovers: list[Leftover]) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    for kind in ORDER:
        for item in [x for x in leftovers if x.kind == kind]:
            ec2 = aws.client("ec2", item.region)
            try:
                if kind == "instance":
                    ec2.terminate_instances(InstanceIds=[item.id])
                    ec2.get_waiter("instance_terminated").wait(
                        InstanceIds=[item.id], WaiterConfig={"Delay": 5, "MaxAttempts": 120}
                    )
                elif kind == "volume":
                    ec2.delete_volume(VolumeId=item.id)
                elif kind == "key-pair":
                    ec2.delete_key_pair(KeyName=item.id)
                elif kind == "security-group":
                    ec2.delete_security_group(GroupId=item.id)
                elif kind == "image":
                    ec2.deregister_image(ImageId=item.id)
                elif kind == "snapshot":
                    ec2.delete_snapshot(SnapshotId=item.id)
            except (ClientError, BotoCoreError) as exc:
                raise api_error(exc, f"removing {kind} {item.id} in {item.region}") from None
