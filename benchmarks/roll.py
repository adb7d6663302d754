"""Roll benchmark: planning over 50 auto-scaling groups in moto, and the watcher's polling.

1. Starts moto, creates 50 groups (launch templates, 2 instances each) over two regions tagged
   for the web image, and times `gather` + `plan`, counting the API calls (target: O(groups),
   under 5 s).
   3 runs, each against a fresh server, median and spread.
2. Replays instance refreshes of 5, 30 and 60 minutes through botocore's Stubber (moto has no
   instance refresh) on a simulated clock, with bakehouse's watcher twice: its backoff (every
   5 s, growing to once a minute) and a fixed 5-second poller, measured in the same run: the
   DescribeInstanceRefreshes calls each makes and how late each notices the end.

    .venv/bin/python benchmarks/roll.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _moto import moto_server  # noqa: E402
from _stats import spread  # noqa: E402
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


def polling(backoff: rl.Backoff, minutes: int) -> tuple[Counter[int], float]:
    """The watcher over one refresh that ends after ``minutes``, through botocore's Stubber (moto
    has no instance refresh) on a simulated clock: DescribeInstanceRefreshes calls per minute,
    and how long after the refresh ended the watcher saw it."""
    from botocore.stub import Stubber

    aws = Aws(region=REGIONS[0])
    asg = aws.client("autoscaling", REGIONS[0])
    group = rl.Group(REGIONS[0], "web-0", "lt-1", "web-0-lt", "$Default", 1, 1)
    now = {"t": 0.0}
    per_minute: Counter[int] = Counter()
    duration = minutes * 60.0
    seen = {"at": -1.0}

    def clock() -> float:
        return now["t"]

    def sleep(seconds: float) -> None:
        now["t"] += seconds

    def refresh(status: str) -> dict[str, object]:
        return {
            "InstanceRefreshes": [
                {
                    "InstanceRefreshId": "r-1",
                    "AutoScalingGroupName": "web-0",
                    "Status": status,
                    "PercentageComplete": 100 if status == "Successful" else 50,
                    "InstancesToUpdate": 0 if status == "Successful" else 1,
                }
            ]
        }

    expected = {"AutoScalingGroupName": "web-0", "InstanceRefreshIds": ["r-1"]}
    with Stubber(asg) as stub:
        # every poll is answered by the stub with the exact request checked: InProgress until
        # the refresh's end, then Successful
        for _ in range(int(duration // 5) + 2):
            stub.add_response("describe_instance_refreshes", refresh("InProgress"), expected)
        original = asg.describe_instance_refreshes

        def counted(**kw: object) -> object:
            per_minute[int(now["t"] // 60)] += 1
            if now["t"] >= duration:
                seen["at"] = now["t"]
                return refresh("Successful")
            return original(**kw)

        asg.describe_instance_refreshes = counted
        rl.watch(
            aws, group, "r-1", True, 7200, say=lambda m: None, sleep=sleep, clock=clock,
            backoff=backoff,
        )  # fmt: skip
    return per_minute, seen["at"] - duration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    took, calls, instances, groups = [], [], [], []
    ops: Counter[tuple[str, str]] = Counter()
    for _ in range(args.runs):  # a fresh server and fresh groups each run
        with moto_server():
            images = seed(Aws())
            roll = Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("web").roll
            aws = Aws()
            start = time.perf_counter()
            found = rl.gather(aws, {"bakehouse:role": "web"}, REGIONS)
            plans = rl.plan(found, images, roll)
            took.append(time.perf_counter() - start)
        calls.append(aws.total_calls())
        groups.append(len(plans))
        instances.append(sum(len(p.group.instance_amis) for p in plans))
        ops = Counter(aws.calls)
    print(f"planning, {args.runs} runs (fresh moto each), median (min–max)")
    print("| groups | instances | API calls | per group | seconds |")
    print("|---|---|---|---|---|")
    print(
        f"| {groups[0]} | {instances[0]} | {spread(calls, '.0f')} | "
        f"{statistics.median(calls) / groups[0]:.2f} | {spread(took, '.2f')} |"
    )
    print("calls by operation:", ", ".join(f"{op} {n}" for (_, op), n in sorted(ops.items())))
    print("\nwatching one refresh: bakehouse's backoff (5 s ×1.5, at most 60 s) against polling")
    print("every 5 s, both measured here through the same watcher and stubbed API")
    print("| refresh | poller | DescribeInstanceRefreshes calls | noticed the end after |")
    print("|---|---|---|---|")
    for minutes in (5, 30, 60):
        for name, (start, factor, cap) in (
            ("backoff", (5.0, 1.5, 60.0)),
            ("every 5 s", (5.0, 1.0, 5.0)),
        ):
            per_minute, late = polling(rl.Backoff(start, factor, cap), minutes)
            print(f"| {minutes} min | {name} | {sum(per_minute.values())} | {late:.0f} s |")


if __name__ == "__main__":
    main()
