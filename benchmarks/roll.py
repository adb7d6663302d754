"""Roll benchmark: planning over 50 auto-scaling groups in moto, and the watcher's polling.

1. Starts moto, creates 50 groups (launch templates, 2 instances each) over two regions tagged
   for the web image, and times `gather` + `plan`, counting the API calls (target: O(groups),
   under 5 s).
2. Replays a 30-minute instance refresh through botocore's Stubber with a simulated clock and
   prints how many DescribeInstanceRefreshes calls the watcher makes in each minute: the
   polling backs off from every 5 s to once a minute.

    .venv/bin/python benchmarks/roll.py
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _moto import moto_server  # noqa: E402
from bakehouse.aws import roll as rl  # noqa: E402
from bakehouse.aws.session import Aws  # noqa: E402
from bakehouse.spec import Catalog  # noqa: E402

REGIONS = ["eu-west-1", "eu-central-1"]
GROUPS = 50


def seed(aws: Aws) -> dict[str, str]:
    images = {}
    for n in range(GROUPS):
        region = REGIONS[n % len(REGIONS)]
        ec2 = aws.client("ec2", region)
        if region not in images:
            images[region] = ec2.describe_images(Owners=["amazon"], MaxResults=5)["Images"][0][
                "ImageId"
            ]
        lt = ec2.create_launch_template(
            LaunchTemplateName=f"web-{n}",
            LaunchTemplateData={"ImageId": images[region], "InstanceType": "t3.small"},
        )
        aws.client("autoscaling", region).create_auto_scaling_group(
            AutoScalingGroupName=f"web-{n}",
            MinSize=2,
            MaxSize=2,
            DesiredCapacity=2,
            LaunchTemplate={
                "LaunchTemplateId": lt["LaunchTemplate"]["LaunchTemplateId"],
                "Version": "$Default",
            },
            AvailabilityZones=[f"{region}a"],
            Tags=[{"Key": "bakehouse:role", "Value": "web", "PropagateAtLaunch": True}],
        )
    return images


def polling() -> Counter[int]:
    from botocore.stub import Stubber

    aws = Aws(region=REGIONS[0])
    asg = aws.client("autoscaling", REGIONS[0])
    group = rl.Group(REGIONS[0], "web-0", "lt-1", "web-0-lt", "$Default", 1, 1)
    now = {"t": 0.0}
    per_minute: Counter[int] = Counter()
    duration = 30 * 60

    def clock() -> float:
        return now["t"]

    def sleep(seconds: float) -> None:
        now["t"] += seconds

    with Stubber(asg) as stub:
        # enough InProgress answers for 30 minutes of polling, then success
        for _ in range(200):
            stub.add_response(
                "describe_instance_refreshes",
                {
                    "InstanceRefreshes": [
                        {
                            "InstanceRefreshId": "r-1",
                            "AutoScalingGroupName": "web-0",
                            "Status": "InProgress",
                            "PercentageComplete": 50,
                            "InstancesToUpdate": 1,
                        }
                    ]
                },
            )
        original = asg.describe_instance_refreshes

        def counted(**kw: object) -> object:
            per_minute[int(now["t"] // 60)] += 1
            if now["t"] >= duration:
                return {
                    "InstanceRefreshes": [
                        {
                            "InstanceRefreshId": "r-1",
                            "AutoScalingGroupName": "web-0",
                            "Status": "Successful",
                            "PercentageComplete": 100,
                            "InstancesToUpdate": 0,
                        }
                    ]
                }
            return original(**kw)

        asg.describe_instance_refreshes = counted
        rl.watch(aws, group, "r-1", True, 7200, say=lambda m: None, sleep=sleep, clock=clock)
    return per_minute


def main() -> None:
    with moto_server():
        images = seed(Aws())
        roll = Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("web").roll
        aws = Aws()
        start = time.perf_counter()
        groups = rl.gather(aws, {"bakehouse:role": "web"}, REGIONS)
        plans = rl.plan(groups, images, roll)
        took = time.perf_counter() - start
    calls = aws.total_calls()
    print(
        f"{'planning':<28} {'groups':>6} {'instances':>9} {'API calls':>9} {'per group':>9} "
        f"{'seconds':>8}  target"
    )
    instances = sum(len(p.group.instance_amis) for p in plans)
    print(
        f"{'gather + plan':<28} {len(plans):>6} {instances:>9} {calls:>9} "
        f"{calls / len(plans):>9.2f} {took:>8.2f}  < 5 s {'ok' if took < 5 else 'SLOW'}"
    )
    print("calls by operation:", ", ".join(f"{op} {n}" for (_, op), n in sorted(aws.calls.items())))
    per_minute = polling()
    print("\nwatcher: DescribeInstanceRefreshes calls per minute, one group, 30-minute refresh")
    print("minute  " + " ".join(f"{m:>3}" for m in range(0, 31, 3)))
    print("calls   " + " ".join(f"{per_minute.get(m, 0):>3}" for m in range(0, 31, 3)))
    print(
        f"total {sum(per_minute.values())} calls in 30 minutes "
        f"(fixed 5 s polling would make {30 * 12})"
    )


if __name__ == "__main__":
    main()
