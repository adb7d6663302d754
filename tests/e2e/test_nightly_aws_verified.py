"""Nightly on the aws target, end to end, with a real image standing in for the EC2 instance:
`invoke nightly --target aws` decides, bakes (a build instance on the moto server, Packer,
AMIs tagged as made), verifies on a fresh instance over SSM Run Command and publishes. moto has
no SSM agent, so the server's agent for instances with a profile is SSH into the web image the local
bake made, booted here (tests/agent.py): every one of the suite's commands travels
SendCommand → the server → the real VM → GetCommandInvocation, through bakehouse's production
SSM backend. Runs after test_local_bake.py (it needs that bake's image)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from bakehouse import catalogue, vm
from bakehouse.progress import Progress
from bakehouse.sshkeys import write_key
from tests.aws.conftest import server_env
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e
BAKEHOUSE = str(Path(sys.executable).parent / "bakehouse")
REGION = "eu-west-1"


def booted_web(state: Path, work: Path) -> tuple[vm.VmConfig, Path]:
    """The web image the local bake made, to boot in snapshot mode, and the key it accepts."""
    local = catalogue.local(state)
    record = local.latest("web", catalogue.USABLE)
    assert record, "runs after test_bake_web_end_to_end"
    folder = local.image_dir("web", record["version"])
    keys = work / "keys"
    keys.mkdir(mode=0o700)
    key = write_key(keys, "bakehouse-agent")
    cfg = vm.VmConfig(
        name="bakehouse-agent",
        disk=folder / "disk.qcow2",
        data_disk=folder / "data.qcow2",
        kernel=folder / "vmlinuz",
        initrd=folder / "initrd.img",
        append=f"root=/dev/vda rw console=ttyS0 bakehouse.ssh_key={key.public_b64}",
        serial_log=work / "console.log",
        accelerator=str(record["accelerator"]["accelerator"]),
        snapshot=True,
    )
    return cfg, key.private


def test_nightly_on_aws_bakes_verifies_and_publishes(state: Path, tmp_path: Path) -> None:
    from tests.aws.moto_ext import AGENT_ENV, running  # moto: only when this test runs

    cfg, private = booted_web(state, tmp_path)
    project = tmp_path / "project"
    for sub in ("images", "packer", "tests/hardening"):
        shutil.copytree(ROOT / sub, project / sub)
    web = project / "images" / "web.yaml"
    web.write_text(
        web.read_text()
        + "targets:\n  aws:\n    verify_via: ssm\n    instance_profile: bakehouse-verify\n"
    )
    with vm.boot(cfg, private, "admin", 900, Progress(), tmp_path / "qemu.log") as booted:
        ssh_config = booted.ssh_config(tmp_path / "ssh_config")
        folder = tmp_path / "moto"
        folder.mkdir()
        seeds = server_env(folder)
        with running(folder, seeds | {AGENT_ENV: str(ssh_config)}) as (url, ca):
            env = {
                **os.environ,
                **seeds,
                "AWS_DEFAULT_REGION": REGION,
                "BAKEHOUSE_AWS_ENDPOINT": url,
                "AWS_CA_BUNDLE": ca,
                "SSL_CERT_FILE": ca,
                "BAKEHOUSE_PACKER_COMMUNICATOR": "none",
                "BAKEHOUSE_STATE_DIR": str(tmp_path / "state"),
            }
            session = boto3.Session(
                aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
            )
            iam = session.client("iam", endpoint_url=url, verify=ca)
            iam.create_role(RoleName="bakehouse-verify", AssumeRolePolicyDocument="{}")
            iam.create_instance_profile(InstanceProfileName="bakehouse-verify")
            iam.add_role_to_instance_profile(
                InstanceProfileName="bakehouse-verify", RoleName="bakehouse-verify"
            )
            result = subprocess.run(
                [
                    BAKEHOUSE,
                    "nightly",
                    "--target",
                    "aws",
                    "--image",
                    "web",
                    "--runner-cidr",
                    "192.0.2.1/32",
                    "--report",
                    str(tmp_path / "report"),
                    "--json",
                ],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                timeout=1800,
                check=False,
            )
            log = (tmp_path / "report" / "logs" / "web.log").read_text()
            assert result.returncode == 0, result.stderr + log[-4000:]
            (web_outcome,) = json.loads(result.stdout)["images"]
            assert (web_outcome["reason"], web_outcome["ran"], web_outcome["ok"]) == (
                "never baked",
                True,
                True,
            )
            s3 = session.client("s3", endpoint_url=url, verify=ca)
            keys = [
                o["Key"]
                for o in s3.list_objects_v2(Bucket="bakehouse-state-123456789012")["Contents"]
            ]
            record_key = next(k for k in keys if k.endswith("/record.json"))
            body = s3.get_object(Bucket="bakehouse-state-123456789012", Key=record_key)["Body"]
            record = json.loads(body.read())
            ssm = session.client("ssm", endpoint_url=url, verify=ca)
            latest = ssm.get_parameter(Name="/bakehouse/web/latest")["Parameter"]["Value"]
    assert record["state"] == "published" and record["channels"] == ["latest"]
    summary = record["verify"]["summary"]
    assert record["verify"]["ok"] and summary["failed"] == 0 and summary["passed"] >= 150
    assert latest == record["amis"][0]["ami_id"]
    assert "verify/junit.xml" in " ".join(keys)  # the evidence is kept with the record
    assert "over SSM" in log and "online in SSM" in log
