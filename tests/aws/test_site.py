"""The report site from an aws catalogue in moto (and a local one beside it), opened page by
page in Debian's chromium: what an auditor, an on-call engineer and a lead would look for."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from bakehouse import reports
from bakehouse.lifecycle import channels
from bakehouse.project import Project
from bakehouse.site import build
from bakehouse.spec import Catalog, ImageSpec
from bakehouse.suite import parse_junit
from bakehouse.targets import get
from bakehouse.targets.base import TargetOptions
from tests.browser import visit
from tests.conftest import ROOT, TODAY
from tests.recorded import FIXTURES, manifest, record_version

pytestmark = pytest.mark.usefixtures("aws_env")

V1, V2, V3 = "20261101.000000", "20261102.000000", "20261103.000000"
EVIDENCE = "web-debian-13"
FAILED = "sshd-06"  # the control the second version's verification failed


@pytest.mark.slow  # a browser, 11 pages and a catalogue of 5 versions: seconds
def test_the_site_shows_every_version_control_and_run_in_a_real_browser(tmp_path: Path) -> None:
    project = Project(ROOT)
    aws = get("aws", project, TargetOptions(runner_cidr="192.0.2.1/32"))
    local = get("local", project)
    spec = project_spec()
    # aws: v1 published then revoked, v2 failed one control, v3 verified on latest and stable
    record_version(aws, spec, V1, tmp_path, evidence=EVIDENCE)
    channels.publish(aws, spec, ["stable"], version=V1)
    record_version(
        aws, spec, V2, tmp_path, verified=False, evidence=EVIDENCE, outcomes={FAILED: "failed"}
    )
    aws.catalogue.transition(spec.name, V2, "failed", FAILED)
    v3 = record_version(
        aws, spec, V3, tmp_path, evidence=EVIDENCE, packages=manifest(openssl="3.9.9-1")
    )
    channels.publish(aws, spec, ["latest", "stable"], version=V3)
    channels.revoke(aws, spec, V1, "a <b>bad</b> kernel")
    record_version(local, spec, V1, tmp_path, evidence=EVIDENCE)
    worker = project_spec("worker")  # in two regions
    record_version(aws, worker, V1, tmp_path)
    channels.publish(aws, worker, ["latest"], version=V1)
    # a nightly run that made v3, and a deploy
    runs = tmp_path / "reports"
    row = {
        "image": "web", "bake": True, "reason": "2 pending updates (1 security)", "pending": 2,
        "security": 1, "notes": [], "version": V2, "ran": True, "ok": True, "seconds": 412.0,
        "result": f"web-{V3}: published", "log": "", "run_id": v3["run_id"],
    }  # fmt: skip
    when = dt.datetime(2026, 11, 3, 2, 0, tzinfo=dt.UTC)
    reports.write(reports.nightly([row], "aws", when), runs / "nightly-aws-20261103T020000Z")
    deploy = {
        "kind": "deploy", "at": "2026-11-03T09:00:00+00:00", "image": "web", "target": "aws",
        "channel": "stable", "version": V3, "state": "published", "where": [], "verify": None,
        "steps": [{"step": "decide", "ok": True, "detail": "bake"}],
    }  # fmt: skip
    reports.write(reports.deploy(deploy), runs / "deploy-aws-web")

    out = tmp_path / "site"
    result = build(project, [local, aws], out, [runs], images=["web", "worker"])
    assert result.problems == [] and result.versions == 5 and result.runs == 2

    overview, version_page = "index.html", f"aws/web/{V3}/index.html"
    pages = visit(out, {overview: "site-overview.png", version_page: "site-version.png"})
    expected = {
        "index.html", "runs.html", "local/web/index.html", f"local/web/{V1}/index.html",
        "aws/web/index.html", *(f"aws/web/{v}/index.html" for v in (V1, V2, V3)),
        "local/worker/index.html", "aws/worker/index.html", f"aws/worker/{V1}/index.html",
    }  # fmt: skip
    assert set(pages) == expected
    for rel, page in pages.items():
        assert page.errors == [], (rel, page.errors)
        assert page.broken == [], (rel, page.broken)
        assert page.size < 300 * 1024, (rel, page.size)
        assert page.load_ms < 1000, (rel, page.load_ms)

    # every control of the JUnit evidence, once, with its status in words
    junit = parse_junit(FIXTURES / "evidence" / f"{EVIDENCE}.junit.xml")
    for version in (V1, V2, V3):
        shown = pages[f"aws/web/{version}/index.html"].controls
        assert sorted(shown) == sorted(c["id"] for c in junit), version
    # every status in words (readable without colour), and printed without the navigation
    statuses = {r[3] for r in pages[f"aws/web/{V2}/index.html"].rows if len(r) == 5}
    assert statuses == {"passed", "FAILED", "not applicable"}
    assert pages[version_page].printed_nav is False and pages[overview].printed_nav is False
    failed_page = pages[f"aws/web/{V2}/index.html"].text
    assert f"{FAILED}\t" in failed_page and "FAILED" in failed_page
    assert "not applicable" in pages[version_page].text  # the skipped ones, said so

    # lineage and timeline on the image page; revocation flagged, the reason as text
    image_page = pages["aws/web/index.html"]
    assert image_page.svgs >= 1
    assert "revoked" in image_page.text and "a <b>bad</b> kernel" in image_page.text
    assert "REVOKED" in pages["index.html"].text
    # the overview: one row per image, target and region, channels as they point now
    rows = pages["index.html"].rows
    (web,) = [r for r in rows if r[:2] == ["web", "aws"]]
    assert web[2] == f"eu-west-1\n{v3['amis'][0]['ami_id']}" and web[4:6] == [V3, "published"]
    assert web[7].splitlines() == [f"latest → {V3}", f"stable → {V3}"]
    assert web[10] == "REVOKED: 1"  # v1
    workers = [r for r in rows if r[:2] == ["worker", "aws"]]
    assert [r[2].splitlines()[0] for r in workers] == ["eu-west-1", "eu-central-1"]
    assert all(r[7] == f"latest → {V1}" for r in workers)
    (local_web,) = [r for r in rows if r[:2] == ["web", "local"]]
    assert local_web[2] == "local" and local_web[4:6] == [V1, "verified"]
    assert "eu-central-1" in pages["aws/worker/index.html"].text  # a region node of the lineage
    # the package diff marks what changed since v2; the SBOM is there to download
    assert "openssl" in pages[version_page].text
    sbom = json.loads((out / "aws" / "web" / V3 / "sbom.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    # the runs page links the nightly row and the deploy to the version they made
    runs_text = pages["runs.html"].text
    assert f"{V3} (published)" in runs_text and "Deploy of web on aws to stable" in runs_text


def project_spec(name: str = "web") -> ImageSpec:
    return Catalog(ROOT / "images", ROOT / "packer" / "scripts").load(name, TODAY)
