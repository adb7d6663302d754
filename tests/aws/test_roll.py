"""Roll: launch-template and group plumbing, selection and the plan against the moto server;
the instance-refresh state machine against botocore's Stubber.

moto has launch templates and auto-scaling groups but no instance refresh (start, describe,
cancel and rollback answer HTTP 500), so every refresh scenario below runs against botocore's
Stubber, which checks each request against the real Auto Scaling service model and answers with
real response shapes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber

from bakehouse.aws import roll as rl
from bakehouse.aws.session import Aws
from bakehouse.errors import AwsError, Terminated
from bakehouse.spec import Catalog, Roll
from tests.aws.conftest import REGIONS, client
from tests.conftest import ROOT, TODAY

pytestmark = pytest.mark.usefixtures("aws_env")
SELECTOR = {"bakehouse:role": "web"}


def web_roll() -> Roll:
    return Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("web", TODAY).roll


def make_group(
    region: str, name: str, ami: str, role: str = "web", version: str = "$Default"
) -> str:
    ec2 = client("ec2", region)
    lt = ec2.create_launch_template(
        LaunchTemplateName=f"{name}-lt",
        LaunchTemplateData={
            "ImageId": ami,
            "InstanceType": "t3.small",
            "UserData": "IyEvYmluL3NoCmVjaG8gaGk=",
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": [{"Key": "app", "Value": name}]}
            ],
        },
    )
    lt_id = lt["LaunchTemplate"]["LaunchTemplateId"]
    client("autoscaling", region).create_auto_scaling_group(
        AutoScalingGroupName=name,
        MinSize=2,
        MaxSize=4,
        DesiredCapacity=2,
        LaunchTemplate={"LaunchTemplateId": lt_id, "Version": version},
        AvailabilityZones=[f"{region}a"],
        Tags=[{"Key": "bakehouse:role", "Value": role, "PropagateAtLaunch": True}],
    )
    return str(lt_id)


@pytest.fixture
def fleet() -> dict[str, Any]:
    """Three web groups in two regions (one pinned to $Latest), one other group."""
    old = "ami-0d0000000000000a1"
    ids = {
        "web-a": make_group(REGIONS[0], "web-a", old),
        "web-b": make_group(REGIONS[0], "web-b", old, version="$Latest"),
        "web-c": make_group(REGIONS[1], "web-c", old),
        "api": make_group(REGIONS[0], "api", old, role="api"),
    }
    return {"old": old, "new": "ami-0d0000000000000a2", "ids": ids}


def test_selection_and_plan(fleet: dict[str, Any]) -> None:
    aws = Aws()
    groups = rl.gather(aws, SELECTOR, REGIONS)
    assert sorted((g.region, g.name) for g in groups) == [
        (REGIONS[1], "web-c"),
        (REGIONS[0], "web-a"),
        (REGIONS[0], "web-b"),
    ]
    by_name = {g.name: g for g in groups}
    assert by_name["web-b"].version_spec == "$Latest" and by_name["web-b"].version == 1
    # the AMI per instance comes from EC2, not from the group's configuration
    assert by_name["web-a"].current_amis == [fleet["old"]]
    assert len(by_name["web-a"].instance_amis) == 2
    images = {REGIONS[0]: fleet["new"], REGIONS[1]: fleet["new"]}
    plans = rl.plan(groups, images, web_roll())
    assert [p.wave for p in plans] == [1, 2, 2]
    canary = plans[0]
    assert canary.preferences["CheckpointPercentages"] == [10, 20, 50, 100]
    assert plans[1].preferences["CheckpointPercentages"] == [20, 50, 100]
    assert plans[1].preferences["AlarmSpecification"] == {
        "Alarms": ["web-5xx-rate", "web-p99-latency"]
    }
    assert all(p.new_version == 2 for p in plans)
    assert plans[0].to_dict()["rollback_restores"].endswith("v1")


def test_plan_is_O_groups_in_api_calls(fleet: dict[str, Any]) -> None:
    aws = Aws()
    rl.gather(aws, SELECTOR, REGIONS)
    calls = aws.calls
    # per region: groups (1 page), templates (1), instances (1), refreshes (1 per group)
    assert calls[("autoscaling", "DescribeAutoScalingGroups")] == 2
    assert calls[("ec2", "DescribeLaunchTemplateVersions")] == 3  # one per template
    assert calls[("ec2", "DescribeInstances")] == 2


def test_region_without_the_image_is_an_error(fleet: dict[str, Any]) -> None:
    groups = rl.gather(Aws(), SELECTOR, REGIONS)
    with pytest.raises(AwsError, match=f"no image to roll in {REGIONS[1]}"):
        rl.plan(groups, {REGIONS[0]: fleet["new"]}, web_roll())


def test_new_version_carries_the_whole_data(fleet: dict[str, Any]) -> None:
    aws = Aws()
    group = next(g for g in rl.gather(aws, SELECTOR, REGIONS) if g.name == "web-a")
    version = rl.create_version(aws, group, fleet["new"], "bakehouse web stable")
    versions = client("ec2").describe_launch_template_versions(LaunchTemplateId=group.template_id)[
        "LaunchTemplateVersions"
    ]
    data = {v["VersionNumber"]: v["LaunchTemplateData"] for v in versions}
    assert version == 2
    assert data[2]["ImageId"] == fleet["new"]
    assert data[2]["MetadataOptions"]["HttpTokens"] == "required"
    for key in ("InstanceType", "UserData", "TagSpecifications"):
        assert data[2][key] == data[1][key], key


def test_new_version_data_is_pure() -> None:
    current = {
        "ImageId": "ami-old",
        "InstanceType": "t3.small",
        "MetadataOptions": {"HttpTokens": "optional"},
    }
    data = rl.new_version_data(current, "ami-new")
    assert data == {
        "ImageId": "ami-new",
        "InstanceType": "t3.small",
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
    }
    assert current["ImageId"] == "ami-old"


def test_channel_must_point_at_a_published_ami() -> None:
    ssm, ec2 = client("ssm"), client("ec2")
    ssm.put_parameter(
        Name="/bakehouse/web/stable",
        Value="ami-0d0000000000000a2",
        Type="String",
        DataType="aws:ec2:image",
    )
    with pytest.raises(AwsError, match="which is not a bakehouse image") as caught:
        rl.channel_images(Aws(), "web", "stable", [REGIONS[0]])
    assert caught.value.hint and "only published" in caught.value.hint
    ec2.create_tags(
        Resources=["ami-0d0000000000000a2"], Tags=[{"Key": "bakehouse:state", "Value": "published"}]
    )
    assert rl.channel_images(Aws(), "web", "stable", REGIONS) == {
        REGIONS[0]: "ami-0d0000000000000a2"
    }


# ---- the instance refresh state machine (Stubber) -----------------------------------------------

GROUP = rl.Group(REGIONS[0], "web-a", "lt-0123456789abcdef0", "web-a-lt", "$Default", 1, 1)


def refresh(
    status: str, pct: int = 0, reason: str | None = None, to_update: int = 2
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "InstanceRefreshId": "r-1",
        "AutoScalingGroupName": "web-a",
        "Status": status,
        "PercentageComplete": pct,
        "InstancesToUpdate": to_update,
    }
    if reason:
        item["StatusReason"] = reason
    return {"InstanceRefreshes": [item]}


DESCRIBE = {"AutoScalingGroupName": "web-a", "InstanceRefreshIds": ["r-1"]}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def stubbed() -> Iterator[tuple[Aws, Stubber]]:
    aws = Aws()
    asg = aws.client("autoscaling", REGIONS[0])
    with Stubber(asg) as stub:
        yield aws, stub
        stub.assert_no_pending_responses()


def run_watch(
    aws: Aws,
    auto_rollback: bool = True,
    timeout: float = 3600,
    clock: Clock | None = None,
    sleep: Any = None,
) -> rl.Watched:
    clock = clock or Clock()
    lines: list[str] = []
    out = rl.watch(
        aws,
        GROUP,
        "r-1",
        auto_rollback,
        timeout,
        say=lines.append,
        sleep=sleep or clock.sleep,
        clock=clock,
    )
    run_watch.lines = lines  # type: ignore[attr-defined]
    return out


def test_start_refresh_request(stubbed: tuple[Aws, Stubber]) -> None:
    aws, stub = stubbed
    prefs = rl.preferences(web_roll())
    stub.add_response(
        "start_instance_refresh",
        {"InstanceRefreshId": "r-1"},
        {
            "AutoScalingGroupName": "web-a",
            "Strategy": "Rolling",
            "DesiredConfiguration": {
                "LaunchTemplate": {"LaunchTemplateId": GROUP.template_id, "Version": "7"}
            },
            "Preferences": prefs,
        },
    )
    assert rl.start_refresh(aws, GROUP, 7, prefs) == "r-1"
    assert prefs["AutoRollback"] is True and prefs["MaxHealthyPercentage"] == 110
    assert prefs["BakeTime"] == 600 and prefs["SkipMatching"] is True


def test_pending_in_progress_successful(stubbed: tuple[Aws, Stubber]) -> None:
    aws, stub = stubbed
    for response in (
        refresh("Pending"),
        refresh("InProgress", 50, to_update=1),
        refresh("Successful", 100, to_update=0),
    ):
        stub.add_response("describe_instance_refreshes", response, DESCRIBE)
    out = run_watch(aws)
    assert (out.status, out.polls, out.rolled_back) == ("Successful", 3, False)
    assert any("InProgress 50%" in line for line in run_watch.lines)  # type: ignore[attr-defined]


def test_failed_without_auto_rollback_is_rolled_back(stubbed: tuple[Aws, Stubber]) -> None:
    aws, stub = stubbed
    stub.add_response("describe_instance_refreshes", refresh("InProgress", 20), DESCRIBE)
    stub.add_response(
        "describe_instance_refreshes",
        refresh("Failed", 20, "instances failed health checks"),
        DESCRIBE,
    )
    stub.add_response(
        "rollback_instance_refresh", {"InstanceRefreshId": "r-1"}, {"AutoScalingGroupName": "web-a"}
    )
    stub.add_response("describe_instance_refreshes", refresh("RollbackInProgress", 20), DESCRIBE)
    stub.add_response("describe_instance_refreshes", refresh("RollbackSuccessful", 100), DESCRIBE)
    out = run_watch(aws, auto_rollback=False)
    assert (out.status, out.rolled_back) == ("RollbackSuccessful", True)


def test_auto_rollback_is_left_to_aws(stubbed: tuple[Aws, Stubber]) -> None:
    aws, stub = stubbed
    for response in (
        refresh("InProgress", 30),
        refresh("RollbackInProgress", 30, "alarm web-5xx-rate went off"),
        refresh("RollbackSuccessful", 100),
    ):
        stub.add_response("describe_instance_refreshes", response, DESCRIBE)
    out = run_watch(aws, auto_rollback=True)
    assert (out.status, out.rolled_back) == ("RollbackSuccessful", False)


def test_cancelled(stubbed: tuple[Aws, Stubber]) -> None:
    aws, stub = stubbed
    stub.add_response("describe_instance_refreshes", refresh("Cancelling"), DESCRIBE)
    stub.add_response("describe_instance_refreshes", refresh("Cancelled"), DESCRIBE)
    assert run_watch(aws).status == "Cancelled"


def test_checkpoint_pause_is_reported(stubbed: tuple[Aws, Stubber]) -> None:
    aws, stub = stubbed
    pause = "Waiting for checkpoint (20% complete), 300 seconds"
    for response in (
        refresh("InProgress", 20, pause),
        refresh("InProgress", 20, pause),
        refresh("InProgress", 60),
        refresh("Successful", 100),
    ):
        stub.add_response("describe_instance_refreshes", response, DESCRIBE)
    out = run_watch(aws)
    assert out.status == "Successful"
    assert sum(pause in line for line in run_watch.lines) == 2  # type: ignore[attr-defined]


def test_timeout_rolls_back(stubbed: tuple[Aws, Stubber]) -> None:
    aws, stub = stubbed
    clock = Clock()
    stub.add_response("describe_instance_refreshes", refresh("InProgress", 10), DESCRIBE)
    stub.add_response("describe_instance_refreshes", refresh("InProgress", 10), DESCRIBE)
    stub.add_response(
        "rollback_instance_refresh", {"InstanceRefreshId": "r-1"}, {"AutoScalingGroupName": "web-a"}
    )
    stub.add_response("describe_instance_refreshes", refresh("RollbackSuccessful", 100), DESCRIBE)
    out = run_watch(aws, timeout=4, clock=clock)
    assert (out.status, out.rolled_back) == ("RollbackSuccessful", True)


@pytest.mark.parametrize(
    "stop",
    [KeyboardInterrupt(), Terminated("stopped by signal SIGTERM")],
    ids=["ctrl-c", "sigterm"],
)
def test_a_stopped_watch_rolls_back_and_waits(
    stubbed: tuple[Aws, Stubber], stop: BaseException
) -> None:
    """Ctrl-C, or a cancelled CI job's SIGTERM (turned into Terminated), rolls the group back."""
    aws, stub = stubbed
    calls = {"n": 0}

    def sleep(seconds: float) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise stop

    stub.add_response("describe_instance_refreshes", refresh("InProgress", 10), DESCRIBE)
    stub.add_response(
        "rollback_instance_refresh", {"InstanceRefreshId": "r-1"}, {"AutoScalingGroupName": "web-a"}
    )
    stub.add_response("describe_instance_refreshes", refresh("RollbackInProgress", 10), DESCRIBE)
    stub.add_response("describe_instance_refreshes", refresh("RollbackSuccessful", 100), DESCRIBE)
    with pytest.raises(type(stop)):
        run_watch(aws, sleep=sleep)
    stub.assert_no_pending_responses()


def test_refresh_in_progress_is_refused(stubbed: tuple[Aws, Stubber]) -> None:
    aws, stub = stubbed
    stub.add_response(
        "describe_instance_refreshes",
        refresh("InProgress", 40),
        {"AutoScalingGroupName": "web-a", "MaxRecords": 5},
    )
    busy = rl._active_refreshes(aws.client("autoscaling", REGIONS[0]), ["web-a"])
    assert busy == {"web-a": "r-1"}
    group = rl.Group(REGIONS[0], "web-a", "lt-1", "web-a-lt", "1", 1, 1, {}, busy["web-a"])
    plans = rl.plan([group], {REGIONS[0]: "ami-1"}, web_roll())
    assert rl.busy_groups(plans) == [group]


def test_waves_stop_at_the_first_failing_group(
    stubbed: tuple[Aws, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    aws, stub = stubbed
    groups = [
        rl.Group(REGIONS[0], n, f"lt-{n}", f"{n}-lt", "$Default", 1, 1)
        for n in ("a-canary", "b", "c")
    ]
    plans = rl.plan(groups, {REGIONS[0]: "ami-new"}, web_roll())
    monkeypatch.setattr(rl, "create_version", lambda *a, **k: 2)
    stub.add_response("start_instance_refresh", {"InstanceRefreshId": "r-1"})
    stub.add_response(
        "describe_instance_refreshes",
        refresh("RollbackSuccessful"),
        {"AutoScalingGroupName": "a-canary", "InstanceRefreshIds": ["r-1"]},
    )
    clock = Clock()
    results = rl.execute(
        aws, plans, web_roll(), "web", "stable", say=lambda m: None, sleep=clock.sleep, clock=clock
    )
    assert [r["outcome"] for r in results] == [
        "RollbackSuccessful: back on v1",
        "not started (an earlier group failed)",
        "not started (an earlier group failed)",
    ]


def test_backoff_slows_polling() -> None:
    b = rl.Backoff(start=5, factor=1.5, cap=60)
    delays = [b() for _ in range(10)]
    assert delays[:3] == [5, 7.5, 11.25] and max(delays) == 60


def test_dry_run_plan_from_the_command_line(
    fleet: dict[str, Any],
    copy_project,  # type: ignore[no-untyped-def]
    tmp_path: Any,
) -> None:
    """`invoke roll --target aws --dry-run` for three groups in two regions (the README shows
    this output): the channel's image is a recorded, published version."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from bakehouse.lifecycle.channels import publish
    from bakehouse.project import Project
    from bakehouse.targets.aws import AwsTarget
    from tests.recorded import record_version

    root = copy_project()
    shutil.copytree(ROOT / "tests" / "hardening", root / "tests" / "hardening")
    web = root / "images" / "web.yaml"
    web.write_text(web.read_text() + "targets:\n  aws:\n    regions: [eu-west-1, eu-central-1]\n")
    target = AwsTarget(Project(root))
    spec = Catalog(root / "images", root / "packer" / "scripts").load("web", TODAY)
    record = record_version(target, spec, "20261128.000000", tmp_path)
    publish(target, spec, ["stable"])
    env = {**os.environ, "BAKEHOUSE_STATE_DIR": str(tmp_path / "state")}
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "bakehouse"),
            "roll",
            "--image",
            "web",
            "--target",
            "aws",
            "--channel",
            "stable",
            "--dry-run",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["WAVE", "REGION", "GROUP"]
    assert [line.split()[:3] for line in lines[1:4]] == [
        ["1", REGIONS[1], "web-c"],
        ["2", REGIONS[0], "web-a"],
        ["2", REGIONS[0], "web-b"],
    ]
    new = {a["region"]: a["ami_id"] for a in record["amis"]}
    assert f"v2 {new[REGIONS[1]]}" in lines[1] and f"v2 {new[REGIONS[0]]}" in lines[2]
    assert "dry run: nothing changed" in result.stdout
    print(result.stdout)
