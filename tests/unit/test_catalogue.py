"""The local catalogue: whole entries only, state transitions, channels with history, locks."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from bakehouse.catalogue import Catalogue, CatalogueError
from bakehouse.errors import UsageError


def stage(tmp: Path, name: str = "stage") -> Path:
    folder = tmp / name
    folder.mkdir()
    (folder / "disk.qcow2").write_bytes(b"disk")
    return folder


def record(version: str, state: str = "verified") -> dict:  # type: ignore[type-arg]
    return {
        "kind": "image",
        "id": f"web-{version}",
        "name": "web",
        "version": version,
        "created": f"2026-01-01T00:00:0{version[-1]}+00:00",
        "state": state,
        "history": [],
        "channels": [],
    }


def test_add_moves_the_whole_entry(tmp_path: Path) -> None:
    cat = Catalogue(tmp_path / "cat")
    staged = stage(tmp_path)
    dest = cat.add(record("1"), staged)
    assert not staged.exists()
    assert (dest / "disk.qcow2").read_bytes() == b"disk"
    assert json.loads((dest / "record.json").read_text())["version"] == "1"
    assert [r["version"] for r in cat.images("web")] == ["1"]


def test_add_refuses_to_overwrite(tmp_path: Path) -> None:
    cat = Catalogue(tmp_path / "cat")
    cat.add(record("1"), stage(tmp_path, "a"))
    with pytest.raises(CatalogueError):
        cat.add(record("1"), stage(tmp_path, "b"))
    assert (tmp_path / "b").exists()  # the second staging folder is left for cleanup, untouched


def test_publish_only_verified(tmp_path: Path) -> None:
    cat = Catalogue(tmp_path / "cat")
    cat.add(record("1", state="failed"), stage(tmp_path, "a"))
    with pytest.raises(CatalogueError, match="only verified images are published"):
        cat.point("web", "1", ["latest"], by="t")
    assert cat.channels() == {}


def test_channels_keep_history(tmp_path: Path) -> None:
    cat = Catalogue(tmp_path / "cat")
    cat.add(record("1"), stage(tmp_path, "a"))
    cat.add(record("2"), stage(tmp_path, "b"))
    cat.point("web", "1", ["latest", "stable"], by="t")
    rec = cat.point("web", "2", ["latest"], by="t")
    assert rec["state"] == "published" and rec["channels"] == ["latest"]
    ch = cat.channels()["web"]
    assert ch["latest"]["current"] == "2" and ch["stable"]["current"] == "1"
    assert [(h["previous"], h["version"]) for h in ch["latest"]["history"]] == [
        (None, "1"),
        ("1", "2"),
    ]


def test_transitions(tmp_path: Path) -> None:
    cat = Catalogue(tmp_path / "cat")
    cat.add(record("1", state="baked"), stage(tmp_path))
    assert cat.transition("web", "1", "verified")["state"] == "verified"
    with pytest.raises(CatalogueError):
        cat.transition("web", "1", "baked")


def test_unknown_version(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no image web version 9"):
        Catalogue(tmp_path).image("web", "9")


def _point(root: str, version: str) -> None:
    Catalogue(Path(root)).point("web", version, ["latest"], by=version)


def test_concurrent_publishes_lose_nothing(tmp_path: Path) -> None:
    cat = Catalogue(tmp_path / "cat")
    for i in range(1, 7):
        cat.add(record(str(i)), stage(tmp_path, f"s{i}"))
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_point, args=(str(tmp_path / "cat"), str(i))) for i in range(1, 7)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert len(cat.channels()["web"]["latest"]["history"]) == 6
