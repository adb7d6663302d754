"""A cached artifact is used only if it is the very file its record describes: a base's
tarball before host-patch unpacks and chroots into it, every base artifact on a cache hit,
and an image's package manifest before nightly, diff or a bake's report read it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bakehouse import debindex
from bakehouse.catalogue import Catalogue, DirStore
from bakehouse.errors import BaseError, CatalogueError
from bakehouse.files import describe
from bakehouse.progress import Progress
from bakehouse.runs import run_dir
from bakehouse.targets.local import base as base_stage
from bakehouse.targets.local import hostpatch
from tests.conftest import ROOT

MANIFEST = {"packages": [{"name": "openssl", "version": "3.0.0-1", "arch": "amd64"}]}


def base(tmp_path: Path) -> base_stage.BaseImage:
    folder = tmp_path / "base"
    folder.mkdir()
    files = {
        "disk": "disk.raw",
        "kernel": "vmlinuz",
        "initrd": "initrd.img",
        "rootfs": "rootfs.tar.zst",
        "manifest": "manifest.json",
        "status": "status",
    }
    for role, name in files.items():
        (folder / name).write_text(json.dumps(MANIFEST) if role == "manifest" else role)
    record = {"key": "k1", "artifacts": {r: describe(folder / n) for r, n in files.items()}}
    return base_stage.BaseImage(record, folder)


@pytest.mark.parametrize("role", ["disk", "kernel", "initrd", "rootfs", "manifest", "status"])
def test_every_base_artifact_is_checked(tmp_path: Path, role: str) -> None:
    b = base(tmp_path)
    base_stage.verify(b)
    b.file(role).write_text("swapped")
    with pytest.raises(BaseError, match=f"{role} .* does not match its recorded sha256"):
        base_stage.verify(b)


@pytest.mark.parametrize("role", ["rootfs", "manifest"])
def test_host_patch_never_unpacks_a_swapped_parent(tmp_path: Path, role: str) -> None:
    parent = base(tmp_path)
    parent.file(role).write_text("a tarball with a payload")
    catalogue = Catalogue(DirStore(tmp_path / "catalogue"), "local")
    with run_dir(tmp_path, "web", "test") as run, pytest.raises(BaseError, match=role):
        hostpatch.ensure(
            parent,
            ROOT / "packer" / "scripts",
            "all",
            debindex.Indexes(),
            catalogue,
            run,
            Progress(),
        )


def image_record(catalogue: Catalogue, tmp_path: Path, version: str) -> dict:  # type: ignore[type-arg]
    stage = tmp_path / f"stage-{version}"
    stage.mkdir()
    (stage / "manifest.json").write_text(json.dumps(MANIFEST))
    record = {
        "kind": "image",
        "id": f"web-{version}",
        "name": "web",
        "version": version,
        "target": "local",
        "state": "verified",
        "artifacts": {"manifest": describe(stage / "manifest.json")},
    }
    catalogue.add(record, stage)
    return record


def test_a_swapped_manifest_is_an_error_not_a_diff(tmp_path: Path) -> None:
    catalogue = Catalogue(DirStore(tmp_path / "catalogue"), "local")
    record = image_record(catalogue, tmp_path, "20261129.000000")
    assert json.loads(catalogue.checked_artifact(record, "manifest")) == MANIFEST
    path = catalogue.image_dir("web", "20261129.000000") / "manifest.json"
    path.write_text(json.dumps({"packages": []}))  # hides every package from nightly
    with pytest.raises(CatalogueError, match="does not match the sha256 its record names"):
        catalogue.checked_artifact(record, "manifest")
    path.unlink()
    with pytest.raises(CatalogueError, match="is missing"):
        catalogue.checked_artifact(record, "manifest")
    with pytest.raises(CatalogueError, match="names no status"):
        catalogue.checked_artifact(record, "status")


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """The project and its local target, with the state in a fresh folder."""
    from bakehouse.project import Project
    from bakehouse.targets import get

    monkeypatch.setenv("BAKEHOUSE_STATE_DIR", str(tmp_path / "state"))
    project = Project(ROOT)
    return project, get("local", project)


def swap_manifest(catalogue: Catalogue, version: str) -> None:
    """Empty an entry's manifest, as someone hiding its packages from nightly would."""
    path = catalogue.image_dir("web", version) / "manifest.json"
    path.write_text(json.dumps({"packages": []}))


def test_images_diff_refuses_a_swapped_manifest(tmp_path: Path, local: tuple[Any, Any]) -> None:
    from bakehouse.lifecycle.history import diff
    from bakehouse.spec import Catalog

    project, target = local
    for version in ("20261129.000000", "20261129.010000"):
        image_record(target.catalogue, tmp_path, version)
    spec = Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("web")
    diff(project, target, spec, None, None)  # both intact: fine
    swap_manifest(target.catalogue, "20261129.000000")
    with pytest.raises(CatalogueError, match="sha256"):
        diff(project, target, spec, None, None)


def test_nightly_does_not_read_a_swapped_manifest(tmp_path: Path, local: tuple[Any, Any]) -> None:
    """A manifest emptied to hide pending updates: nightly treats it as unreadable (and bakes)."""
    from bakehouse.lifecycle import nightly

    _, target = local
    record = image_record(target.catalogue, tmp_path, "20261129.000000")
    assert nightly.installed(target, record) == {"openssl": "3.0.0-1"}
    swap_manifest(target.catalogue, "20261129.000000")
    assert nightly.installed(target, record) is None


def test_a_bake_report_says_when_the_previous_manifest_is_swapped(
    tmp_path: Path, local: tuple[Any, Any]
) -> None:
    from types import SimpleNamespace

    from bakehouse.lifecycle.bake import best_effort_diff

    project, target = local
    image_record(target.catalogue, tmp_path, "20261129.000000")
    ctx = SimpleNamespace(project=project, target=target, spec=SimpleNamespace(name="web"))
    baked = SimpleNamespace(manifest=MANIFEST, context=SimpleNamespace(indexes=debindex.Indexes()))
    assert best_effort_diff(ctx, baked) == {"against": "20261129.000000", "changes": []}  # type: ignore[arg-type]
    swap_manifest(target.catalogue, "20261129.000000")  # would show openssl as newly added
    got = best_effort_diff(ctx, baked)  # type: ignore[arg-type]
    assert got["changes"] == [] and "does not match the sha256" in got["error"]


def cached(catalogue: Catalogue, tmp_path: Path, key: str) -> base_stage.BaseImage:
    """A base entry in the catalogue, as a restored cache would hold it."""
    (tmp_path / key).mkdir(parents=True)
    made = base(tmp_path / key)
    made.record["key"] = key
    catalogue.add_base(made.record, made.dir)
    record = catalogue.base(key)
    assert record is not None
    return base_stage.BaseImage(record, catalogue.base_dir(key))


def test_a_cached_base_that_does_not_verify_is_built_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real build (root, mmdebstrap) runs in the e2e tests; here it is only recorded."""
    catalogue = Catalogue(DirStore(tmp_path / "catalogue"), "local")
    restored = cached(catalogue, tmp_path, "k1")
    built: list[str] = []
    monkeypatch.setattr(base_stage, "build", lambda *a, **k: built.append(a[2]) or "rebuilt")
    with run_dir(tmp_path, "web", "test") as run:
        args = (None, {}, "k1", Path("/x"), catalogue, run, Progress(quiet=True), False)
        assert base_stage._ensure(*args) == restored.__class__(restored.record, restored.dir)
        restored.file("rootfs").write_text("a restored cache, altered")
        assert base_stage._ensure(*args) == "rebuilt" and built == ["k1"]
    assert catalogue.base("k1") is None  # the altered entry is gone


def test_a_cached_patched_base_that_does_not_verify_is_patched_again(tmp_path: Path) -> None:
    catalogue = Catalogue(DirStore(tmp_path / "catalogue"), "local")
    parent = cached(catalogue, tmp_path, "parent")
    derived = cached(catalogue, tmp_path, "derived")
    derived.file("disk").write_text("altered")
    with run_dir(tmp_path, "web", "test") as run:
        got = hostpatch._ensure(
            parent,
            ROOT / "packer" / "scripts" / "patch.sh",
            "all",
            debindex.Indexes(),  # nothing pending: the parent itself is the answer
            catalogue,
            run,
            Progress(quiet=True),
            {},
            "derived",
        )
    assert got.key == "parent" and catalogue.base("derived") is None
