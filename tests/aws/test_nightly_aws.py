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
    """What a CI runner checks out: the definitions, templates, scripts and the suite (the
    Debian 13 definitions: the other releases' variants would only add their indexes)."""
    for sub in ("images", "packer", "tests/hardening"):
        shutil.copytree(ROOT / sub, dest / sub)
    for variant in (dest / "images").glob("web-*.yaml"):
        variant.unlink()
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


@pytest.mark.slow  # two whole nightly runs as separate processes: seconds
def test_a_fresh_runner_decides_like_the_baking_machine(tmp_path: Path, index_cache: Path) -> None:
    baker, fresh = clone(tmp_path / "baker"), clone(tmp_path / "fresh")
    state = tmp_path / "baker-state"
    for folder in (state, tmp_path / "fresh-state"):  # a download cache of Debian's indexes only
        (folder / "cache").mkdir(parents=True)
        (folder / "cache" / "indexes").symlink_to(index_cache)
    # the baking machine: worker baked and never verified, web verified with an old openssl
    # and published (the whole aws bake against this server: test_aws_target.py)
    target = AwsTarget(Project(baker))
    catalog = Catalog(baker / "images", baker / "packer" / "scripts")
    os.environ["BAKEHOUSE_STATE_DIR"] = str(state)
    try:
        worker = record_version(
            target, catalog.load("worker", TODAY), "20261128.010000", tmp_path, verified=False
        )
        web = catalog.load("web", TODAY)
        old = manifest(openssl="3.0.0-1")
        record_version(target, web, "20261128.000000", tmp_path, packages=old)
        publish(target, web, ["latest"])
    finally:
        del os.environ["BAKEHOUSE_STATE_DIR"]
    worker_version = worker["version"]
    images = ("--image", "base", "--image", "web", "--image", "worker")  # Debian 13's indexes
    decide = ("nightly", "--target", "aws", "--dry-run", *images)
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
    """Before the first bake starts (not in its log, minutes later)."""
    from bakehouse.errors import UsageError
    from bakehouse.lifecycle import nightly

    project = Project(ROOT)
    base = Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("base", TODAY)
    with pytest.raises(UsageError, match="--runner-cidr"):
        nightly.nightly(project, AwsTarget(project), [base], report=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_keep_on_failure_is_refused_on_aws_before_anything_starts() -> None:
    """The aws build instance is always removed: a flag that cannot be honoured is refused."""
    from bakehouse.errors import UsageError
    from bakehouse.targets.base import BakeRequest, TargetOptions

    project = Project(ROOT)
    web = Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("web", TODAY)
    target = AwsTarget(project, TargetOptions(runner_cidr="203.0.113.7/32"))
    target.check(web, BakeRequest())  # the same request without the flag is fine
    with pytest.raises(UsageError, match="--keep-on-failure keeps a local build VM"):
        target.check(web, BakeRequest(keep_on_failure=True))
