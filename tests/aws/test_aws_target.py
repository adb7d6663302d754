"""The aws target against a real moto server: resolution (the look-alike attack included), a full
bake (bakehouse's build instance provisioned by Packer, AMIs tagged as they are made) recorded
in the account (S3 and tags), publish with SSM and sharing,
the verify-instance life cycle with cleanup after a failure, prune that keeps every in-use AMI
(every version of every launch template), and gc."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from bakehouse.aws import build, prune
from bakehouse.aws import gc as aws_gc
from bakehouse.aws.instances import verify_instance
from bakehouse.aws.publish import RegionalAmi, channel_parameter, publish, tag_state
from bakehouse.aws.resolve import resolve
from bakehouse.aws.session import Aws
from bakehouse.errors import AwsError
from bakehouse.lifecycle.bake import bake
from bakehouse.progress import Progress
from bakehouse.project import Project
from bakehouse.spec import AmiFilter, AwsBase, Catalog, ImageSpec, Share
from bakehouse.targets import aws as aws_target
from bakehouse.targets.base import BakeRequest, TargetOptions
from tests.aws.conftest import ACCOUNT, ATTACKER, DEBIAN_OWNER, REGIONS, client
from tests.conftest import ROOT, TODAY

pytestmark = pytest.mark.usefixtures("aws_env")


def ec2(region: str = REGIONS[0]):  # type: ignore[no-untyped-def]
    return client("ec2", region)


def spec(name: str = "worker") -> ImageSpec:
    return Catalog(ROOT / "images", ROOT / "packer" / "scripts").load(name, TODAY)


FILTER = AwsBase(
    ssm_parameter=None,
    filter=AmiFilter("debian-13-amd64-*", (DEBIAN_OWNER,), "x86_64"),
    ssh_username="admin",
)


# ---- resolution ---------------------------------------------------------------------------------


def test_owner_pinned_filter_never_picks_the_look_alike() -> None:
    resolved = resolve(Aws(), FILTER, REGIONS[0])
    assert resolved.ami_id == "ami-0d0000000000000a2"
    assert resolved.owner == DEBIAN_OWNER
    assert resolved.via == f"filter:debian-13-amd64-* owners={DEBIAN_OWNER}"


def test_the_look_alike_is_real_without_the_owner_pin() -> None:
    """Shows the attack the pin defends against: by name alone the newest is the attacker's."""
    images = ec2().describe_images(Filters=[{"Name": "name", "Values": ["debian-13-amd64-*"]}])
    newest = max(images["Images"], key=lambda i: i["CreationDate"])
    assert newest["OwnerId"] == ATTACKER


def test_resolve_from_ssm_parameter() -> None:
    client("ssm").put_parameter(
        Name="/test/debian/12/latest",
        Value="ami-0d0000000000000a1",
        Type="String",
        DataType="aws:ec2:image",
    )
    base = AwsBase("/test/debian/12/latest", None, "admin", (DEBIAN_OWNER,))
    resolved = resolve(Aws(), base, REGIONS[0])
    assert (resolved.ami_id, resolved.via) == (
        "ami-0d0000000000000a1",
        f"ssm:/test/debian/12/latest owners={DEBIAN_OWNER}",
    )


def test_ssm_parameter_that_is_not_an_ami() -> None:
    client("ssm").put_parameter(Name="/test/not-an-ami", Value="hello", Type="String")
    base = AwsBase("/test/not-an-ami", None, "admin", (DEBIAN_OWNER,))
    with pytest.raises(AwsError, match="not an AMI id"):
        resolve(Aws(), base, REGIONS[0])


def test_no_match_is_a_clear_error() -> None:
    base = dataclasses.replace(FILTER, filter=AmiFilter("ubuntu-*", (DEBIAN_OWNER,), "x86_64"))
    with pytest.raises(AwsError, match="no base AMI found in eu-west-1"):
        resolve(Aws(), base, REGIONS[0])


def test_missing_credentials_are_explained(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(AwsError, match="no AWS credentials found") as caught:
        Aws().client("ec2", REGIONS[0])
    assert caught.value.hint and "--profile" in caught.value.hint


# ---- bake with Packer ---------------------------------------------------------------------------


def target() -> aws_target.AwsTarget:
    return aws_target.AwsTarget(Project(ROOT), TargetOptions(runner_cidr="192.0.2.10/32"))


QUIET = Progress(quiet=True)


@pytest.fixture
def baked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:  # type: ignore[type-arg]
    """The worker definition (owner-pinned filter, two regions) built by Packer against moto,
    with the communicator switched off by the test-only variable."""
    monkeypatch.setenv("BAKEHOUSE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv(aws_target.COMMUNICATOR_ENV, "none")
    request = BakeRequest(verify=False, publish=False)
    return bake(Project(ROOT), spec("worker"), target(), request, QUIET).record


def test_bake_with_ssm_verify_records_a_failed_verification_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole verify_via: ssm path up to the SSM agent: Packer against moto, then a
    verification instance with the profile and no inbound rule. moto has no
    DescribeInstanceInformation, so waiting for the agent fails there (the wait itself is tested
    with the Stubber in test_ssm_api.py): the AMIs are tagged failed, the record says why, and
    the instance and its security group are gone."""
    monkeypatch.setenv("BAKEHOUSE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv(aws_target.COMMUNICATOR_ENV, "none")
    iam = client("iam")
    iam.create_role(RoleName="bakehouse-verify", AssumeRolePolicyDocument="{}")
    iam.create_instance_profile(InstanceProfileName="bakehouse-verify")
    iam.add_role_to_instance_profile(
        InstanceProfileName="bakehouse-verify", RoleName="bakehouse-verify"
    )
    worker = spec("worker")
    worker = dataclasses.replace(
        worker,
        targets=dataclasses.replace(
            worker.targets,
            aws=dataclasses.replace(
                worker.targets.aws, verify_via="ssm", instance_profile="bakehouse-verify"
            ),
        ),
    )
    with pytest.raises(AwsError, match="DescribeInstanceInformation failed"):
        bake(Project(ROOT), worker, target(), BakeRequest(), QUIET)
    records = target().catalogue.images("worker")
    assert len(records) == 1
    record = records[0]
    assert record["state"] == "failed"
    assert "DescribeInstanceInformation" in record["verify"]["error"]
    for ami in record["amis"]:
        image = ec2(ami["region"]).describe_images(ImageIds=[ami["ami_id"]])["Images"][0]
        assert {"Key": "bakehouse:state", "Value": "failed"} in image["Tags"]
    verify = ec2().describe_instances(
        Filters=[
            {"Name": "tag:bakehouse:run-id", "Values": [record["run_id"]]},
            {"Name": "tag:bakehouse:role", "Values": ["verify"]},
        ]
    )["Reservations"]
    assert len(verify) == 1
    instance = verify[0]["Instances"][0]
    assert instance["State"]["Name"] == "terminated"
    assert "KeyName" not in instance  # (moto drops the profile association on termination)
    assert (
        ec2().describe_security_groups(
            Filters=[{"Name": "group-name", "Values": [f"bakehouse-verify-{record['run_id']}"]}]
        )["SecurityGroups"]
        == []
    )


def test_packer_build_against_moto(baked: dict) -> None:  # type: ignore[type-arg]
    assert baked["state"] == "baked"
    assert baked["base"]["ami_id"] == baked["base"]["key"] == "ami-0d0000000000000a2"
    assert [a["region"] for a in baked["amis"]] == REGIONS
    # the record is kept in the account: any runner reads it back
    assert target().catalogue.image("worker", baked["version"]) == baked
    assert baked["notes"] == ["no package manifest: the build did not reach the instance"]
    created = dt.datetime.fromisoformat(baked["created"])
    for ami in baked["amis"]:
        image = ec2(ami["region"]).describe_images(ImageIds=[ami["ami_id"]])["Images"][0]
        assert image["ImdsSupport"] == "v2.0"
        deprecation = dt.datetime.fromisoformat(image["DeprecationTime"].replace("Z", "+00:00"))
        assert abs(deprecation - created - dt.timedelta(days=30)) < dt.timedelta(minutes=5)
        tags = {t["Key"]: t["Value"] for t in image.get("Tags", [])}
        assert tags["bakehouse:image"] == "worker"
        assert tags["bakehouse:run-id"] == baked["run_id"]
        assert tags["bakehouse:state"] == "baked"
        assert tags["bakehouse:base-ami"] == "ami-0d0000000000000a2"
        assert tags["bakehouse:fingerprint"] == baked["fingerprint"]
        assert image["Description"] == spec("worker").description
        # the snapshots were tagged in the same call, not afterwards
        (snap,) = [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"]]
        (snapshot,) = ec2(ami["region"]).describe_snapshots(SnapshotIds=[snap])["Snapshots"]
        assert {t["Key"]: t["Value"] for t in snapshot["Tags"]}["bakehouse:image"] == "worker"
        if ami["region"] != REGIONS[0]:  # a copy: encrypted
            assert snapshot["Encrypted"] is True
    # the temporary build resources are gone
    assert (
        ec2().describe_instances(
            Filters=[
                {"Name": "tag:bakehouse:run-id", "Values": [baked["run_id"]]},
                {"Name": "instance-state-name", "Values": ["running", "pending"]},
            ]
        )["Reservations"]
        == []
    )


def test_the_build_instance_is_bakehouses_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bakehouse launches the build instance itself: IMDSv2 only from launch, both volumes
    encrypted, tagged at launch, reachable through its own security group (the runner only)
    and key pair; Packer only provisions it. All of it is gone afterwards."""
    from bakehouse import packer as packer_mod

    monkeypatch.setenv("BAKEHOUSE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv(aws_target.COMMUNICATOR_ENV, "none")
    seen: dict[str, object] = {}
    real_build = packer_mod.build

    def spy(path: Path, variables: dict[str, str], **kwargs: object) -> object:
        (res,) = ec2().describe_instances(
            Filters=[
                {"Name": "tag:bakehouse:run-id", "Values": [variables["run_id"]]},
                {"Name": "instance-state-name", "Values": ["running"]},
            ]
        )["Reservations"]
        inst = res["Instances"][0]
        volumes = ec2().describe_volumes(
            Filters=[{"Name": "attachment.instance-id", "Values": [inst["InstanceId"]]}]
        )["Volumes"]
        (group,) = ec2().describe_security_groups(
            GroupIds=[g["GroupId"] for g in inst["SecurityGroups"]]
        )["SecurityGroups"]
        (key,) = ec2().describe_key_pairs(KeyNames=[inst["KeyName"]])["KeyPairs"]
        seen.update(instance=inst, volumes=volumes, group=group, key=key, variables=variables)
        seen["key_mode"] = Path(variables["ssh_private_key_file"]).stat().st_mode & 0o777
        return real_build(path, variables, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(packer_mod, "build", spy)
    request = BakeRequest(verify=False, publish=False)
    record = bake(Project(ROOT), spec("worker"), target(), request, QUIET).record
    inst, group, key = seen["instance"], seen["group"], seen["key"]
    assert inst["MetadataOptions"]["HttpTokens"] == "required"  # type: ignore[index]
    assert inst["ImageId"] == record["base"]["ami_id"]  # type: ignore[index]
    tags = {t["Key"]: t["Value"] for t in inst["Tags"]}  # type: ignore[index]
    assert tags["bakehouse:role"] == "build" and tags["bakehouse:run-id"] == record["run_id"]
    assert tags["bakehouse:image"] == "worker"
    volumes = seen["volumes"]
    assert sorted(v["Size"] for v in volumes) == [4, 8]  # type: ignore[attr-defined]
    assert all(v["Encrypted"] for v in volumes)  # type: ignore[attr-defined]
    assert seen["variables"]["ssh_host"]  # type: ignore[index]
    tags = {t["Key"]: t["Value"] for t in group["Tags"]}  # type: ignore[index]
    assert tags["bakehouse:role"] == "build" and tags["bakehouse:run-id"] == record["run_id"]
    assert {t["Key"]: t["Value"] for t in key["Tags"]}["bakehouse:role"] == "build"  # type: ignore[index]
    (rule,) = group["IpPermissions"]  # type: ignore[index]
    assert (rule["FromPort"], rule["ToPort"]) == (22, 22)
    assert rule["IpRanges"] == [{"CidrIp": "192.0.2.10/32", "Description": "bakehouse runner"}]
    assert seen["key_mode"] == 0o600
    assert record["build_instance"] == inst["InstanceId"]  # type: ignore[index]
    after = ec2().describe_instances(InstanceIds=[record["build_instance"]])
    assert after["Reservations"][0]["Instances"][0]["State"]["Name"] == "terminated"
    assert not ec2().describe_security_groups(
        Filters=[{"Name": "tag:bakehouse:run-id", "Values": [record["run_id"]]}]
    )["SecurityGroups"]
    assert not ec2().describe_key_pairs(
        Filters=[{"Name": "tag:bakehouse:run-id", "Values": [record["run_id"]]}]
    )["KeyPairs"]
    template = (ROOT / "packer" / "aws.pkr.hcl.j2").read_text()
    assert 'source "null" "image"' in template and 'source "amazon-ebs"' not in template


def test_a_failed_copy_removes_every_ami_the_run_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A region copy refused after the first AMI exists: that AMI and its snapshot are removed
    before the error goes on, and so are the build instance, its group and key pair."""
    monkeypatch.setenv("BAKEHOUSE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv(aws_target.COMMUNICATOR_ENV, "none")
    made: list[RegionalAmi] = []
    real_capture = build.capture

    def capture(*args: object, **kwargs: object) -> RegionalAmi:
        made.append(real_capture(*args, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    def refused(*args: object, **kwargs: object) -> RegionalAmi:
        raise AwsError("copying to eu-central-1 failed: InvalidParameterValue: no such key")

    monkeypatch.setattr(build, "capture", capture)
    monkeypatch.setattr(build, "copy", refused)
    with pytest.raises(AwsError, match="copying to eu-central-1 failed"):
        bake(Project(ROOT), spec("worker"), target(), BakeRequest(verify=False), QUIET)
    (ami,) = made
    assert ec2().describe_images(ImageIds=[ami.ami_id])["Images"] == []
    assert not ec2().describe_snapshots(
        Filters=[{"Name": "tag:bakehouse:image", "Values": ["worker"]}]
    )["Snapshots"]
    running = ec2().describe_instances(
        Filters=[
            {"Name": "tag:bakehouse:image", "Values": ["worker"]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopped"]},
        ]
    )["Reservations"]
    assert running == []
    assert not ec2().describe_security_groups(
        Filters=[{"Name": "tag:bakehouse:image", "Values": ["worker"]}]
    )["SecurityGroups"]


def test_images_are_made_and_copied_tagged_encrypted_with_stubber() -> None:
    """The exact requests bakehouse makes for the AMI and its copy (moto drops some of these
    parameters), checked by botocore's Stubber against the EC2 service model."""
    from botocore.stub import Stubber

    aws = Aws()
    home, other = aws.client("ec2", REGIONS[0]), aws.client("ec2", REGIONS[1])
    tags = build.image_tags("worker", "1.2.3", "r1", "fp", "ami-0d0000000000000a2", "c0ffee")
    specs = [{"ResourceType": "image", "Tags": tags}, {"ResourceType": "snapshot", "Tags": tags}]
    inst = build.BuildInstance(REGIONS[0], "i-0123456789abcdef0", "192.0.2.1")
    available = {"Images": [{"ImageId": "ami-0aaaaaaaaaaaaaaaa", "State": "available"}]}
    copied = {"Images": [{"ImageId": "ami-0bbbbbbbbbbbbbbbb", "State": "available"}]}
    stopped = {"Reservations": [{"Instances": [{"State": {"Name": "stopped", "Code": 80}}]}]}
    with Stubber(home) as h, Stubber(other) as o:
        h.add_response("stop_instances", {}, {"InstanceIds": [inst.instance_id]})
        h.add_response("describe_instances", stopped, {"InstanceIds": [inst.instance_id]})
        h.add_response(
            "create_image",
            {"ImageId": "ami-0aaaaaaaaaaaaaaaa"},
            {
                "InstanceId": inst.instance_id,
                "Name": "bakehouse-worker-1.2.3",
                "Description": "d",
                "TagSpecifications": specs,
            },
        )
        h.add_response("describe_images", available, {"ImageIds": ["ami-0aaaaaaaaaaaaaaaa"]})
        o.add_response(
            "copy_image",
            {"ImageId": "ami-0bbbbbbbbbbbbbbbb"},
            {
                "SourceRegion": REGIONS[0],
                "SourceImageId": "ami-0aaaaaaaaaaaaaaaa",
                "Name": "bakehouse-worker-1.2.3",
                "Description": "d",
                "Encrypted": True,
                "KmsKeyId": "alias/bakehouse",
                "TagSpecifications": specs,
            },
        )
        o.add_response("describe_images", copied, {"ImageIds": ["ami-0bbbbbbbbbbbbbbbb"]})
        amis = build.make_images(
            aws, inst, list(REGIONS), "bakehouse-worker-1.2.3", "d", tags, "alias/bakehouse"
        )
        h.assert_no_pending_responses()
        o.assert_no_pending_responses()
    assert amis == [
        RegionalAmi(REGIONS[0], "ami-0aaaaaaaaaaaaaaaa"),
        RegionalAmi(REGIONS[1], "ami-0bbbbbbbbbbbbbbbb"),
    ]


def test_the_build_instance_request() -> None:
    """IMDSv2 only, both volumes encrypted with the definition's key on the base's own root
    device, tagged at launch, stopped (never terminated) by a shutdown from inside."""
    tags = [{"Key": "bakehouse:image", "Value": "web"}]
    volumes = build.Volumes("/dev/sda1", 8, 4, "alias/k")
    request = build.launch_request("ami-1", "t3.small", "key", "sg-1", None, volumes, tags)
    assert request["MetadataOptions"] == {
        "HttpTokens": "required",
        "HttpEndpoint": "enabled",
        "HttpPutResponseHopLimit": 1,
    }
    assert request["InstanceInitiatedShutdownBehavior"] == "stop"
    root, data = request["BlockDeviceMappings"]
    assert root["DeviceName"] == "/dev/sda1" and data["DeviceName"] == "/dev/xvdf"
    for mapping, size in ((root, 8), (data, 4)):
        assert mapping["Ebs"]["Encrypted"] is True and mapping["Ebs"]["KmsKeyId"] == "alias/k"
        assert mapping["Ebs"]["VolumeSize"] == size
    assert request["TagSpecifications"] == [
        {"ResourceType": "instance", "Tags": tags},
        {"ResourceType": "volume", "Tags": tags},
    ]
    assert "SubnetId" not in request and request["KeyName"] == "key"
    default_key = build.launch_request(
        "ami-1", "t3.small", None, "sg-1", "subnet-1", build.Volumes("/dev/xvda", 8, 4, None), tags
    )
    assert "KmsKeyId" not in default_key["BlockDeviceMappings"][0]["Ebs"]
    assert "KeyName" not in default_key and default_key["SubnetId"] == "subnet-1"


def test_unverified_amis_are_not_published(baked: dict) -> None:  # type: ignore[type-arg]
    amis = aws_target.amis_of(baked)
    with pytest.raises(AwsError, match="only verified AMIs are published"):
        publish(
            Aws(), "worker", baked["version"], amis, ["latest"], spec("worker").targets.aws.share
        )
    with pytest.raises(ClientError) as missing:  # the channel was never written
        client("ssm").get_parameter(Name=channel_parameter("worker", "latest"))
    assert missing.value.response["Error"]["Code"] == "ParameterNotFound"


def test_publish_sets_ssm_channels_and_sharing(baked: dict) -> None:  # type: ignore[type-arg]
    amis = aws_target.amis_of(baked)
    tag_state(Aws(), amis, "verified")
    share = Share(
        accounts=("111122223333",), organizations=(), organizational_units=(), public=False
    )
    aws = Aws()
    # moto's RAM cannot share SSM parameters: RAM alone is stubbed, with the exact calls
    stubs = []
    for region in sorted({a.region for a in amis}):
        stub = Stubber(aws.client("ram", region))
        params = [
            f"arn:aws:ssm:{region}:{ACCOUNT}:parameter/bakehouse/worker/{c}"
            for c in ("latest", "stable")
        ]
        stub.add_response(
            "get_resource_shares",
            {"resourceShares": []},
            {
                "resourceOwner": "SELF",
                "name": "bakehouse-worker-channels",
                "resourceShareStatus": "ACTIVE",
            },
        )
        stub.add_response(
            "create_resource_share",
            {},
            {
                "name": "bakehouse-worker-channels",
                "resourceArns": params,
                "principals": ["111122223333"],
                "allowExternalPrincipals": True,
                "tags": [{"key": "bakehouse:image", "value": "worker"}],
            },
        )
        stub.activate()
        stubs.append(stub)
    publish(aws, "worker", baked["version"], amis, ["latest", "stable"], share)
    for stub in stubs:
        stub.assert_no_pending_responses()
    for ami in amis:
        for channel in ("latest", "stable"):
            param = client("ssm", ami.region).get_parameter(
                Name=channel_parameter("worker", channel)
            )["Parameter"]
            assert param["Value"] == ami.ami_id
            assert param.get("DataType") == "aws:ec2:image"
        (described,) = client("ssm", ami.region).describe_parameters(
            ParameterFilters=[{"Key": "Name", "Values": [channel_parameter("worker", "latest")]}]
        )["Parameters"]
        assert described["Tier"] == "Advanced"  # the only tier other accounts can read
        attr = ec2(ami.region).describe_image_attribute(
            ImageId=ami.ami_id, Attribute="launchPermission"
        )
        perms = attr["LaunchPermissions"]
        assert {"UserId": "111122223333"} in perms
        assert {"Group": "all"} not in perms
        image = ec2(ami.region).describe_images(ImageIds=[ami.ami_id])["Images"][0]
        for mapping in image["BlockDeviceMappings"]:
            volume = ec2(ami.region).describe_snapshot_attribute(
                SnapshotId=mapping["Ebs"]["SnapshotId"], Attribute="createVolumePermission"
            )["CreateVolumePermissions"]
            assert {"UserId": "111122223333"} in volume
        tags = {
            t["Key"]: t["Value"]
            for t in ec2(ami.region).describe_images(ImageIds=[ami.ami_id])["Images"][0]["Tags"]
        }
        assert tags["bakehouse:state"] == "published"


# ---- verification instance ----------------------------------------------------------------------


def test_verify_instance_is_removed_after_a_failure(tmp_path: Path) -> None:
    seen = {}
    with (
        pytest.raises(RuntimeError, match="control failed"),
        verify_instance(
            Aws(),
            REGIONS[0],
            "ami-0d0000000000000a2",
            "web",
            "20260101T000000Z-abcdef",
            "192.0.2.10/32",
            "t3.small",
            None,
            tmp_path,
        ) as inst,
    ):
        described = ec2().describe_instances(InstanceIds=[inst.instance_id])
        seen["instance"] = described["Reservations"][0]["Instances"][0]
        seen["group"] = ec2().describe_security_groups(GroupIds=[inst.group_id])["SecurityGroups"][
            0
        ]
        assert (tmp_path / "verify-key").stat().st_mode & 0o777 == 0o600
        raise RuntimeError("control failed")
    assert seen["instance"]["MetadataOptions"]["HttpTokens"] == "required"
    ingress = seen["group"]["IpPermissions"]
    assert [(p["FromPort"], [r["CidrIp"] for r in p["IpRanges"]]) for p in ingress] == [
        (22, ["192.0.2.10/32"])
    ]
    state = ec2().describe_instances(InstanceIds=[seen["instance"]["InstanceId"]])
    assert state["Reservations"][0]["Instances"][0]["State"]["Name"] == "terminated"
    assert (
        ec2().describe_key_pairs(
            Filters=[{"Name": "key-name", "Values": ["bakehouse-verify-20260101T000000Z-abcdef"]}]
        )["KeyPairs"]
        == []
    )
    groups = ec2().describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["bakehouse-verify-20260101T000000Z-abcdef"]}]
    )["SecurityGroups"]
    assert groups == []


def test_verify_instance_for_ssm_has_no_key_and_no_inbound_rule(tmp_path: Path) -> None:
    iam = client("iam")
    iam.create_role(RoleName="bakehouse-verify", AssumeRolePolicyDocument="{}")
    iam.create_instance_profile(InstanceProfileName="bakehouse-verify")
    iam.add_role_to_instance_profile(
        InstanceProfileName="bakehouse-verify", RoleName="bakehouse-verify"
    )
    run = tmp_path / "run"
    run.mkdir()
    seen = {}
    with (
        pytest.raises(KeyboardInterrupt),
        verify_instance(
            Aws(),
            REGIONS[0],
            "ami-0d0000000000000a2",
            "web",
            "20260101T000000Z-ssm001",
            None,
            "t3.small",
            None,
            run,
            instance_profile="bakehouse-verify",
        ) as inst,
    ):
        assert inst.key_name is None and inst.key_file is None
        seen["instance"] = ec2().describe_instances(InstanceIds=[inst.instance_id])["Reservations"][
            0
        ]["Instances"][0]
        seen["group"] = ec2().describe_security_groups(GroupIds=[inst.group_id])["SecurityGroups"][
            0
        ]
        raise KeyboardInterrupt  # Ctrl-C in the middle of the suite
    instance = seen["instance"]
    assert "KeyName" not in instance
    assert instance["IamInstanceProfile"]["Arn"].endswith(":instance-profile/bakehouse-verify")
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert seen["group"]["IpPermissions"] == []
    assert list(run.iterdir()) == []
    state = ec2().describe_instances(InstanceIds=[instance["InstanceId"]])
    assert state["Reservations"][0]["Instances"][0]["State"]["Name"] == "terminated"
    groups = ec2().describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["bakehouse-verify-20260101T000000Z-ssm001"]}]
    )["SecurityGroups"]
    assert groups == []


# ---- prune --------------------------------------------------------------------------------------


def _make_ami(name: str, state: str = "verified") -> str:
    inst = ec2().run_instances(
        ImageId="ami-0d0000000000000a2", MinCount=1, MaxCount=1, InstanceType="t3.small"
    )["Instances"][0]["InstanceId"]
    ami = ec2().create_image(
        InstanceId=inst,
        Name=name,
        TagSpecifications=[
            {
                "ResourceType": "image",
                "Tags": [
                    {"Key": "bakehouse:image", "Value": "web"},
                    {"Key": "bakehouse:state", "Value": state},
                ],
            }
        ],
    )["ImageId"]
    ec2().terminate_instances(InstanceIds=[inst])
    image = ec2().describe_images(ImageIds=[ami])["Images"][0]
    snaps = [b["Ebs"]["SnapshotId"] for b in image["BlockDeviceMappings"] if "Ebs" in b]
    ec2().create_tags(
        Resources=snaps, Tags=[{"Key": "bakehouse:image", "Value": "web"}]
    )  # as Packer
    return str(ami)


def test_prune_keeps_every_in_use_ami() -> None:
    amis = [_make_ami(f"bakehouse-web-{i}") for i in range(6)]
    ec2().create_launch_template(LaunchTemplateName="web", LaunchTemplateData={"ImageId": amis[0]})
    client("ssm").put_parameter(
        Name="/bakehouse/web/stable", Value=amis[1], Type="String", DataType="aws:ec2:image"
    )
    ec2().run_instances(ImageId=amis[2], MinCount=1, MaxCount=1, InstanceType="t3.small")
    autoscaling = client("autoscaling")
    autoscaling.create_launch_configuration(
        LaunchConfigurationName="web-lc", ImageId=amis[3], InstanceType="t3.small"
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="web-asg",
        LaunchConfigurationName="web-lc",
        MinSize=0,
        MaxSize=0,
        AvailabilityZones=["eu-west-1a"],
    )
    found, usage = prune.gather(Aws(), "web", [REGIONS[0]])
    assert {a.ami_id for a in found} == set(amis)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    decisions = prune.plan(found, usage, keep=1, min_age_days=7, now=later)
    keep = {d.ami.ami_id: d.reason for d in decisions if d.action == "keep"}
    for used in amis[:4]:
        assert used in keep, f"{used} is in use but would be pruned"
    users = usage[REGIONS[0]].users
    assert "launch template web v1" in users[amis[0]]
    assert "SSM /bakehouse/web/stable" in users[amis[1]]
    assert any(u.startswith("instance i-") for u in users[amis[2]])
    assert "auto-scaling group web-asg" in users[amis[3]]
    deleted = {d.ami.ami_id for d in decisions if d.action == "delete"}
    newest = [d.ami.ami_id for d in decisions if d.reason == "among the 1 newest verified"]
    assert len(newest) == 1
    # six AMIs: four in use, one kept as the newest verified (which may be in use too)
    assert deleted == set(amis[4:]) - set(newest) and deleted
    snapshots = {s for d in decisions if d.action == "delete" for s in d.ami.snapshots}
    prune.execute(Aws(), decisions)
    remaining = {i["ImageId"] for i in ec2().describe_images(Owners=["self"])["Images"]}
    assert not deleted & remaining
    assert set(amis[:4]) <= remaining
    left = {s["SnapshotId"] for s in ec2().describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    assert snapshots and not snapshots & left


def test_prune_respects_minimum_age() -> None:
    amis = [_make_ami(f"bakehouse-web-{i}") for i in range(3)]
    found, usage = prune.gather(Aws(), "web", [REGIONS[0]])
    decisions = prune.plan(found, usage, keep=1, min_age_days=7, now=dt.datetime.now(dt.UTC))
    assert [d.action for d in decisions] == ["keep"] * 3
    assert sum("younger than 7 days" in d.reason for d in decisions) == 2
    assert len(amis) == 3


# ---- gc -----------------------------------------------------------------------------------------


def test_gc_removes_only_what_finished_runs_left() -> None:
    old, fresh = (
        "20260101T000000Z-0ld000",
        dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-fresh0"),
    )
    for run_id in (old, fresh):
        tags = [{"Key": "bakehouse:run-id", "Value": run_id}]
        ec2().run_instances(
            ImageId="ami-0d0000000000000a2",
            MinCount=1,
            MaxCount=1,
            InstanceType="t3.small",
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )
        ec2().create_key_pair(
            KeyName=f"k-{run_id}", TagSpecifications=[{"ResourceType": "key-pair", "Tags": tags}]
        )
        ec2().create_security_group(
            GroupName=f"g-{run_id}",
            Description="x",
            TagSpecifications=[{"ResourceType": "security-group", "Tags": tags}],
        )
        ec2().create_volume(
            AvailabilityZone="eu-west-1a",
            Size=1,
            TagSpecifications=[{"ResourceType": "volume", "Tags": tags}],
        )
    found = aws_gc.find(Aws(), [REGIONS[0]], active=set(), older_than=dt.timedelta(hours=6))
    assert {x.run_id for x in found} == {old}
    assert {x.kind for x in found} == {"instance", "key-pair", "security-group", "volume"}
    aws_gc.remove(Aws(), found)
    assert aws_gc.find(Aws(), [REGIONS[0]], active=set(), older_than=dt.timedelta(hours=6)) == []
    left = aws_gc.find(Aws(), [REGIONS[0]], active=set(), older_than=dt.timedelta(seconds=0))
    assert {x.run_id for x in left} == {fresh}


def test_calls_are_counted() -> None:
    aws = Aws()
    resolve(aws, FILTER, REGIONS[0])
    assert aws.calls[("ec2", "DescribeImages")] == 1
    assert ACCOUNT  # moto's account owns what tests create


def test_finish_sets_imdsv2_and_deprecation_with_stubber() -> None:
    """The exact requests, checked by botocore's Stubber against the real EC2 service model
    (moto has no image deprecation; the tests' moto_ext.py adds it for the whole-bake tests)."""
    from botocore.stub import Stubber

    aws = Aws()
    ec2_client = aws.client("ec2", REGIONS[0])
    now = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
    worker = spec("worker")
    with Stubber(ec2_client) as stub:
        stub.add_response(
            "modify_image_attribute",
            {},
            {"ImageId": "ami-0123456789abcdef0", "ImdsSupport": {"Value": "v2.0"}},
        )
        stub.add_response(
            "enable_image_deprecation",
            {"Return": True},
            {
                "ImageId": "ami-0123456789abcdef0",
                "DeprecateAt": now + dt.timedelta(days=worker.patch.max_age_days),
            },
        )
        aws_target.finish_amis(aws, worker, [RegionalAmi(REGIONS[0], "ami-0123456789abcdef0")], now)
        stub.assert_no_pending_responses()


def test_the_test_switches_only_work_against_an_emulated_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Skipping provisioning (communicator none) is for builds against the test server: with
    no endpoint override, a build always provisions over SSH."""
    from bakehouse.runs import run_dir

    monkeypatch.setenv(aws_target.COMMUNICATOR_ENV, "none")
    with run_dir(tmp_path, "web", "t") as run:
        emulated = target().packer_variables(run, tmp_path, "fp", "c")
        monkeypatch.delenv("BAKEHOUSE_AWS_ENDPOINT")
        real = target().packer_variables(run, tmp_path, "fp", "c")
    assert emulated["communicator"] == "none"
    assert "communicator" not in real


def amis_of_worker() -> list[dict]:  # type: ignore[type-arg]
    out = []
    for region in REGIONS:
        out += ec2(region).describe_images(
            Filters=[{"Name": "tag:bakehouse:image", "Values": ["worker"]}]
        )["Images"]
    return out


def snapshots_of_worker() -> list[dict]:  # type: ignore[type-arg]
    out = []
    for region in REGIONS:
        out += ec2(region).describe_snapshots(
            Filters=[{"Name": "tag:bakehouse:image", "Values": ["worker"]}]
        )["Snapshots"]
    return out


@pytest.mark.parametrize("where", ["waiting for the copies", "Ctrl-C", "finishing", "cleanup"])
def test_a_failure_after_the_amis_exist_removes_all_of_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Whatever stops the bake once AMIs exist — a copy that never becomes available, Ctrl-C,
    the IMDSv2/deprecation step, removing the build instance — every AMI of the run (home
    region and copies) and its snapshots go, before the error does."""
    monkeypatch.setenv("BAKEHOUSE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv(aws_target.COMMUNICATOR_ENV, "none")
    made: list[RegionalAmi] = []
    real_copy, real_wait, real_cleanup = build.copy, build.wait_available, build.cleanup

    def copy(*args: object, **kwargs: object) -> RegionalAmi:
        made.append(real_copy(*args, **kwargs))  # type: ignore[arg-type]
        if where == "Ctrl-C":
            raise KeyboardInterrupt
        return made[-1]

    def wait(aws: Aws, amis: list[RegionalAmi], timeout: float = 3600) -> None:
        if where == "waiting for the copies" and amis and amis[0].region != REGIONS[0]:
            raise AwsError(f"waiting for {amis[0].ami_id} failed: Failed state")
        real_wait(aws, amis, timeout)

    def cleanup(aws: Aws, region: str, created: dict[str, str], timeout: float = 600) -> None:
        real_cleanup(aws, region, created, timeout)
        if where == "cleanup" and "instance" in created:
            raise AwsError("could not remove everything the run launched")

    def finish(*args: object) -> None:
        raise AwsError("modifying the AMI failed: RequestLimitExceeded")

    monkeypatch.setattr(build, "copy", copy)
    monkeypatch.setattr(build, "wait_available", wait)
    monkeypatch.setattr(build, "cleanup", cleanup)
    if where == "finishing":
        monkeypatch.setattr(aws_target, "finish_amis", finish)
    error = KeyboardInterrupt if where == "Ctrl-C" else AwsError
    with pytest.raises(error):
        bake(Project(ROOT), spec("worker"), target(), BakeRequest(verify=False), QUIET)
    assert made, "the copy was made before the failure"
    assert amis_of_worker() == []
    assert snapshots_of_worker() == []


def test_removing_amis_goes_on_past_an_error_with_stubber() -> None:
    """One AMI that cannot be removed does not keep the others: each is tried, and what is left
    is said."""
    from botocore.stub import Stubber

    aws = Aws()
    home, other = aws.client("ec2", REGIONS[0]), aws.client("ec2", REGIONS[1])
    image = {"Images": [{"ImageId": "ami-0aaaaaaaaaaaaaaaa", "BlockDeviceMappings": []}]}
    second = {
        "Images": [
            {
                "ImageId": "ami-0bbbbbbbbbbbbbbbb",
                "BlockDeviceMappings": [{"Ebs": {"SnapshotId": "snap-0b"}}],
            }
        ]
    }
    with Stubber(home) as h, Stubber(other) as o:
        h.add_response("describe_images", image, {"ImageIds": ["ami-0aaaaaaaaaaaaaaaa"]})
        h.add_client_error("deregister_image", "UnauthorizedOperation")
        o.add_response("describe_images", second, {"ImageIds": ["ami-0bbbbbbbbbbbbbbbb"]})
        o.add_response("deregister_image", {}, {"ImageId": "ami-0bbbbbbbbbbbbbbbb"})
        o.add_response("delete_snapshot", {}, {"SnapshotId": "snap-0b"})
        left = build.discard(
            aws,
            [
                RegionalAmi(REGIONS[0], "ami-0aaaaaaaaaaaaaaaa"),
                RegionalAmi(REGIONS[1], "ami-0bbbbbbbbbbbbbbbb"),
            ],
        )
        o.assert_no_pending_responses()
    assert len(left) == 1 and "ami-0aaaaaaaaaaaaaaaa" in left[0]


def test_the_bake_hands_its_key_and_root_device_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The definition's KMS key reaches the launch and every copy; the base's own root device
    the launch (moto's base uses /dev/xvda, so this one says /dev/sda1)."""
    from bakehouse.aws import resolve as resolve_mod

    monkeypatch.setenv("BAKEHOUSE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv(aws_target.COMMUNICATOR_ENV, "none")
    seen: dict[str, object] = {}
    real_launch, real_copy, real_resolve = build.launch_request, build.copy, resolve_mod.resolve

    def launch(*args: object) -> dict:  # type: ignore[type-arg]
        seen["volumes"] = args[5]
        request = real_launch(*args)  # type: ignore[arg-type]
        for mapping in request["BlockDeviceMappings"]:
            mapping["Ebs"].pop("KmsKeyId")  # moto holds no such key
        request["BlockDeviceMappings"][0]["DeviceName"] = "/dev/xvda"
        return request

    def copy(*args: object, **kwargs: object) -> RegionalAmi:
        seen.setdefault("copy_keys", []).append(args[6])  # type: ignore[attr-defined]
        return real_copy(*args[:6], None)  # type: ignore[arg-type]

    def resolve(*args: object) -> object:
        return dataclasses.replace(real_resolve(*args), root_device="/dev/sda1")  # type: ignore[arg-type]

    monkeypatch.setattr(build, "launch_request", launch)
    monkeypatch.setattr(build, "copy", copy)
    monkeypatch.setattr(resolve_mod, "resolve", resolve)
    worker = spec("worker")
    aws = dataclasses.replace(worker.targets.aws, kms_key_id="alias/bakehouse")
    worker = dataclasses.replace(worker, targets=dataclasses.replace(worker.targets, aws=aws))
    bake(Project(ROOT), worker, target(), BakeRequest(verify=False, publish=False), QUIET)
    assert seen["volumes"] == build.Volumes("/dev/sda1", 8, 4, "alias/bakehouse")
    assert seen["copy_keys"] == ["alias/bakehouse"]


def test_a_build_instance_without_an_address_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Provisioning over SSH needs an address: none (a private subnet, no public IP) is an
    error before Packer starts, and nothing is left."""
    import contextlib as ctx

    from bakehouse import packer as packer_mod

    monkeypatch.setenv("BAKEHOUSE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv(aws_target.COMMUNICATOR_ENV, raising=False)
    real = build.build_instance

    @ctx.contextmanager
    def addressless(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        with real(*args, **kwargs) as inst:  # type: ignore[arg-type]
            yield dataclasses.replace(inst, address=None)

    monkeypatch.setattr(build, "build_instance", addressless)
    monkeypatch.setattr(packer_mod, "build", lambda *a, **k: pytest.fail("Packer started"))
    with pytest.raises(AwsError, match="has no address to reach"):
        bake(Project(ROOT), spec("worker"), target(), BakeRequest(verify=False), QUIET)
    running = ec2().describe_instances(
        Filters=[
            {"Name": "tag:bakehouse:image", "Values": ["worker"]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopped"]},
        ]
    )["Reservations"]
    assert running == []


def test_a_build_instance_that_never_runs_is_still_terminated_with_stubber() -> None:
    """The instance is noted for removal as soon as RunInstances answers: one that dies while
    starting (the waiter sees it terminated) is terminated again and waited for, not left."""
    from botocore.stub import Stubber

    aws = Aws()
    ec2_client = aws.client("ec2", REGIONS[0])
    gone = {
        "Reservations": [
            {"Instances": [{"InstanceId": "i-0abc", "State": {"Name": "terminated", "Code": 48}}]}
        ]
    }
    request = build.launch_request(
        "ami-1", "t3.small", None, "sg-1", None, build.Volumes("/dev/xvda", 8, 4, None), []
    )
    with Stubber(ec2_client) as stub:
        stub.add_response("run_instances", {"Instances": [{"InstanceId": "i-0abc"}]}, request)
        stub.add_response("describe_instances", gone, {"InstanceIds": ["i-0abc"]})
        stub.add_response("terminate_instances", {}, {"InstanceIds": ["i-0abc"]})
        stub.add_response("describe_instances", gone, {"InstanceIds": ["i-0abc"]})
        with (
            pytest.raises(AwsError, match="launching the build instance"),
            build.build_instance(aws, REGIONS[0], request, timeout=5),
        ):
            pytest.fail("an instance that never ran was handed on")
        stub.assert_no_pending_responses()
