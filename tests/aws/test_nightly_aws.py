"""Nightly for AMIs, from the command line: a fresh clone with no state decides exactly what
the machine that baked decides, because the decision reads what the account holds (records
and package manifests in S3, states on the AMIs), never the runner's own folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bakehouse.aws.publish import channel_parameter
from bakehouse.lifecycle.channels import publish
from bakehouse.project import Project
from bakehouse.spec import Catalog
from bakehouse.targets.aws import COMMUNICATOR_ENV, AwsTarget
from tests.aws.conftest import client
from tests.conftest import ROOT, TODAY
from tests.recorded import manifest, record_version

pytestmark = pytest.mark.usefixtures("aws_env")
BAKEHOUSE = str(Path(sys.executable).parent / "bakehouse")


def clone(dest: Path) -> Path:
    """What a CI runner checks out: the definitions, templates, scripts and the suite."""
    for sub in ("images", "packer", "tests/hardening"):
        shutil.copytree(ROOT / sub, dest / sub)
    return dest


def cli(project: Path, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BAKEHOUSE_STATE_DIR": str(state), COMMUNICATOR_ENV: "none"}
    return subprocess.run(
        [BAKEHOUSE, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_fresh_runner_decides_like_the_baking_machine(tmp_path: Path) -> None:
    baker, fresh = clone(tmp_path / "baker"), clone(tmp_path / "fresh")
    state = tmp_path / "baker-state"
    # the baking machine: worker baked by Packer (unverified), web recorded verified with an
    # old openssl and published
    baked = cli(
        baker, state, "bake", "--image", "worker", "--target", "aws",
        "--runner-cidr", "192.0.2.1/32", "--no-verify", "--json",
    )  # fmt: skip
    assert baked.returncode == 0, baked.stderr
    worker_version = json.loads(baked.stdout)["version"]
    target = AwsTarget(Project(baker))
    web = Catalog(baker / "images", baker / "packer" / "scripts").load("web", TODAY)
    os.environ["BAKEHOUSE_STATE_DIR"] = str(state)
    try:
        record_version(
            target, web, "20261128.000000", tmp_path, packages=manifest(openssl="3.0.0-1")
        )
        publish(target, web, ["latest"])
    finally:
        del os.environ["BAKEHOUSE_STATE_DIR"]
    decide = ("nightly", "--target", "aws", "--dry-run")
    on_baker = cli(baker, state, *decide, "--json")
    on_fresh = cli(fresh, tmp_path / "fresh-state", *decide, "--json")
    assert on_baker.returncode == 0, on_baker.stderr
    assert on_fresh.returncode == 0, on_fresh.stderr
    assert json.loads(on_fresh.stdout) == json.loads(on_baker.stdout)
    reasons = {d["image"]: d["reason"] for d in json.loads(on_fresh.stdout)["images"]}
    assert reasons["base"] == "never baked"
    assert reasons["worker"] == f"newest version {worker_version} was never verified"
    assert reasons["web"].endswith("security)") and reasons["web"].split()[0].isdigit()
    # nothing of the account's state was kept on (or needed from) the runner
    assert not (tmp_path / "fresh-state" / "catalogue").exists()
    latest = client("ssm").get_parameter(Name=channel_parameter("web", "latest"))["Parameter"]
    assert latest["Value"].startswith("ami-")


def test_nightly_refuses_to_bake_without_the_runner_address(tmp_path: Path) -> None:
    project = clone(tmp_path / "p")
    result = cli(project, tmp_path / "state", "nightly", "--target", "aws", "--image", "base")
    assert result.returncode == 2, result.stderr
    assert "--runner-cidr" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "state" / "runs").exists() or not any(
        (tmp_path / "state" / "runs").iterdir()
    )
