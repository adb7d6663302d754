"""Recorded versions for lifecycle tests, made by the production record step.

A version is recorded by ``bakehouse.lifecycle.bake.step_record`` itself (the report, the SBOM,
the target's own marks — AMI state tags on aws — and the whole catalogue entry), from a staged
folder holding a real package manifest. What stands in for the bake is only the artifact: an
AMI made in moto, or a placeholder disk. A "verified" version then goes through the
catalogue's state machine (and, on aws, gets its AMIs' tags) the way a passed verification
leaves it; the verification itself is proven on real VMs in tests/e2e.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from bakehouse import debindex
from bakehouse.catalogue import Record
from bakehouse.files import describe
from bakehouse.lifecycle import bake as bake_step
from bakehouse.progress import Progress
from bakehouse.runs import Run
from bakehouse.spec import ImageSpec
from bakehouse.suite import Verified, parse_junit, passes
from bakehouse.targets.base import Baked, BakeRequest, Target

FIXTURES = Path(__file__).parent / "fixtures"


def manifest(**versions: str) -> dict[str, Any]:
    """A package manifest: the real one of a baked web image, with some versions replaced."""
    data: dict[str, Any] = json.loads((FIXTURES / "web-manifest.json").read_text())
    for pkg in data["packages"]:
        if pkg["name"] in versions:
            pkg["version"] = versions[pkg["name"]]
    return data


def current_manifest(target: Target, spec: ImageSpec) -> dict[str, Any]:
    """The web manifest with every package at the version the signed indexes offer now: an
    image recorded with it has nothing pending."""
    offered = bake_step.indexes_for(target.project, spec).candidates()
    data = manifest()
    for pkg in data["packages"]:
        if pkg["name"] in offered:
            pkg["version"] = offered[pkg["name"]][0]
    return data


def make_ami(region: str, image: str, version: str) -> str:
    """An AMI in moto, tagged the way a bake tags its AMIs (some of the tags)."""
    from tests.aws.conftest import client

    ec2 = client("ec2", region)
    base = "ami-0d0000000000000a2" if region == "eu-west-1" else "ami-0d0000000000000a1"
    inst = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1, InstanceType="t3.small")
    iid = inst["Instances"][0]["InstanceId"]
    tags = [
        {"Key": "bakehouse:image", "Value": image},
        {"Key": "bakehouse:version", "Value": version},
        {"Key": "bakehouse:run-id", "Value": f"20260101T000000Z-{version[-6:]}"},  # long over
        {"Key": "bakehouse:state", "Value": "baked"},
    ]
    ami = ec2.create_image(
        InstanceId=iid,
        Name=f"bakehouse-{image}-{version}",
        TagSpecifications=[{"ResourceType": "image", "Tags": tags}],
    )["ImageId"]
    ec2.terminate_instances(InstanceIds=[iid])
    return str(ami)


class _Built(list):  # type: ignore[type-arg]
    """What a bake hands the record step, with the package indexes it was built against:
    empty here (the diff then has no security marks), so recording fetches nothing."""

    indexes = debindex.Indexes()


def record_version(
    target: Target,
    spec: ImageSpec,
    version: str,
    work: Path,
    *,
    packages: dict[str, Any] | None = None,
    verified: bool = True,
    created: dt.datetime | None = None,
    evidence: str | None = None,
    outcomes: dict[str, str] | None = None,
) -> Record:
    """Record ``version`` of ``spec`` on ``target`` through the production record step.

    ``evidence``: the stem of a real suite run's JUnit and compliance summary in
    fixtures/evidence, kept with the version as a verification leaves it (``outcomes``: some
    controls' outcomes replaced, e.g. one failed)."""
    stage = work / f"stage-{target.name}-{spec.name}-{version}"
    stage.mkdir(parents=True)
    data = packages if packages is not None else manifest()
    (stage / "manifest.json").write_text(json.dumps(data))
    inputs = target.inputs(spec)
    fields: dict[str, Any] = {}
    context: Any = None
    if target.name == "aws":
        from bakehouse.aws.publish import RegionalAmi

        regions = list(target.settings(spec).regions)  # type: ignore[attr-defined]
        amis = [RegionalAmi(r, make_ami(r, spec.name, version)) for r in regions]
        fields = {"amis": [{"region": a.region, "ami_id": a.ami_id} for a in amis]}
        context = _Built(amis)
        base = {"ami_id": inputs.base_key, "key": inputs.base_key, "region": regions[0]}
    else:
        (stage / "disk.qcow2").write_bytes(b"a disk")
        context = _Built()
        base = {"id": f"base-{inputs.base_key}", "key": inputs.base_key}
    baked = Baked(
        version=version,
        stage=stage,
        fingerprint=inputs.fingerprint,
        git_commit="test",
        base=base,
        manifest=data,
        artifacts={"manifest": describe(stage / "manifest.json")},
        fields=fields,
        context=context,
    )
    started = created or dt.datetime.now(dt.UTC)
    run = Run(f"test-{version}", work, spec.name, started, work)
    proof = None
    if evidence is not None:
        controls = parse_junit(FIXTURES / "evidence" / f"{evidence}.junit.xml")
        for control in controls:
            control["outcome"] = (outcomes or {}).get(control["id"], control["outcome"])
        summary = {
            k: sum(c["outcome"] == k for c in controls)
            for k in ("passed", "failed", "error", "waived", "skipped")
        }
        cis = json.loads((FIXTURES / "evidence" / f"{evidence}.compliance.json").read_text())
        junit = FIXTURES / "evidence" / f"{evidence}.junit.xml"
        proof = Verified(passes(0, summary), controls, 1.0, 1.0, junit, junit, summary, [], cis)
    ctx = bake_step.Context(
        target.project,
        spec,
        target,
        BakeRequest(verify=False, publish=False),
        run,
        Progress(quiet=True),
        baked=baked,
        verified=proof,
    )
    bake_step.step_record(ctx)
    if created is not None:
        target.catalogue.update(spec.name, version, lambda r: r.update(created=created.isoformat()))
    if not verified:
        return target.catalogue.image(spec.name, version)
    if target.name == "aws":
        from bakehouse.aws.publish import tag_state

        tag_state(target.aws, context, "verified")  # type: ignore[attr-defined]
    return target.catalogue.transition(spec.name, version, "verified", "every control passed")
