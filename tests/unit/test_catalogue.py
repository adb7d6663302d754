"""The catalogue on this machine: whole entries only, keyed by target, the state machine
(revoked included), channels with history, concurrent writers, and the move from the layout
before records were keyed by target."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from bakehouse import catalogue as cat
from bakehouse.catalogue import Catalogue, DirStore
from bakehouse.errors import CatalogueError, Untrusted, UsageError
from bakehouse.trust import adopt


def stage(tmp: Path, name: str = "stage") -> Path:
    folder = tmp / name
    folder.mkdir()
    (folder / "disk.qcow2").write_bytes(b"disk")
    return folder


def record(version: str, state: str = "verified", target: str = "local") -> dict:  # type: ignore[type-arg]
    return {
        "kind": "image",
        "id": f"web-{version}",
        "name": "web",
        "version": version,
        "target": target,
        "created": f"2026-01-01T00:00:0{version[-1]}+00:00",
        "state": state,
        "history": [],
        "channels": [],
    }


def local(tmp: Path) -> Catalogue:
    return Catalogue(DirStore(tmp / "cat"), "local")


def test_add_moves_the_whole_entry(tmp_path: Path) -> None:
    c = local(tmp_path)
    staged = stage(tmp_path)
    c.add(record("1"), staged)
    assert not staged.exists()
    dest = c.image_dir("web", "1")
    assert dest == tmp_path / "cat" / "local" / "images" / "web" / "1"
    assert (dest / "disk.qcow2").read_bytes() == b"disk"
    assert json.loads((dest / "record.json").read_text())["version"] == "1"
    assert [r["version"] for r in c.images("web")] == ["1"]


def test_add_refuses_to_overwrite(tmp_path: Path) -> None:
    c = local(tmp_path)
    c.add(record("1"), stage(tmp_path, "a"))
    with pytest.raises(CatalogueError):
        c.add(record("1"), stage(tmp_path, "b"))
    assert (tmp_path / "b").exists()  # the second staging folder is left for cleanup, untouched


def test_records_are_keyed_by_target(tmp_path: Path) -> None:
    store = DirStore(tmp_path / "cat")
    here, there = Catalogue(store, "local"), Catalogue(store, "aws")
    here.add(record("1"), stage(tmp_path, "a"))
    there.add(record("2", target="aws"), stage(tmp_path, "b"))
    assert [r["version"] for r in here.images("web")] == ["1"]
    assert here.latest("web")["version"] == "1"  # type: ignore[index]
    assert there.latest("web")["version"] == "2"  # type: ignore[index]
    with pytest.raises(CatalogueError, match="aws record in the local catalogue"):
        here.add(record("3", target="aws"), stage(tmp_path, "c"))


def test_latest_in_states(tmp_path: Path) -> None:
    c = local(tmp_path)
    c.add(record("1"), stage(tmp_path, "a"))
    c.add(record("2", state="failed"), stage(tmp_path, "b"))
    assert c.latest("web")["version"] == "2"  # type: ignore[index]
    assert c.latest("web", cat.USABLE)["version"] == "1"  # type: ignore[index]


def test_channels_keep_history(tmp_path: Path) -> None:
    c = local(tmp_path)
    c.set_channels("web", "1", ["latest", "stable"], by="t")
    c.set_channels("web", "2", ["latest"], by="t")
    c.set_channels("web", "2", ["latest"], by="t")  # no change, no history entry
    ch = c.channels("web")
    assert ch["latest"]["current"] == "2" and ch["stable"]["current"] == "1"
    assert [(h["previous"], h["version"]) for h in ch["latest"]["history"]] == [
        (None, "1"),
        ("1", "2"),
    ]
    c.set_channels("web", None, ["stable"], by="t")
    assert c.channels("web")["stable"]["current"] is None


@pytest.mark.parametrize(
    ("start", "to", "ok"),
    [
        ("baked", "verified", True),
        ("verified", "published", True),
        ("published", "revoked", True),
        ("failed", "revoked", True),
        ("verified", "baked", False),
        ("failed", "published", False),
        ("revoked", "published", False),
        ("revoked", "revoked", False),
    ],
)
def test_transitions(tmp_path: Path, start: str, to: str, ok: bool) -> None:
    c = local(tmp_path)
    c.add(record("1", state=start), stage(tmp_path))
    if ok:
        new = c.transition("web", "1", to, note="why")
        assert new["state"] == to and new["history"][-1]["note"] == "why"
    else:
        with pytest.raises(UsageError, match=f"it cannot become {to}"):
            c.transition("web", "1", to)
        assert c.image("web", "1")["state"] == start


def test_unknown_version(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no image web version 9 in the local catalogue"):
        local(tmp_path).image("web", "9")


def test_a_damaged_record_is_an_error(tmp_path: Path) -> None:
    c = local(tmp_path)
    c.add(record("1"), stage(tmp_path))
    (c.image_dir("web", "1") / "record.json").write_text("{not json")
    with pytest.raises(CatalogueError, match=r"cannot read .*record\.json") as caught:
        c.images("web")
    assert caught.value.hint and "damaged" in caught.value.hint


def _point(root: str, version: str) -> None:
    Catalogue(DirStore(Path(root)), "local").set_channels("web", version, ["latest"], by=version)


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_point, args=(str(tmp_path / "cat"), str(i))) for i in range(1, 7)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert len(local(tmp_path).channels("web")["latest"]["history"]) == 6


def test_old_layout_moves_into_the_keyed_one(tmp_path: Path) -> None:
    """A catalogue written before records were keyed by target: nothing is lost."""
    root = tmp_path / "catalogue"
    for version, target in (("1", "local"), ("2", "aws")):
        folder = root / "images" / "web" / version
        folder.mkdir(parents=True)
        (folder / "record.json").write_text(json.dumps(record(version, target=target)))
        (folder / "disk.qcow2").write_bytes(b"d")
    (root / "bases" / "k1").mkdir(parents=True)
    (root / "bases" / "k1" / "record.json").write_text(json.dumps({"key": "k1"}))
    (root / "channels.json").write_text(json.dumps({"web": {"latest": {"current": "1"}}}))
    (root / "rolls").mkdir()
    (root / "rolls" / "web.json").write_text(json.dumps([{"at": "x"}, {"at": "y"}]))
    c = cat.local(tmp_path)
    # written by a bakehouse that sealed nothing: used only once the operator vouches for it
    with pytest.raises(Untrusted):
        c.images("web")
    assert len(adopt(tmp_path, yes=True)["documents"]) == 6  # 2 records, a base, channels, 2 rolls
    assert [r["version"] for r in c.images("web")] == ["1"]
    assert (c.image_dir("web", "1") / "disk.qcow2").read_bytes() == b"d"
    assert Catalogue(c.store, "aws").image("web", "2")["target"] == "aws"
    assert c.base("k1") == {"key": "k1"}
    assert c.channels("web")["latest"]["current"] == "1"
    assert [r["at"] for r in Catalogue(c.store, "aws").rolls("web")] == ["x", "y"]
    assert not (root / "images").exists() and not (root / "rolls").exists()
    cat.local(tmp_path)  # a second open changes nothing
    assert [r["version"] for r in c.images("web")] == ["1"]
