"""AWS benchmark: prune planning and publishing with 100 images x 3 regions in a moto server.

Starts its own moto server, seeds 100 verified AMIs of one image in each of three regions plus
launch templates, running instances and SSM channels that use some of them, then
counts the API calls (botocore events) and times prune planning (gather + plan) and publishing
all 300 AMIs (no cross-account share); 3 runs (--runs), each on a new server, median and
spread. Target: O(images) calls, under 10 s each.

    .venv/bin/python benchmarks/aws.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _moto import moto_server  # noqa: E402
from _stats import spread  # noqa: E402
from bakehouse.aws import prune  # noqa: E402
from bakehouse.aws.publish import RegionalAmi, publish  # noqa: E402
from bakehouse.aws.session import Aws  # noqa: E402
from bakehouse.spec import Share  # noqa: E402

REGIONS = ["eu-west-1", "eu-central-1", "us-east-1"]
N = 100


def seed(aws: Aws) -> dict[str, list[str]]:
    amis: dict[str, list[str]] = {}
    for region in REGIONS:
        ec2 = aws.client("ec2", region)
        base = ec2.describe_images(Owners=["amazon"], MaxResults=5)["Images"][0]["ImageId"]
        inst = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1, InstanceType="t3.small")[
            "Instances"
        ][0]["InstanceId"]
        ids = []
        for i in range(N):
            ids.append(
                ec2.create_image(
                    InstanceId=inst,
                    Name=f"bakehouse-web-{i:03d}",
                    TagSpecifications=[
                        {
                            "ResourceType": "image",
                            "Tags": [
                                {"Key": "bakehouse:image", "Value": "web"},
                                {"Key": "bakehouse:state", "Value": "verified"},
                            ],
                        }
                    ],
                )["ImageId"]
            )
        ec2.terminate_instances(InstanceIds=[inst])
        for j in range(5):
            ec2.create_launch_template(
                LaunchTemplateName=f"web-{j}", LaunchTemplateData={"ImageId": ids[j]}
            )
        ec2.run_instances(ImageId=ids[10], MinCount=2, MaxCount=2, InstanceType="t3.small")
        aws.client("ssm", region).put_parameter(
            Name="/bakehouse/web/stable", Value=ids[20], Type="String", DataType="aws:ec2:image"
        )
        amis[region] = ids
    return amis


def one() -> tuple[float, dict, float, Aws, int, int]:  # type: ignore[type-arg]
    """One run against a new moto server: seed, then time prune planning and publishing."""
    with moto_server():
        amis = seed(Aws())
        aws = Aws()
        start = time.perf_counter()
        found, usage = prune.gather(aws, "web", REGIONS)
        decisions = prune.plan(
            found, usage, keep=5, min_age_days=0, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        )
        t_prune = time.perf_counter() - start
        prune_calls = dict(aws.calls)
        aws2 = Aws()
        tag_all = Aws()
        for region, ids in amis.items():
            ec2 = tag_all.client("ec2", region)
            for chunk in range(0, len(ids), 50):
                ec2.create_tags(
                    Resources=ids[chunk : chunk + 50],
                    Tags=[{"Key": "bakehouse:state", "Value": "verified"}],
                )
        # no cross-account share: sharing the channel parameters goes through AWS RAM, which
        # moto cannot do for SSM parameters (the tests cover that path with botocore's Stubber)
        share = Share(accounts=(), organizations=(), organizational_units=(), public=False)
        start = time.perf_counter()
        for i in range(N):
            publish(
                aws2,
                "web",
                f"v{i}",
                [RegionalAmi(r, amis[r][i]) for r in REGIONS],
                ["latest"],
                share,
            )
        t_publish = time.perf_counter() - start
    keep = sum(d.action == "keep" for d in decisions)
    return t_prune, prune_calls, t_publish, aws2, len(decisions), keep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs, each on a new server")
    args = parser.parse_args()
    runs = []
    for run in range(args.runs):
        print(f"run {run + 1}: seeding {N} AMIs x {len(REGIONS)} regions in moto …", flush=True)
        runs.append(one())
    t_prune = [r[0] for r in runs]
    t_publish = [r[2] for r in runs]
    _, prune_calls, _, aws2, decided, keep = runs[-1]
    print(f"\nseconds over {args.runs} runs, median (min–max); API calls of the last run")
    print(f"{'operation':<32} {'seconds':>20} {'API calls':>10} {'per image':>10}  target")
    total = sum(prune_calls.values())
    print(
        f"{'prune plan (gather + plan)':<32} {spread(t_prune, '.2f'):>20} {total:>10} "
        f"{total / (N * len(REGIONS)):>10.3f}  < 10 s "
        f"{'ok' if statistics.median(t_prune) < 10 else 'SLOW'}"
    )
    total = aws2.total_calls()
    print(
        f"{'publish 100 images x 3 regions':<32} {spread(t_publish, '.2f'):>20} {total:>10} "
        f"{total / N:>10.1f}  < 10 s {'ok' if statistics.median(t_publish) < 10 else 'SLOW'}"
    )
    if len({sum(r[1].values()) for r in runs}) > 1 or len({r[3].total_calls() for r in runs}) > 1:
        print("note: the API call counts differed between runs")
    print(f"\nprune plan: {decided} AMIs, {keep} kept, {decided - keep} to delete")
    print(
        "prune calls by operation:",
        ", ".join(f"{op} {n}" for (_, op), n in sorted(prune_calls.items())),
    )
    print(
        "publish calls by operation:",
        ", ".join(f"{op} {n}" for (_, op), n in sorted(aws2.calls.items())),
    )


if __name__ == "__main__":
    main()
