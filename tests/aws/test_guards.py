"""Each AWS-side guard on its own: a test here fails when that guard alone is removed, with
its twin (the lifecycle's rule, the other owner check) still in place.

Against the moto server where it can answer; where the point is the exact request AWS
receives, or an answer moto cannot give (an API that returns someone else's AMI despite the
owner filter), botocore's Stubber checks the request against the real service model."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError
from botocore.stub import ANY, Stubber

from bakehouse.aws import prune
from bakehouse.aws import roll as rl
from bakehouse.aws.publish import RegionalAmi, channel_parameter, tag_state
from bakehouse.aws.resolve import resolve
from bakehouse.aws.session import Aws
from bakehouse.errors import AwsError, UsageError
from bakehouse.lifecycle import channels
from bakehouse.progress import Progress
from bakehouse.project import Project
from bakehouse.spec import AmiFilter, AwsBase, Catalog
from bakehouse.targets.aws import AwsTarget, amis_of
from tests.aws.conftest import ATTACKER, DEBIAN_OWNER, REGIONS, client
from tests.conftest import ROOT, TODAY
from tests.recorded import make_ami, record_version

pytestmark = pytest.mark.usefixtures("aws_env")
FILTER = AwsBase(None, AmiFilter("debian-13-amd64-*", (DEBIAN_OWNER,), "x86_64"), "admin")


def web() -> Any:
    return Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("web", TODAY)


def image(ami: str, owner: str, created: str) -> dict[str, Any]:
    return {
        "ImageId": ami,
        "OwnerId": owner,
        "Name": "debian-13-amd64-x",
        "CreationDate": created,
        "RootDeviceName": "/dev/xvda",
    }


# ---- base resolution: the two owner checks ------------------------------------------------------


def test_the_owners_go_into_the_request() -> None:
    """First check: DescribeImages asks AWS for the pinned owners' images only."""
    aws = Aws()
    with Stubber(aws.client("ec2", REGIONS[0])) as stub:
        stub.add_response(
            "describe_images",
            {"Images": [image("ami-0d0000000000000a2", DEBIAN_OWNER, "2026-11-01T11:00:00.000Z")]},
            {"Owners": [DEBIAN_OWNER], "Filters": ANY},
        )
        assert resolve(aws, FILTER, REGIONS[0]).ami_id == "ami-0d0000000000000a2"
        stub.assert_no_pending_responses()


def test_an_answer_from_another_owner_is_dropped() -> None:
    """Second check, alone: even if the answer held a newer look-alike from another account
    (a proxy, a bug, a changed API), it is never picked."""
    aws = Aws()
    with Stubber(aws.client("ec2", REGIONS[0])) as stub:
        stub.add_response(
            "describe_images",
            {
                "Images": [
                    image("ami-0d0000000000000a2", DEBIAN_OWNER, "2026-11-01T11:00:00.000Z"),
                    image("ami-0bad0000000000bad", ATTACKER, "2026-11-27T00:00:00.000Z"),
                ]
            },
            {"Owners": [DEBIAN_OWNER], "Filters": ANY},
        )
        assert resolve(aws, FILTER, REGIONS[0]).ami_id == "ami-0d0000000000000a2"
    with Stubber(aws.client("ec2", REGIONS[0])) as stub:
        only_theirs = {"Images": [image("ami-0bad0000000000bad", ATTACKER, "2026-11-27T00:00Z")]}
        stub.add_response(
            "describe_images", only_theirs, {"Owners": [DEBIAN_OWNER], "Filters": ANY}
        )
        with pytest.raises(AwsError, match="no base AMI found"):
            resolve(aws, FILTER, REGIONS[0])


def test_a_base_without_a_root_device_is_refused() -> None:
    """The build puts an encrypted volume on the base's root device: a base that names none
    would leave the root volume as the base has it, so nothing is built from it."""
    aws = Aws()
    rootless = image("ami-0d0000000000000a2", DEBIAN_OWNER, "2026-11-01T11:00:00.000Z")
    del rootless["RootDeviceName"]
    with Stubber(aws.client("ec2", REGIONS[0])) as stub:
        stub.add_response(
            "describe_images", {"Images": [rootless]}, {"Owners": [DEBIAN_OWNER], "Filters": ANY}
        )
        with pytest.raises(AwsError, match="not EBS-backed with a named root device"):
            resolve(aws, FILTER, REGIONS[0])
    with Stubber(aws.client("ec2", REGIONS[0])) as stub:
        store = image("ami-0d0000000000000a2", DEBIAN_OWNER, "2026-11-01T11:00:00.000Z")
        store["RootDeviceType"] = "instance-store"
        stub.add_response(
            "describe_images", {"Images": [store]}, {"Owners": [DEBIAN_OWNER], "Filters": ANY}
        )
        with pytest.raises(AwsError, match="instance-store"):
            resolve(aws, FILTER, REGIONS[0])
    with Stubber(aws.client("ec2", REGIONS[0])) as stub:
        found = image("ami-0d0000000000000a2", DEBIAN_OWNER, "2026-11-01T11:00:00.000Z")
        found["RootDeviceName"] = "/dev/sda1"
        stub.add_response(
            "describe_images", {"Images": [found]}, {"Owners": [DEBIAN_OWNER], "Filters": ANY}
        )
        assert resolve(aws, FILTER, REGIONS[0]).root_device == "/dev/sda1"


# ---- publish: the AMI's own state, and the lifecycle's rule -------------------------------------


def recorded(tmp_path: Path, state: str = "verified") -> tuple[AwsTarget, Any, dict[str, Any]]:
    target = AwsTarget(Project(ROOT))
    spec = web()
    record = record_version(target, spec, "20261101.000000", tmp_path)
    if state != "verified":
        tag_state(target.aws, amis_of(record), state)
    return target, spec, record


def channel_missing() -> bool:
    try:
        client("ssm").get_parameter(Name=channel_parameter("web", "latest"))
    except client("ssm").exceptions.ParameterNotFound:
        return True
    return False


def test_the_aws_path_refuses_an_ami_that_failed_whatever_the_record_says(tmp_path: Path) -> None:
    """The record says verified (the lifecycle's rule lets it through); the AMI's own tag says
    failed: publishing is refused on the AWS side, before any change."""
    target, spec, record = recorded(tmp_path, state="failed")
    assert record["state"] == "verified"
    with pytest.raises(AwsError, match="is failed; only verified AMIs are published"):
        channels.publish(target, spec, ["latest"])
    assert channel_missing()


def test_the_lifecycle_refuses_a_failed_record_whatever_the_tags_say(tmp_path: Path) -> None:
    target, spec, record = recorded(tmp_path)
    target.catalogue.transition("web", record["version"], "failed", "a late finding")
    with pytest.raises(UsageError, match="is failed; only verified images are published"):
        channels.publish(target, spec, ["latest"], version=record["version"])
    assert channel_missing()


def test_roll_refuses_an_ami_tagged_revoked_whatever_the_record_says(tmp_path: Path) -> None:
    """The AWS-side roll guard alone: the record says published, the AMI says revoked."""
    target, spec, record = recorded(tmp_path)
    channels.publish(target, spec, ["latest"])
    tag_state(target.aws, amis_of(record), "revoked", "found later")
    with pytest.raises(AwsError, match="which is revoked"):
        rl.channel_images(target.aws, "web", "latest", [REGIONS[0]])


# ---- prune: every version of every launch template -----------------------------------------------


def test_prune_sees_every_launch_template_version() -> None:
    """An AMI only an older, non-default version of a launch template uses is in use: that
    version can be made default again (or a group can name it) at any time."""
    old, new, idle = (make_ami(REGIONS[0], "web", v) for v in ("1", "2", "3"))
    tag_state(Aws(), [RegionalAmi(REGIONS[0], a) for a in (old, new, idle)], "verified")
    ec2 = client("ec2")
    lt = ec2.create_launch_template(LaunchTemplateName="web", LaunchTemplateData={"ImageId": old})
    lt_id = lt["LaunchTemplate"]["LaunchTemplateId"]
    ec2.create_launch_template_version(LaunchTemplateId=lt_id, LaunchTemplateData={"ImageId": new})
    ec2.modify_launch_template(LaunchTemplateId=lt_id, DefaultVersion="2")
    amis, usage = prune.gather(Aws(), "web", [REGIONS[0]])
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=60)
    decisions = {d.ami.ami_id: d for d in prune.plan(amis, usage, 0, 7, later)}
    assert decisions[old].action == "keep" and "launch template web v1" in decisions[old].reason
    assert decisions[new].action == "keep" and "launch template web v2" in decisions[new].reason
    assert decisions[idle].action == "delete"


# ---- roll: the exact refresh, and no silent "none running" ---------------------------------------


def test_execute_pins_the_new_version_number(tmp_path: Path) -> None:
    """The real path: a new launch template version in EC2 (moto), then StartInstanceRefresh
    with exactly that version number and the definition's preferences (Stubber)."""
    from tests.aws.test_roll import make_group, refresh, web_roll

    make_group(REGIONS[0], "web-a", "ami-0d0000000000000a1")
    aws = Aws()
    (group,) = rl.gather(aws, {"bakehouse:role": "web"}, [REGIONS[0]])
    (plan,) = rl.plan([group], {REGIONS[0]: "ami-0d0000000000000a2"}, web_roll())
    with Stubber(aws.client("autoscaling", REGIONS[0])) as stub:
        stub.add_response(
            "start_instance_refresh",
            {"InstanceRefreshId": "r-1"},
            {
                "AutoScalingGroupName": "web-a",
                "Strategy": "Rolling",
                "DesiredConfiguration": {
                    "LaunchTemplate": {"LaunchTemplateId": group.template_id, "Version": "2"}
                },
                "Preferences": plan.preferences,
            },
        )
        stub.add_response(
            "describe_instance_refreshes",
            refresh("Successful", 100),
            {"AutoScalingGroupName": "web-a", "InstanceRefreshIds": ["r-1"]},
        )
        (result,) = rl.execute(
            aws, [plan], web_roll(), "web", "20261101.000000", say=lambda m: None
        )
        stub.assert_no_pending_responses()
    assert (result["before"], result["after"], result["outcome"]) == (1, 2, "updated")
    data = client("ec2").describe_launch_template_versions(
        LaunchTemplateId=group.template_id, Versions=["2"]
    )["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    assert data["ImageId"] == "ami-0d0000000000000a2"


def test_a_refresh_listing_that_fails_is_an_error_not_none_running() -> None:
    """An endpoint that answers DescribeInstanceRefreshes with a bare HTTP 500 (as an emulator
    without the API does) must stop the roll, never read as "no refresh running"."""
    asg = boto3.client(
        "autoscaling",
        region_name=REGIONS[0],
        endpoint_url="https://autoscaling.invalid",
        config=Config(retries={"max_attempts": 1}),
    )

    def html_500(**_: Any) -> AWSResponse:
        return AWSResponse("https://autoscaling.invalid", 500, {}, _Raw(b"<html>500</html>"))

    asg.meta.events.register("before-send.autoscaling.DescribeInstanceRefreshes", html_500)
    with pytest.raises((ResponseParserError, ClientError)):
        rl._active_refreshes(asg, ["web-a"])
    aws = Aws()
    with Stubber(aws.client("autoscaling", REGIONS[0])) as stub:
        stub.add_client_error("describe_instance_refreshes", "AccessDenied")
        with pytest.raises(ClientError, match="AccessDenied"):
            rl._active_refreshes(aws.client("autoscaling", REGIONS[0]), ["web-a"])


class _Raw:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


# ---- a base AMI that must not be baked from again ------------------------------------------------


def test_a_deprecated_or_deregistered_base_ami_is_revoked() -> None:
    """The publisher's own withdrawal of a base (deprecation, deregistration) makes nightly
    rebake; the times come from EC2 (Stubber: moto cannot hold a past deprecation)."""
    record = {"base": {"ami_id": "ami-0d0000000000000a2", "region": REGIONS[0]}}
    past = {"ImageId": "ami-0d0000000000000a2", "State": "available"}
    for answer, expected in (
        ({"Images": [past | {"DeprecationTime": "2026-01-01T00:00:00.000Z"}]}, "deprecated since"),
        ({"Images": []}, "is gone from eu-west-1"),
        ({"Images": [past | {"State": "deregistered"}]}, "is gone from eu-west-1"),
        ({"Images": [past | {"DeprecationTime": "2999-01-01T00:00:00.000Z"}]}, None),
    ):
        target = AwsTarget(Project(ROOT))
        with Stubber(target.aws.client("ec2", REGIONS[0])) as stub:
            stub.add_response("describe_images", answer, {"ImageIds": ["ami-0d0000000000000a2"]})
            reason = target.base_revoked(record)
        assert (reason is None) if expected is None else (expected in str(reason)), reason


# ---- revoke: nothing revoked stays deliverable ---------------------------------------------------


def test_revoke_clears_every_region_whatever_regions_the_command_names(tmp_path: Path) -> None:
    """Published in both of worker's regions; revoked by a command that names one region (as
    --region does): the other region's channel must not keep delivering it either."""
    from bakehouse.targets.base import TargetOptions

    spec = Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("worker", TODAY)
    full = AwsTarget(Project(ROOT))
    record = record_version(full, spec, "20261101.000000", tmp_path)
    channels.publish(full, spec, ["latest"])
    narrow = AwsTarget(Project(ROOT), TargetOptions(regions=(REGIONS[0],)))
    done = channels.revoke(narrow, spec, record["version"], "bad")
    for region in REGIONS:
        with pytest.raises(ClientError, match="ParameterNotFound"):
            client("ssm", region).get_parameter(Name=channel_parameter("worker", "latest"))
    assert len(done.moves) == 1


def test_revoke_falls_back_only_to_an_image_still_there(tmp_path: Path) -> None:
    """The newest earlier verified version whose AMIs were pruned cannot take the channel:
    the one before it does, and when none is left the channel goes."""
    target = AwsTarget(Project(ROOT))
    spec = web()
    v1, v2, v3 = (record_version(target, spec, f"2026110{i}.000000", tmp_path) for i in (1, 2, 3))
    channels.publish(target, spec, ["latest"])
    client("ec2").deregister_image(ImageId=v2["amis"][0]["ami_id"])  # pruned meanwhile
    done = channels.revoke(target, spec, v3["version"], "bad")
    assert [(m.channel, m.after) for m in done.moves] == [("latest", v1["version"])]
    latest = client("ssm").get_parameter(Name=channel_parameter("web", "latest"))["Parameter"]
    assert latest["Value"] == v1["amis"][0]["ami_id"]
    client("ec2").deregister_image(ImageId=v1["amis"][0]["ami_id"])
    done = channels.revoke(target, spec, v1["version"], "worse")
    assert [(m.channel, m.after) for m in done.moves] == [("latest", None)]
    assert channel_missing()


def test_revoking_an_older_version_never_moves_a_channel_forward(tmp_path: Path) -> None:
    """stable on v1, latest on v2: revoking v1 removes stable (nothing earlier), it does not
    hand stable the newer, unpromoted v2."""
    target = AwsTarget(Project(ROOT))
    spec = web()
    v1 = record_version(target, spec, "20261101.000000", tmp_path)
    record_version(target, spec, "20261102.000000", tmp_path)
    channels.publish(target, spec, ["stable"], version=v1["version"])
    channels.publish(target, spec, ["latest"])
    done = channels.revoke(target, spec, v1["version"], "bad")
    assert [(m.channel, m.after) for m in done.moves] == [("stable", None)]
    assert target.channels(spec)["latest"]["current"] == "20261102.000000"


# ---- the aws target's own refusals --------------------------------------------------------------


def test_verifying_over_ssh_needs_the_runner_address(tmp_path: Path) -> None:
    from bakehouse.runs import run_dir

    target = AwsTarget(Project(ROOT))
    spec = web()
    record = record_version(target, spec, "20261101.000000", tmp_path)
    with run_dir(tmp_path, "web", "test") as run, pytest.raises(UsageError, match="--runner-cidr"):
        target.verify_recorded(spec, record, run, Progress(quiet=True))
    assert (
        client("ec2").describe_instances(
            Filters=[{"Name": "tag:bakehouse:role", "Values": ["verify"]}]
        )["Reservations"]
        == []
    )  # nothing was launched


def test_roll_refuses_when_no_group_carries_the_selector(tmp_path: Path) -> None:
    target = AwsTarget(Project(ROOT))
    spec = web()
    record = record_version(target, spec, "20261101.000000", tmp_path)
    channels.publish(target, spec, ["latest"])
    with pytest.raises(UsageError, match="no auto-scaling group is tagged"):
        target.roll(spec, "latest", record, dry_run=True, wait=False, say=lambda m: None)


def test_roll_refuses_a_group_whose_refresh_is_running(tmp_path: Path) -> None:
    """Auto Scaling reports a refresh in progress (Stubber: moto cannot start one): the roll
    stops before it creates anything, unless told to wait."""
    from tests.aws.test_roll import make_group, refresh

    target = AwsTarget(Project(ROOT))
    spec = web()
    record = record_version(target, spec, "20261101.000000", tmp_path)
    channels.publish(target, spec, ["latest"])
    lt_id = make_group(REGIONS[0], "web-a", "ami-0d0000000000000a1")
    group = client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["web-a"])
    asg = target.aws.client("autoscaling", REGIONS[0])
    with Stubber(asg) as stub:
        stub.add_response("describe_auto_scaling_groups", group, {"Filters": ANY})
        stub.add_response(
            "describe_instance_refreshes",
            refresh("InProgress", 40),
            {"AutoScalingGroupName": "web-a", "MaxRecords": 5},
        )
        with pytest.raises(UsageError, match="a refresh is already running on eu-west-1/web-a"):
            target.roll(spec, "latest", record, dry_run=False, wait=False, say=lambda m: None)
    versions = client("ec2").describe_launch_template_versions(LaunchTemplateId=lt_id)
    assert len(versions["LaunchTemplateVersions"]) == 1  # nothing created


def test_a_region_the_fallback_is_not_in_stops_delivering_the_revoked_image(
    tmp_path: Path,
) -> None:
    """v1 was baked for one region, v2 for both; latest points at v2 everywhere. Revoking v2
    moves latest back to v1 where v1 exists — and the other region's latest, which v1 cannot
    take, must not go on delivering v2."""
    from bakehouse.targets.base import TargetOptions

    spec = Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("worker", TODAY)
    one = AwsTarget(Project(ROOT), TargetOptions(regions=(REGIONS[0],)))
    record_version(one, spec, "20261101.000000", tmp_path)
    both = AwsTarget(Project(ROOT))
    v2 = record_version(both, spec, "20261102.000000", tmp_path)
    channels.publish(both, spec, ["latest"])
    done = channels.revoke(both, spec, v2["version"], "bad")
    assert [(m.channel, m.after) for m in done.moves] == [("latest", "20261101.000000")]
    with pytest.raises(ClientError, match="ParameterNotFound"):
        client("ssm", REGIONS[1]).get_parameter(Name=channel_parameter("worker", "latest"))
    assert any("still delivered it: removed" in n for n in done.notes)


# ---- base resolution: owners as AWS defines them, on every path ---------------------------------


def parameter(name: str, ami: str) -> None:
    client("ssm").put_parameter(Name=name, Value=ami, Type="String", DataType="aws:ec2:image")


def test_an_ssm_parameter_naming_another_owners_ami_is_refused() -> None:
    parameter("/team/base/debian", "ami-0bad0000000000bad")  # the attacker's look-alike
    base = AwsBase("/team/base/debian", None, "admin", (DEBIAN_OWNER,))
    with pytest.raises(AwsError, match=f"owned by {ATTACKER}, not by {DEBIAN_OWNER}"):
        resolve(Aws(), base, REGIONS[0])
    parameter("/team/base/debian2", "ami-0d0000000000000a2")
    ok = AwsBase("/team/base/debian2", None, "admin", (DEBIAN_OWNER,))
    assert resolve(Aws(), ok, REGIONS[0]).ami_id == "ami-0d0000000000000a2"


def test_debians_public_parameter_is_held_to_debians_account() -> None:
    base = AwsBase("/aws/service/debian/release/12/latest/amd64", None, "admin")
    assert base.allowed_owners() == (DEBIAN_OWNER,)
    assert resolve(Aws(), base, REGIONS[0]).owner == DEBIAN_OWNER


def test_self_means_the_callers_account() -> None:
    own = make_ami(REGIONS[0], "layer", "20260101.000000")  # made in the caller's account
    parameter("/team/base/layer", own)
    base = AwsBase("/team/base/layer", None, "admin", ("self",))
    assert resolve(Aws(), base, REGIONS[0]).ami_id == own
    # and not anyone else's
    parameter("/team/base/layer2", "ami-0d0000000000000a2")
    with pytest.raises(AwsError, match="not by self"):
        resolve(Aws(), AwsBase("/team/base/layer2", None, "admin", ("self",)), REGIONS[0])


def test_owner_aliases_match_only_their_alias() -> None:
    from bakehouse.aws.resolve import _allowed

    market = {"OwnerId": "679593333241", "ImageOwnerAlias": "aws-marketplace"}
    amazon = {"OwnerId": "137112412989", "ImageOwnerAlias": "amazon"}
    assert _allowed(market, ("aws-marketplace",), None)
    assert not _allowed(market, ("amazon",), None)
    assert _allowed(amazon, ("amazon",), None)
    assert not _allowed(amazon, ("aws-marketplace",), None)
    assert not _allowed({"OwnerId": "123456789012"}, ("self",), None)
    assert _allowed({"OwnerId": "123456789012"}, ("self",), "123456789012")


def test_a_definition_with_an_ssm_base_and_no_owners_is_refused(tmp_images) -> None:  # type: ignore[no-untyped-def]
    from bakehouse.errors import SpecError

    tmp_images.write("web", "description: x\nbase:\n  aws:\n    ssm_parameter: /team/base/debian\n")
    with pytest.raises(SpecError, match=r"base\.aws\.ssm_parameter: a base from an SSM parameter"):
        tmp_images.load("web")


# ---- sharing encrypted AMIs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("share", "key", "message"),
    [
        ("public: true", "alias/bakehouse", "an encrypted AMI cannot be public"),
        ("accounts: ['111122223333']", None, "encrypted with the AWS-managed EBS key"),
        ("accounts: ['111122223333']", "alias/aws/ebs", "encrypted with the AWS-managed EBS key"),
        (
            "organizations: ['arn:aws:organizations::111122223333:organization/o-abcdefghij']",
            None,
            "encrypted with the AWS-managed EBS key",
        ),
    ],
)
def test_sharing_that_cannot_work_is_refused(
    tmp_images, share: str, key: str | None, message: str
) -> None:  # type: ignore[no-untyped-def]
    from bakehouse.errors import SpecError

    kms = f"    kms_key_id: {key}\n" if key else ""
    tmp_images.write("web", f"description: x\ntargets:\n  aws:\n{kms}    share:\n      {share}\n")
    with pytest.raises(SpecError, match=message):
        tmp_images.load("web")


def test_sharing_with_a_customer_managed_key_is_fine(tmp_images) -> None:  # type: ignore[no-untyped-def]
    tmp_images.write(
        "web",
        "description: x\ntargets:\n  aws:\n    kms_key_id: alias/bakehouse\n"
        "    share:\n      accounts: ['111122223333']\n",
    )
    assert tmp_images.load("web").targets.aws.share.accounts == ("111122223333",)


def expect_share_lookup(stub: Stubber, found: list[dict[str, str]]) -> None:
    """The lookup of web's channel share, answered with ``found``."""
    stub.add_response(
        "get_resource_shares",
        {"resourceShares": found},
        {
            "resourceOwner": "SELF",
            "name": "bakehouse-web-channels",
            "resourceShareStatus": "ACTIVE",
        },
    )


def test_channels_join_the_images_existing_resource_share() -> None:
    from bakehouse.aws.publish import share_channels
    from bakehouse.spec import Share

    aws = Aws()
    arn = "arn:aws:ram:eu-west-1:123456789012:resource-share/abc"
    with Stubber(aws.client("ram", REGIONS[0])) as stub:
        expect_share_lookup(stub, [{"resourceShareArn": arn, "name": "bakehouse-web-channels"}])
        stub.add_response(
            "associate_resource_share",
            {},
            {
                "resourceShareArn": arn,
                "resourceArns": [
                    f"arn:aws:ssm:{REGIONS[0]}:123456789012:parameter/bakehouse/web/beta"
                ],
                "principals": ["arn:aws:organizations::111122223333:organization/o-abcdefghij"],
            },
        )
        share = Share(
            (), ("arn:aws:organizations::111122223333:organization/o-abcdefghij",), (), False
        )
        share_channels(aws, REGIONS[0], "web", ["beta"], share)
        stub.assert_no_pending_responses()


def test_a_new_share_for_an_organisation_allows_no_outside_principals() -> None:
    from bakehouse.aws.publish import share_channels
    from bakehouse.spec import Share

    aws = Aws()
    org = "arn:aws:organizations::111122223333:organization/o-abcdefghij"
    with Stubber(aws.client("ram", REGIONS[0])) as stub:
        expect_share_lookup(stub, [])
        stub.add_response(
            "create_resource_share",
            {},
            {
                "name": "bakehouse-web-channels",
                "resourceArns": [
                    f"arn:aws:ssm:{REGIONS[0]}:123456789012:parameter/bakehouse/web/beta"
                ],
                "principals": [org],
                "allowExternalPrincipals": False,
                "tags": [{"key": "bakehouse:image", "value": "web"}],
            },
        )
        share_channels(aws, REGIONS[0], "web", ["beta"], Share((), (org,), (), False))
        stub.assert_no_pending_responses()


def test_owners_belong_under_the_filter(tmp_images) -> None:  # type: ignore[no-untyped-def]
    from bakehouse.errors import SpecError

    tmp_images.write(
        "web",
        "description: x\nbase:\n  aws:\n    ssm_parameter: null\n    owners: ['136693071363']\n"
        "    filter: {name: debian-13-*, owners: ['136693071363']}\n",
    )
    with pytest.raises(SpecError, match=r"with a filter, the owners go under filter\.owners"):
        tmp_images.load("web")
