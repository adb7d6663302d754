"""Nightly at fleet scale: `nightly --plan --json` over 100 AMI images in moto plans exactly the
ones with pending security updates, in the shape GitHub Actions' matrix takes (checked with
actionlint and the workflow schema); `nightly --gather` turns the bake jobs' results into one
report and fails when a bake failed or left nothing."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bakehouse.files import describe
from bakehouse.lifecycle.bake import now_iso
from bakehouse.lifecycle.nightly import plan_bakes
from bakehouse.project import Project
from bakehouse.spec import Catalog
from bakehouse.targets.aws import AwsTarget
from tests.conftest import ROOT, TODAY, complaints
from tests.recorded import current_manifest, manifest

pytestmark = pytest.mark.usefixtures("aws_env")

BIN = Path(sys.executable).parent
IMAGES = 100
VERSION = "20261129.030000"


def fleet(tmp_path: Path, size: int) -> tuple[Path, set[str]]:
    """A project with ``size`` images (each extends web) and, for each, a recorded version on
    aws: every seventh with an openssl that has a security update pending, the rest current."""
    project = tmp_path / "project"
    for sub in ("images", "packer", "tests"):
        shutil.copytree(ROOT / sub, project / sub)
    names = [f"fleet-{i:03d}" for i in range(size)]
    for name in names:
        (project / "images" / f"{name}.yaml").write_text(f"extends: web\ndescription: {name}\n")
    target = AwsTarget(Project(project))
    catalog = Catalog(project / "images", project / "packer" / "scripts")
    current = current_manifest(target, catalog.load("web", TODAY))
    stale = set(names[::7])
    for name in names:
        spec = catalog.load(name, TODAY)
        stage = tmp_path / "stage" / name
        stage.mkdir(parents=True)
        packages = manifest(openssl="3.0.0-1") if name in stale else current
        (stage / "manifest.json").write_text(json.dumps(packages))
        inputs = target.inputs(spec)
        record = {
            "kind": "image", "id": f"{name}-{VERSION}", "name": name, "version": VERSION,
            "target": "aws", "created": now_iso(), "state": "published", "run_id": "r",
            "fingerprint": inputs.fingerprint,
            "base": {"ami_id": inputs.base_key, "key": inputs.base_key},
            "artifacts": {"manifest": describe(stage / "manifest.json")}, "amis": [],
        }  # fmt: skip
        target.catalogue.add(record, stage)
    return project, stale


def cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "bakehouse"), *args], cwd=project, capture_output=True, text=True, check=False
    )


@pytest.mark.slow
def test_the_plan_of_100_images_is_exactly_those_with_security_updates(tmp_path: Path) -> None:
    project, stale = fleet(tmp_path, IMAGES)
    images = [a for i in range(IMAGES) for a in ("--image", f"fleet-{i:03d}")]
    done = cli(project, "nightly", "--plan", "--target", "aws", "--json", *images)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    planned = {row["image"] for row in plan["matrix"]["include"]}
    reasons = {d["image"]: d["reason"] for d in plan["decisions"]}
    assert planned == stale, {n: reasons[n] for n in planned ^ stale}
    assert plan["count"] == len(stale) == 15
    assert all(row["security"] > 0 for row in plan["matrix"]["include"])
    assert {reasons[n] for n in reasons if n not in stale} == {"up to date"}
    # four runners of a CodeBuild batch, one --shard each: every image decided by exactly one,
    # and together they plan exactly what the single plan did
    shares = []
    for k in range(1, 5):
        part = cli(
            project, "nightly", "--plan", "--target", "aws", "--json", "--shard", f"{k}/4", *images
        )
        assert part.returncode == 0, part.stderr
        shares.append(json.loads(part.stdout))
    decided = [d["image"] for share in shares for d in share["decisions"]]
    assert sorted(decided) == sorted(reasons) and len(decided) == IMAGES
    assert {r["image"] for share in shares for r in share["matrix"]["include"]} == stale
    # the matrix as GitHub Actions takes it: actionlint and the workflow schema accept it
    workflow = {
        "on": "workflow_dispatch",
        "jobs": {
            "bake": {
                "runs-on": "ubuntu-24.04",
                "strategy": {"fail-fast": False, "max-parallel": 4, "matrix": plan["matrix"]},
                "steps": [{"run": "echo ${{ matrix.image }} ${{ matrix.reason }}"}],
            }
        },
    }
    path = tmp_path / "fanout.yml"
    path.write_text(yaml.safe_dump(workflow))
    assert complaints("actionlint", "-no-color", path) == ""
    assert complaints("check-jsonschema", "--builtin-schema", "vendor.github-workflows", path) == ""


def test_gather_reports_every_planned_bake_and_fails_for_one_that_left_nothing(
    tmp_path: Path,
) -> None:
    project, stale = fleet(tmp_path, 15)
    first, second, third = sorted(stale)
    catalog = Catalog(project / "images", project / "packer" / "scripts")
    specs = [catalog.load(n, TODAY) for n in (first, second, third, "fleet-001")]
    runs = tmp_path / "nightly"
    plan_bakes(Project(project), AwsTarget(Project(project)), specs, folder=runs)
    # GitLab's child pipeline: valid, one matrix bake job of the planned images, then gather
    child = runs / "bakes.gitlab-ci.yml"
    assert complaints("check-jsonschema", "--builtin-schema", "vendor.gitlab-ci", child) == ""
    jobs = yaml.safe_load(child.read_text())
    assert jobs["bake"]["parallel"]["matrix"] == [{"IMAGE": [first, second, third]}]
    assert jobs["gather"]["when"] == "always" and jobs["gather"]["needs"] == [
        {"pipeline": "$PARENT_PIPELINE_ID", "job": "nightly", "artifacts": True},
        {"job": "bake", "artifacts": True},
    ]
    for job in (jobs["bake"], jobs["gather"]):
        assert (
            job["environment"] == {"name": "bakehouse-aws"} and "AWS_ID_TOKEN" in job["id_tokens"]
        )
    assert "./run invoke nightly --gather nightly --target aws --report reports" in "\n".join(
        jobs["gather"]["script"]
    )
    baked = {"id": f"{first}-{VERSION}", "image": first, "state": "published", "run_id": "x1"}
    (runs / f"bake-{first}.json").write_text(json.dumps(baked))
    failed = {"error": "the hardening suite failed: sshd-06", "exit": 1}
    (runs / f"bake-{second}.json").write_text(json.dumps(failed))
    # third: its job died before writing anything
    done = cli(project, "nightly", "--gather", str(runs), "--target", "aws", "--json")
    assert done.returncode == 1, done.stderr
    rows = {r["image"]: r for r in json.loads((runs / "nightly.json").read_text())["images"]}
    assert (rows[first]["ok"], rows[first]["run_id"]) == (True, "x1")
    assert not rows[second]["ok"] and "sshd-06" in rows[second]["result"]
    assert (
        not rows[third]["ok"] and rows[third]["result"] == "no result: the bake job did not finish"
    )
    assert not rows["fleet-001"]["ran"] and rows["fleet-001"]["reason"] == "up to date"
    # nothing to bake: the child pipeline only gathers (a report saying so)
    quiet = tmp_path / "quiet"
    plan_bakes(Project(project), AwsTarget(Project(project)), specs[3:], folder=quiet)
    assert list(yaml.safe_load((quiet / "bakes.gitlab-ci.yml").read_text())) == [
        "stages", "default", "gather"
    ]  # fmt: skip
    # a folder without the plan is bad input, not a pass
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = cli(project, "nightly", "--gather", str(empty), "--target", "aws")
    assert refused.returncode == 2 and "plan.json" in refused.stderr


@pytest.mark.slow  # the backoff itself takes seconds
def test_api_throttling_is_backed_off_and_retried_not_failed() -> None:
    """Many bakes at once make AWS throttle: bakehouse's clients retry with backoff (botocore's
    adaptive mode) instead of failing the bake. EC2 answers the first three DescribeImages
    with RequestLimitExceeded, as it does under load; the fourth attempt gets moto's answer."""
    import time

    from botocore.awsrequest import AWSResponse

    from bakehouse.aws.session import Aws

    aws = Aws(region="eu-west-1")
    ec2 = aws.client("ec2")
    attempts: list[float] = []
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
        b"<Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>"
        b"</Error></Errors><RequestID>r</RequestID></Response>"
    )

    def throttle(request: object, **_: object) -> AWSResponse | None:
        attempts.append(time.monotonic())
        if len(attempts) <= 3:
            return AWSResponse("https://ec2", 503, {}, _Raw(body))
        return None  # the real call, to moto

    ec2.meta.events.register_first("before-send.ec2.DescribeImages", throttle)
    try:
        images = ec2.describe_images(Owners=["136693071363"])["Images"]
    finally:
        ec2.meta.events.unregister("before-send.ec2.DescribeImages", throttle)
    assert images and len(attempts) == 4
    waits = [b - a for a, b in itertools.pairwise(attempts)]
    assert sum(waits) > 0.1, waits  # it backed off between attempts, not a tight loop
    assert aws.calls[("ec2", "DescribeImages")] == 1  # one call as bakehouse counts them
    # how long it keeps at it: botocore's own default gives up after 5 attempts (legacy) or 3
    retries = ec2.meta.config.retries
    assert (retries["mode"], retries["total_max_attempts"]) == ("adaptive", 9)  # 1 + 8 retries


class _Raw:
    """The raw body botocore reads from a response."""

    def __init__(self, data: bytes):
        self.data = data

    def stream(self, *_: object, **__: object) -> list[bytes]:
        return [self.data]
