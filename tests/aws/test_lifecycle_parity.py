"""Every lifecycle verb on every registered target, with the same expectations: publish
(promote without a bake), revoke (channels move back, the marks), roll refusing a revoked
image, history, diff, nightly decisions, prune and gc. The aws target runs against the moto
server the suite starts; the local target against a catalogue on disk. Versions are recorded by
the production record step (tests/recorded.py); bake and verify themselves run for real in
tests/e2e (local) and test_aws_target.py (Packer against moto)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from bakehouse import targets
from bakehouse.errors import UsageError
from bakehouse.lifecycle import channels, deploy, history, housekeeping, nightly, roll
from bakehouse.project import Project
from bakehouse.spec import Catalog, ImageSpec
from bakehouse.targets.base import Target, TargetOptions
from tests.aws.conftest import client
from tests.conftest import ROOT, TODAY
from tests.recorded import current_manifest, manifest, record_version

pytestmark = pytest.mark.usefixtures("aws_env")
V1, V2, V3 = "20261101.010000", "20261102.020000", "20261103.030000"


@dataclass
class World:
    target: Target
    spec: ImageSpec
    work: Path

    def record(self, version: str, **kw: object) -> dict:  # type: ignore[type-arg]
        return record_version(self.target, self.spec, version, self.work, **kw)  # type: ignore[arg-type]

    def current(self) -> dict[str, str | None]:
        return {c: e["current"] for c, e in self.target.channels(self.spec).items()}


@pytest.fixture(params=targets.names())
def world(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    index_cache: Path,
) -> World:
    state = tmp_path / "state"
    (state / "cache").mkdir(parents=True)
    (state / "cache" / "indexes").symlink_to(index_cache)
    monkeypatch.setenv("BAKEHOUSE_STATE_DIR", str(state))
    target = targets.get(request.param, Project(ROOT), TargetOptions(runner_cidr="192.0.2.1/32"))
    spec = Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("web", TODAY)
    return World(target, spec, tmp_path)


def test_publish_promotes_without_a_bake(world: World) -> None:
    world.record(V1)
    world.record(V2)
    done = channels.publish(world.target, world.spec, ["latest"])
    assert (done.record["version"], done.record["state"]) == (V2, "published")
    assert [(m.channel, m.before, m.after) for m in done.moves] == [("latest", None, V2)]
    channels.publish(world.target, world.spec, ["stable"], version=V1)
    assert world.current() == {"latest": V2, "stable": V1}
    done = channels.publish(world.target, world.spec, ["stable"])  # promote latest to stable
    assert [(m.channel, m.before, m.after) for m in done.moves] == [("stable", V1, V2)]
    assert world.current() == {"latest": V2, "stable": V2}
    stable = world.target.channels(world.spec)["stable"]["history"]
    assert [h["version"] for h in stable] == [V1, V2]


def test_publish_refuses_an_image_that_is_not_verified(world: World) -> None:
    world.record(V1, verified=False)
    with pytest.raises(UsageError, match=r"is baked; only verified images are published"):
        channels.publish(world.target, world.spec, ["latest"], version=V1)
    with pytest.raises(UsageError, match="no verified version of web"):
        channels.publish(world.target, world.spec, ["latest"])
    assert world.current() == {}


def test_publish_refuses_a_bad_channel_name(world: World) -> None:
    world.record(V1)
    with pytest.raises(UsageError, match="'Bad_Name' is not a channel name"):
        channels.publish(world.target, world.spec, ["Bad_Name"])
    with pytest.raises(UsageError, match="say which channel"):
        channels.publish(world.target, world.spec, [])


def test_revoke_moves_every_channel_back(world: World) -> None:
    world.record(V1)
    world.record(V2)
    channels.publish(world.target, world.spec, ["latest", "stable"])
    dry = channels.revoke(world.target, world.spec, V2, "kernel panics on boot", dry_run=True)
    assert [(m.channel, m.before, m.after) for m in dry.moves] == [
        ("latest", V2, V1),
        ("stable", V2, V1),
    ]
    assert world.current() == {"latest": V2, "stable": V2}  # a dry run changes nothing
    done = channels.revoke(world.target, world.spec, V2, "kernel panics on boot")
    assert world.current() == {"latest": V1, "stable": V1}
    record = world.target.catalogue.image("web", V2)
    assert record["state"] == "revoked" and record["channels"] == []
    assert record["revoked"]["reason"] == "kernel panics on boot" and record["revoked"]["by"]
    assert world.target.catalogue.image("web", V1)["state"] == "published"
    with pytest.raises(UsageError, match="revoked already"):
        channels.revoke(world.target, world.spec, V2, "again")
    if world.target.name == "aws":  # the AMIs carry the revocation themselves
        for ami in record["amis"]:
            image = client("ec2", ami["region"]).describe_images(ImageIds=[ami["ami_id"]])[
                "Images"
            ][0]
            tags = {t["Key"]: t["Value"] for t in image["Tags"]}
            assert tags["bakehouse:state"] == "revoked"
            assert tags["bakehouse:revoked"] == "kernel panics on boot"
            when = dt.datetime.fromisoformat(image["DeprecationTime"].replace("Z", "+00:00"))
            assert when - dt.datetime.now(dt.UTC) < dt.timedelta(minutes=2)
        assert any("deprecated" in n for n in done.notes)


def test_revoke_falls_back_past_versions_that_failed(world: World) -> None:
    world.record(V1)
    world.record(V2, verified=False)
    world.target.catalogue.transition("web", V2, "failed", "controls failed")
    world.record(V3)
    channels.publish(world.target, world.spec, ["latest"])
    done = channels.revoke(world.target, world.spec, V3, "bad")
    assert [(m.channel, m.after) for m in done.moves] == [("latest", V1)]
    assert world.current() == {"latest": V1}


def test_revoke_without_an_earlier_version_removes_the_channel(world: World) -> None:
    world.record(V1)
    channels.publish(world.target, world.spec, ["latest"])
    done = channels.revoke(world.target, world.spec, V1, "leaked a key")
    assert [(m.channel, m.after) for m in done.moves] == [("latest", None)]
    assert world.current().get("latest") is None


def test_revoke_needs_a_reason_and_a_version(world: World) -> None:
    world.record(V1)
    with pytest.raises(UsageError, match="say why"):
        channels.revoke(world.target, world.spec, V1, "  ")
    with pytest.raises(UsageError, match="say which version"):
        channels.revoke(world.target, world.spec, None, "why")
    with pytest.raises(UsageError, match="no image web version 19990101"):
        channels.revoke(world.target, world.spec, "19990101.000000", "why")


def test_roll_refuses_a_revoked_image(world: World) -> None:
    """The lifecycle's own rule, alone: the channel still names the version (as a run killed
    halfway through a revocation would leave it), the record says revoked."""
    world.record(V1)
    channels.publish(world.target, world.spec, ["stable"])
    world.target.catalogue.transition("web", V1, "revoked", "bad", revoked={"reason": "bad"})
    with pytest.raises(UsageError, match=r"is revoked \(bad\); only published images are rolled"):
        roll.roll(world.target, world.spec, "stable", dry_run=True, wait=False, say=print)


def test_roll_needs_a_published_channel(world: World) -> None:
    with pytest.raises(UsageError, match="channel stable of web delivers nothing"):
        roll.roll(world.target, world.spec, "stable", dry_run=True, wait=False, say=print)


def test_history_and_list_show_the_target(world: World) -> None:
    world.record(V1)
    world.record(V2, verified=False)
    channels.publish(world.target, world.spec, ["latest"], version=V1)
    h = history.history(world.target, world.spec).to_dict()
    assert h["target"] == world.target.name
    assert [(r["version"], r["state"]) for r in h["images"]] == [(V1, "published"), (V2, "baked")]
    assert h["channels"]["latest"]["current"] == V1
    rows = {r.name: r for r in history.list_images(Catalog(ROOT / "images"), world.target)}
    assert rows["web"].newest is not None and rows["web"].newest["version"] == V2
    assert rows["web"].channels == {"latest": V1} and rows["worker"].newest is None


def test_diff_between_versions(world: World) -> None:
    world.record(V1, packages=manifest(openssl="3.0.0-1", libssl3="3.0.0-1"))
    world.record(V2)
    d = history.diff(world.target.project, world.target, world.spec, None, None)
    assert (d.old, d.new) == (V1, V2)
    changed = {c.name: (c.kind, c.old) for c in d.changes}
    assert changed["openssl"] == ("upgraded", "3.0.0-1")
    with pytest.raises(UsageError, match="--old and --new are both"):
        history.diff(world.target.project, world.target, world.spec, V2, V2)
    with pytest.raises(UsageError, match="--old 1: no such version"):
        history.diff(world.target.project, world.target, world.spec, "1", None)


def test_prune_keeps_what_a_channel_delivers(world: World) -> None:
    """keep 1, no minimum age: the newest verified stays, and so does the version a channel
    delivers; the one between goes (local: its folder; aws: its AMI, noted in its record)."""
    import dataclasses

    spec = dataclasses.replace(
        world.spec, retention=dataclasses.replace(world.spec.retention, keep=1, min_age_days=0)
    )
    old = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for i, version in enumerate((V1, V2, V3)):
        world.record(version, created=old + dt.timedelta(days=i))
    channels.publish(world.target, spec, ["stable"], version=V1)
    plan = housekeeping.prune(world.target, spec, execute=False)
    actions = {i.version: (i.action, i.reason) for i in plan.items}
    assert actions[V3] == ("keep", "among the 1 newest verified")
    assert actions[V1][0] == "keep" and actions[V2][0] == "delete"
    assert "channel" in actions[V1][1] or "SSM /bakehouse/web/stable" in actions[V1][1]
    done = housekeeping.prune(world.target, spec, execute=True)
    assert len(done.removed) == 1 and world.current() == {"stable": V1}
    if world.target.name == "local":
        assert V2 not in world.target.catalogue.versions("web")
    else:
        assert world.target.catalogue.image("web", V2)["pruned"][0]["ami_id"] == plan.items[1].ident


def test_gc_takes_only_what_never_passed_verification(world: World) -> None:
    """A verified image, and a revoked one (a fleet may still run it: prune's business, with
    its usage check), are never gc's; on aws the AMI of a bake that was never verified is."""
    world.record(V1)
    world.record(V2)
    channels.revoke(world.target, world.spec, V2, "bad")
    left = world.record(V3, verified=False)
    found = housekeeping.gc(world.target, [world.spec], execute=False).leftovers
    if world.target.name == "local":
        assert found == []
    else:
        assert [(x.kind, x.ident, x.detail) for x in found] == [
            ("image", left["amis"][0]["ami_id"], "baked")
        ]


def test_nightly_reads_like_with_like(world: World) -> None:
    """An image recorded from the current inputs is judged by its own target's records."""
    assert nightly.decide(world.target.project, world.target, [world.spec])[0].reason == (
        "never baked"
    )
    world.record(V1, packages=manifest(openssl="3.0.0-1", libssl3="3.0.0-1"))
    (d,) = nightly.decide(world.target.project, world.target, [world.spec])
    assert d.bake and d.security >= 2 and d.reason.endswith("security)")
    channels.revoke(world.target, world.spec, V1, "bad")
    (d,) = nightly.decide(world.target.project, world.target, [world.spec])
    assert d.reason == f"newest version {V1} revoked: bad"


def test_a_manifest_that_does_not_match_its_record_is_not_trusted(world: World) -> None:
    """Fail closed: a changed package list in the catalogue cannot make an image look
    patched."""
    world.record(V1, packages=manifest(openssl="3.0.0-1"))
    catalogue = world.target.catalogue
    key = f"{catalogue.entry_key('web', V1)}/manifest.json"
    catalogue.store.write(
        key, catalogue.artifact("web", V1, "manifest.json").replace(b"3.0.0-1", b"9:9")
    )  # type: ignore[union-attr]
    (d,) = nightly.decide(world.target.project, world.target, [world.spec])
    assert d.bake and d.reason.startswith("no package manifest recorded")


def test_both_targets_decide_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index_cache: Path
) -> None:
    """The same packages, the same indexes: the same decision, whichever target holds them."""
    decisions = {}
    for name in targets.names():
        state = tmp_path / name
        (state / "cache").mkdir(parents=True)
        (state / "cache" / "indexes").symlink_to(index_cache)
        monkeypatch.setenv("BAKEHOUSE_STATE_DIR", str(state))
        target = targets.get(name, Project(ROOT))
        spec = Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("web", TODAY)
        record_version(target, spec, V1, tmp_path / name, packages=manifest(openssl="3.0.0-1"))
        decisions[name] = nightly.decide(target.project, target, [spec])[0].to_dict()
    assert len({str(d) for d in decisions.values()}) == 1, decisions


def test_revoking_a_base(world: World) -> None:
    """local: the base a version was baked from is revoked, built anew for the next bake, and
    nightly rebakes what used it. aws: the bases are AWS's images, not bakehouse's to revoke."""
    world.record(V1)
    record = world.target.catalogue.image("web", V1)
    if world.target.name == "aws":
        with pytest.raises(UsageError, match="does not build its bases"):
            channels.revoke(world.target, world.spec, V1, "bad kernel", base=True)
        return
    key = record["base"]["key"]
    with pytest.raises(UsageError, match="names no local base in the catalogue"):
        channels.revoke(world.target, world.spec, None, "bad kernel", base=True)
    catalogue = world.target.catalogue  # the base as the catalogue holds it
    base = json.dumps({"kind": "base", "key": key}).encode()
    catalogue.store.write(f"{catalogue.base_key(key)}/record.json", base)
    dry = channels.revoke(world.target, world.spec, None, "bad kernel", base=True, dry_run=True)
    assert dry.subject.startswith(f"base-{key}") and "revoked" not in world.target.catalogue.base(
        key
    )  # type: ignore[operator]
    done = channels.revoke(world.target, world.spec, None, "bad kernel", base=True)
    assert done.notes[0].startswith(f"base-{key} revoked")
    assert world.target.catalogue.base(key)["revoked"]["reason"] == "bad kernel"  # type: ignore[index]
    assert world.target.inputs(world.spec).base_key != key  # never reused: a new one is built
    (d,) = nightly.decide(world.target.project, world.target, [world.spec])
    assert (d.bake, d.reason) == (True, f"base {key} revoked: bad kernel")
    with pytest.raises(UsageError, match="revoked already"):
        channels.revoke(world.target, world.spec, V1, "again", base=True)


def test_an_image_that_cannot_be_judged_is_baked_and_does_not_stop_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index_cache: Path
) -> None:
    import dataclasses

    from bakehouse.spec import AmiFilter

    state = tmp_path / "state"
    (state / "cache").mkdir(parents=True)
    (state / "cache" / "indexes").symlink_to(index_cache)
    monkeypatch.setenv("BAKEHOUSE_STATE_DIR", str(state))
    target = targets.get("aws", Project(ROOT))
    catalog = Catalog(ROOT / "images", ROOT / "packer" / "scripts")
    web, worker = catalog.load("web", TODAY), catalog.load("worker", TODAY)
    lost = AmiFilter("no-such-image-*", ("136693071363",), "x86_64")
    worker = dataclasses.replace(
        worker,
        base=dataclasses.replace(
            worker.base, aws=dataclasses.replace(worker.base.aws, filter=lost)
        ),
    )
    decisions = {d.image: d for d in nightly.decide(target.project, target, [web, worker])}
    assert decisions["web"].reason == "never baked"
    assert decisions["worker"].bake and "no base AMI found" in decisions["worker"].reason


def test_deploy_is_one_declared_sequence(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """decide → bake, verify, publish → roll, with a report whatever happens. local: nothing
    new, so the newest verified image is published and there is no fleet. aws: every deploy
    bakes (Packer against moto); the verification cannot pass on an emulator (no SSM agent), so
    the deploy stops there, the AMI recorded as failed and the report saying so."""
    import dataclasses

    from bakehouse.targets.aws import COMMUNICATOR_ENV

    assert [name for name, _ in deploy.SEQUENCE] == ["decide", "bake+verify+publish", "roll"]
    report = world.work / "report"
    if world.target.name == "local":
        world.record(V1, packages=current_manifest(world.target, world.spec))
        done = deploy.deploy(
            world.target.project, world.target, world.spec, "stable", report=report
        )
        assert [(s["step"], s["ok"]) for s in done.steps] == [
            ("decide", True),
            ("bake+verify+publish", True),
            ("roll", True),
        ]
        assert done.steps[0]["detail"] == "skip: up to date"
        assert world.current() == {"stable": V1}
    else:
        monkeypatch.setenv(COMMUNICATOR_ENV, "none")
        iam = client("iam")
        iam.create_role(RoleName="bakehouse-verify", AssumeRolePolicyDocument="{}")
        iam.create_instance_profile(InstanceProfileName="bakehouse-verify")
        iam.add_role_to_instance_profile(
            InstanceProfileName="bakehouse-verify", RoleName="bakehouse-verify"
        )
        aws = dataclasses.replace(
            world.spec.targets.aws, verify_via="ssm", instance_profile="bakehouse-verify"
        )
        spec = dataclasses.replace(
            world.spec, targets=dataclasses.replace(world.spec.targets, aws=aws)
        )
        with pytest.raises(Exception, match="DescribeInstanceInformation"):
            deploy.deploy(world.target.project, world.target, spec, "stable", report=report)
        (failed,) = world.target.catalogue.images("web")
        assert failed["state"] == "failed" and world.current() == {}
    data = json.loads((report / "deploy.json").read_text())
    assert data["steps"][0]["step"] == "decide" and (report / "deploy.junit.xml").is_file()
    if world.target.name == "aws":
        assert data["steps"][0]["detail"].startswith("bake: every deploy on the aws target")
        assert (data["steps"][-1]["step"], data["steps"][-1]["ok"]) == (
            "bake+verify+publish",
            False,
        )
