"""Roll auto-scaling groups onto a published image: launch template version + instance refresh.

The rules that keep rollback working (pointing a group at ``$Latest``/``$Default`` or at an SSM
parameter disables instance refresh's AutoRollback):

- the new launch template version carries the *whole* data of the group's current version with
  only ``ImageId`` changed (no reliance on ``SourceVersion`` inheritance), IMDSv2 kept required;
- the refresh's ``DesiredConfiguration`` pins that explicit version number, never ``$Latest``;
- on failure, cancellation, timeout or Ctrl-C the refresh is rolled back (unless AutoRollback
  already did), so the group returns to its previous version.

``gather`` reads (O(groups) calls), ``plan`` is pure, ``execute`` acts, ``watch`` polls with
backoff and a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bakehouse.aws.session import Aws, api_error
from bakehouse.errors import AwsError, Terminated
from bakehouse.spec import Roll

ACTIVE = ("Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking")
SUCCESS = ("Successful",)


@dataclass
class Group:
    region: str
    name: str
    template_id: str
    template_name: str
    version_spec: str  # what the group points at: a number, $Default or $Latest
    version: int  # that resolved to a number
    latest_version: int
    instance_amis: dict[str, str] = field(default_factory=dict)
    active_refresh: str | None = None

    @property
    def current_amis(self) -> list[str]:
        return sorted(set(self.instance_amis.values()))


@dataclass
class GroupPlan:
    group: Group
    image: str
    wave: int
    preferences: dict[str, Any]
    new_version: int  # expected number of the version bakehouse creates

    def to_dict(self) -> dict[str, Any]:
        g = self.group
        return {
            "wave": self.wave,
            "region": g.region,
            "group": g.name,
            "launch_template": g.template_name,
            "current_version": g.version,
            "group_points_at": g.version_spec,
            "current_amis": g.current_amis,
            "instances": len(g.instance_amis),
            "new_image": self.image,
            "new_version": self.new_version,
            "preferences": self.preferences,
            "rollback_restores": f"{g.template_name} v{g.version}",
            "refresh_in_progress": g.active_refresh,
        }


def preferences(roll: Roll) -> dict[str, Any]:
    """StartInstanceRefresh Preferences from the image definition (pure)."""
    prefs: dict[str, Any] = {
        "MinHealthyPercentage": roll.min_healthy,
        "MaxHealthyPercentage": roll.max_healthy,
        "InstanceWarmup": roll.warmup,
        "SkipMatching": roll.skip_matching,
        "AutoRollback": roll.auto_rollback,
        "ScaleInProtectedInstances": roll.scale_in_protected,
        "StandbyInstances": roll.standby,
    }
    if roll.checkpoints:
        points = list(roll.checkpoints)
        if points[-1] != 100:
            points.append(100)  # otherwise the refresh stops at the last checkpoint
        prefs["CheckpointPercentages"] = points
        prefs["CheckpointDelay"] = roll.checkpoint_delay
    if roll.alarms:
        prefs["AlarmSpecification"] = {"Alarms": list(roll.alarms)}
    if roll.bake_time:
        prefs["BakeTime"] = roll.bake_time
    return prefs


def plan(groups: list[Group], images: dict[str, str], roll: Roll) -> list[GroupPlan]:
    """Waves: a canary group first (when canary_percentage is set, its refresh pauses at that
    percentage first), then every other group. Groups in regions without the image are an
    error, not a silent skip."""
    missing = sorted({g.region for g in groups} - set(images))
    if missing:
        raise AwsError(
            f"no image to roll in {', '.join(missing)}",
            "publish the image to that region's channel first",
        )
    ordered = sorted(groups, key=lambda g: (g.region, g.name))
    out = []
    for i, group in enumerate(ordered):
        prefs = preferences(roll)
        wave = 1 if i == 0 and len(ordered) > 1 else (2 if len(ordered) > 1 else 1)
        if wave == 1 and roll.canary_percentage and len(ordered) > 1:
            points = sorted({roll.canary_percentage, *prefs.get("CheckpointPercentages", [100])})
            prefs["CheckpointPercentages"] = points
            prefs.setdefault("CheckpointDelay", roll.checkpoint_delay or 600)
        out.append(GroupPlan(group, images[group.region], wave, prefs, group.latest_version + 1))
    return out


def gather(aws: Aws, selector: dict[str, str], regions: list[str]) -> list[Group]:
    from botocore.exceptions import BotoCoreError, ClientError

    if not selector:
        raise AwsError(
            "the image definition has no roll.selector",
            "set roll.selector to the tags of the auto-scaling groups to roll",
        )
    groups: list[Group] = []
    for region in regions:
        asg = aws.client("autoscaling", region)
        ec2 = aws.client("ec2", region)
        try:
            found = []
            filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in selector.items()]
            for page in asg.get_paginator("describe_auto_scaling_groups").paginate(Filters=filters):
                found.extend(page["AutoScalingGroups"])
            if not found:
                continue
            specs = {}
            for g in found:
                spec = g.get("LaunchTemplate") or g.get("MixedInstancesPolicy", {}).get(
                    "LaunchTemplate", {}
                ).get("LaunchTemplateSpecification")
                if not spec:
                    raise AwsError(
                        f"group {g['AutoScalingGroupName']} in {region} uses a launch "
                        "configuration",
                        "move it to a launch template first",
                    )
                specs[g["AutoScalingGroupName"]] = spec
            # one call per template gives its default and latest version numbers
            templates: dict[str, dict[str, Any]] = {}
            for spec in specs.values():
                ref = (
                    {"LaunchTemplateId": spec["LaunchTemplateId"]}
                    if "LaunchTemplateId" in spec
                    else {"LaunchTemplateName": spec["LaunchTemplateName"]}
                )
                key = next(iter(ref.values()))
                if key in templates:
                    continue
                versions = ec2.describe_launch_template_versions(
                    **ref, Versions=["$Default", "$Latest"]
                )["LaunchTemplateVersions"]
                templates[key] = {
                    "LaunchTemplateId": versions[0]["LaunchTemplateId"],
                    "LaunchTemplateName": versions[0]["LaunchTemplateName"],
                    "DefaultVersionNumber": next(
                        v["VersionNumber"] for v in versions if v.get("DefaultVersion")
                    ),
                    "LatestVersionNumber": max(v["VersionNumber"] for v in versions),
                }
            instance_ids = [i["InstanceId"] for g in found for i in g.get("Instances", [])]
            amis: dict[str, str] = {}
            for start in range(0, len(instance_ids), 500):
                chunk_ids = instance_ids[start : start + 500]
                for page in ec2.get_paginator("describe_instances").paginate(InstanceIds=chunk_ids):
                    for res in page["Reservations"]:
                        for inst in res["Instances"]:
                            amis[inst["InstanceId"]] = inst["ImageId"]
            refreshing = _active_refreshes(asg, [g["AutoScalingGroupName"] for g in found])
        except (ClientError, BotoCoreError) as exc:
            raise api_error(exc, f"reading auto-scaling groups in {region}") from None
        for g in found:
            name = g["AutoScalingGroupName"]
            spec = specs[name]
            lt = templates[spec.get("LaunchTemplateId") or spec["LaunchTemplateName"]]
            version_spec = str(spec.get("Version", "$Default"))
            version = {
                "$Default": lt["DefaultVersionNumber"],
                "$Latest": lt["LatestVersionNumber"],
            }.get(version_spec)
            groups.append(
                Group(
                    region,
                    name,
                    lt["LaunchTemplateId"],
                    lt["LaunchTemplateName"],
                    version_spec,
                    int(version if version is not None else version_spec),
                    int(lt["LatestVersionNumber"]),
                    {
                        i["InstanceId"]: amis.get(i["InstanceId"], "?")
                        for i in g.get("Instances", [])
                    },
                    refreshing.get(name),
                )
            )
    return groups


def _active_refreshes(asg: Any, names: list[str]) -> dict[str, str]:
    """Group → id of a refresh still running (a call that fails is an error, never "none")."""
    out: dict[str, str] = {}
    for name in names:
        resp = asg.describe_instance_refreshes(AutoScalingGroupName=name, MaxRecords=5)
        for r in resp.get("InstanceRefreshes", []):
            if r["Status"] in ACTIVE:
                out[name] = r["InstanceRefreshId"]
                break
    return out


def new_version_data(current: dict[str, Any], image_id: str) -> dict[str, Any]:
    """The full launch template data of the current version with only ImageId changed, and
    IMDSv2 kept (or made) required (pure)."""
    data = dict(current)
    data["ImageId"] = image_id
    metadata = dict(data.get("MetadataOptions") or {})
    metadata["HttpTokens"] = "required"
    metadata.setdefault("HttpEndpoint", "enabled")
    data["MetadataOptions"] = metadata
    return data


def create_version(aws: Aws, group: Group, image_id: str, description: str) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    ec2 = aws.client("ec2", group.region)
    try:
        current = ec2.describe_launch_template_versions(
            LaunchTemplateId=group.template_id, Versions=[str(group.version)]
        )["LaunchTemplateVersions"][0]["LaunchTemplateData"]
        created = ec2.create_launch_template_version(
            LaunchTemplateId=group.template_id,
            VersionDescription=description[:255],
            LaunchTemplateData=new_version_data(current, image_id),
        )
    except (ClientError, BotoCoreError) as exc:
        raise api_error(exc, f"creating a launch template version for {group.name}") from None
    return int(created["LaunchTemplateVersion"]["VersionNumber"])


def start_refresh(aws: Aws, group: Group, version: int, prefs: dict[str, Any]) -> str:
    asg = aws.client("autoscaling", group.region)
    resp = asg.start_instance_refresh(
        AutoScalingGroupName=group.name,
        Strategy="Rolling",
        DesiredConfiguration={
            "LaunchTemplate": {"LaunchTemplateId": group.template_id, "Version": str(version)}
        },
        Preferences=prefs,
    )
    return str(resp["InstanceRefreshId"])


@dataclass
class Watched:
    status: str
    reason: str
    percentage: int
    polls: int
    rolled_back: bool
    seconds: float


class Backoff:
    """Poll intervals: start, multiply, cap (explicit, so tests and benchmarks can count)."""

    def __init__(self, start: float = 5.0, factor: float = 1.5, cap: float = 60.0):
        self.next = start
        self.factor = factor
        self.cap = cap

    def __call__(self) -> float:
        delay = self.next
        self.next = min(self.cap, self.next * self.factor)
        return delay


def watch(
    aws: Aws,
    group: Group,
    refresh_id: str,
    auto_rollback: bool,
    timeout: float,
    say: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    backoff: Backoff | None = None,
) -> Watched:
    """Poll a refresh until it ends or the deadline passes. On failure without AutoRollback, on
    timeout and on Ctrl-C, roll it back and wait for the rollback to end."""
    asg = aws.client("autoscaling", group.region)
    backoff = backoff or Backoff()
    start = clock()
    polls = 0
    last: dict[str, Any] = {}
    rolled_back = False

    def describe() -> dict[str, Any]:
        nonlocal polls
        polls += 1
        items = asg.describe_instance_refreshes(
            AutoScalingGroupName=group.name, InstanceRefreshIds=[refresh_id]
        )
        return dict(items["InstanceRefreshes"][0])

    def rollback(why: str) -> None:
        nonlocal rolled_back
        say(f"roll: {group.region}/{group.name}: {why}; rolling back")
        asg.rollback_instance_refresh(AutoScalingGroupName=group.name)
        rolled_back = True

    try:
        while True:
            last = describe()
            status = last["Status"]
            say(
                f"roll: {group.region}/{group.name}: {status} {last.get('PercentageComplete', 0)}%"
                f" ({last.get('InstancesToUpdate', '?')} to update)"
                + (f" — {last['StatusReason']}" if last.get("StatusReason") else "")
            )
            if status in SUCCESS:
                break
            if status in ("RollbackSuccessful", "RollbackFailed", "Cancelled"):
                break
            if status == "Failed":
                if not auto_rollback and not rolled_back:
                    rollback("the refresh failed")
                    continue
                break
            if clock() - start > timeout:
                if status != "RollbackInProgress" and not rolled_back:
                    rollback(f"no result after {timeout:.0f}s")
                    start = clock()  # give the rollback its own deadline
                    timeout = max(timeout, 600)
                    continue
                break
            sleep(backoff())
    except (KeyboardInterrupt, Terminated):  # Ctrl-C or SIGTERM: roll back, then stop
        if last.get("Status") in ("Pending", "InProgress", "Baking") and not rolled_back:
            rollback("interrupted")
            while describe()["Status"] == "RollbackInProgress":
                sleep(backoff())
        raise
    return Watched(
        last.get("Status", "?"),
        last.get("StatusReason", ""),
        int(last.get("PercentageComplete", 0)),
        polls,
        rolled_back,
        clock() - start,
    )


def busy_groups(plans: list[GroupPlan]) -> list[Group]:
    """Groups with a refresh already running: a new roll must not start on them."""
    return [p.group for p in plans if p.group.active_refresh]


def channel_images(aws: Aws, image: str, channel: str, regions: list[str]) -> dict[str, str]:
    """The AMI a channel points to in each region; refuses an AMI that is not published."""
    from botocore.exceptions import BotoCoreError, ClientError

    from bakehouse.aws.publish import channel_parameter

    out = {}
    for region in regions:
        try:
            value = aws.client("ssm", region).get_parameter(Name=channel_parameter(image, channel))[
                "Parameter"
            ]["Value"]
            found = aws.client("ec2", region).describe_images(ImageIds=[value])["Images"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
                continue
            raise api_error(exc, f"reading channel {channel} in {region}") from None
        except BotoCoreError as exc:
            raise api_error(exc, f"reading channel {channel} in {region}") from None
        tags = {t["Key"]: t["Value"] for t in (found[0].get("Tags", []) if found else [])}
        if not found or tags.get("bakehouse:state") != "published":
            raise AwsError(
                f"channel {channel} in {region} points at {value}, which is "
                f"{tags.get('bakehouse:state', 'not a bakehouse image')}",
                "only published (verified) images are rolled out",
            )
        out[region] = value
    if not out:
        raise AwsError(
            f"channel {channel} of {image} is not published in any region",
            f"bake and publish it: invoke bake --image {image} --target aws",
        )
    return out


def execute(
    aws: Aws,
    plans: list[GroupPlan],
    roll: Roll,
    image: str,
    version_label: str,
    say: Callable[[str], None] = print,
    **watch_args: Any,
) -> list[dict[str, Any]]:
    """Wave by wave; the first group that does not succeed stops the roll."""
    results: list[dict[str, Any]] = []
    stopped = False
    for plan_ in sorted(plans, key=lambda p: (p.wave, p.group.region, p.group.name)):
        g = plan_.group
        entry: dict[str, Any] = {
            "region": g.region,
            "group": g.name,
            "wave": plan_.wave,
            "before": g.version,
            "after": None,
            "image": plan_.image,
        }
        results.append(entry)
        if stopped:
            entry["outcome"] = "not started (an earlier group failed)"
            continue
        version = create_version(aws, g, plan_.image, f"bakehouse {image} {version_label}")
        entry["after"] = version
        say(
            f"roll: {g.region}/{g.name}: {g.template_name} v{g.version} -> v{version} "
            f"({plan_.image})"
        )
        refresh = start_refresh(aws, g, version, plan_.preferences)
        entry["refresh"] = refresh
        try:
            watched = watch(
                aws, g, refresh, roll.auto_rollback, roll.timeout, say=say, **watch_args
            )
        except (KeyboardInterrupt, Terminated):
            entry["outcome"] = "interrupted: rolled back"
            raise
        entry.update(
            {
                "status": watched.status,
                "reason": watched.reason,
                "rolled_back": watched.rolled_back,
                "polls": watched.polls,
            }
        )
        if watched.status in SUCCESS:
            entry["outcome"] = "updated"
        else:
            entry["outcome"] = (
                f"{watched.status}: back on v{g.version}"
                if watched.status.startswith("Rollback") or watched.rolled_back
                else watched.status
            )
            stopped = True
    return results
