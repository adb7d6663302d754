"""The state folder's trust anchor: a forged record-and-artifact pair, a record moved to another
entry, a parsed index or a replay mark made elsewhere are not used; the key lives outside the
folder, is made once with mode 0600, and a key others can read is refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bakehouse import catalogue as cat
from bakehouse import debindex
from bakehouse.catalogue import Catalogue, DirStore
from bakehouse.errors import IndexError_, Untrusted, UsageError
from bakehouse.files import describe
from bakehouse.trust import KEY_ENV, Trust, adopt, seal_path

KEY = Trust(bytes(range(32)))
OTHER = Trust(bytes(32))


def with_base(root: Path, trust: Trust = KEY) -> Catalogue:
    """A sealed catalogue holding one base: a tarball and the record naming its sha256."""
    catalogue = Catalogue(DirStore(root, trust), "local")
    stage = root.parent / "stage"
    stage.mkdir()
    (stage / "rootfs.tar.zst").write_bytes(b"the real root file system")
    record = {"key": "k1", "artifacts": {"rootfs": describe(stage / "rootfs.tar.zst")}}
    catalogue.add_base(record, stage)
    return catalogue


def test_a_sealed_record_reads_back(tmp_path: Path) -> None:
    catalogue = with_base(tmp_path / "cat")
    assert catalogue.base("k1")["key"] == "k1"  # type: ignore[index]
    catalogue.update_base("k1", lambda r: r.update(revoked={"reason": "x"}))
    assert catalogue.base("k1")["revoked"] == {"reason": "x"}  # type: ignore[index]


def test_a_forged_record_and_artifact_pair_is_not_used(tmp_path: Path) -> None:
    """Both files agree (the sha256 check alone would pass): the seal is what fails."""
    catalogue = with_base(tmp_path / "cat")
    folder = catalogue.base_dir("k1")
    (folder / "rootfs.tar.zst").write_bytes(b"a root file system with a backdoor")
    forged = {"key": "k1", "artifacts": {"rootfs": describe(folder / "rootfs.tar.zst")}}
    (folder / "record.json").write_text(json.dumps(forged))
    with pytest.raises(Untrusted, match="not sealed by this machine's trust key"):
        catalogue.base("k1")
    said: list[str] = []
    assert catalogue.cached_base("k1", said.append) is None  # so the base is built again
    assert not folder.exists() and "not sealed" in said[0]


def test_a_folder_sealed_with_another_key_is_not_used(tmp_path: Path) -> None:
    """A cache restored from elsewhere (another machine, a CI cache) verifies only with the key
    that sealed it."""
    with_base(tmp_path / "cat", OTHER)
    with pytest.raises(Untrusted):
        Catalogue(DirStore(tmp_path / "cat", KEY), "local").base("k1")
    assert Catalogue(DirStore(tmp_path / "cat", OTHER), "local").base("k1") is not None


def test_a_sealed_record_moved_to_another_entry_is_not_used(tmp_path: Path) -> None:
    catalogue = with_base(tmp_path / "cat")
    old, new = catalogue.base_dir("k1"), catalogue.base_dir("k2")
    new.mkdir()
    for name in ("record.json", "record.json.seal"):
        (new / name).write_bytes((old / name).read_bytes())
    with pytest.raises(Untrusted):
        catalogue.base("k2")


def test_a_document_without_its_seal_is_not_used(tmp_path: Path) -> None:
    store = DirStore(tmp_path / "cat", KEY)
    store.write("local/channels.json", b"{}")
    assert store.read("local/channels.json") == b"{}"
    seal_path(store.path("local/channels.json")).unlink()
    with pytest.raises(Untrusted):
        store.read("local/channels.json")
    assert store.children("local") == ["channels.json"]  # seals are not documents


def test_the_operator_can_vouch_for_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`invoke trust` lists what does not verify and, only with --yes, seals it."""
    monkeypatch.setenv(KEY_ENV, "ab" * 32)
    state = tmp_path / "state"
    root = state / "catalogue" / "local" / "images" / "web" / "1"
    root.mkdir(parents=True)
    (root / "record.json").write_text('{"name": "web", "version": "1", "state": "baked"}')
    local = cat.local(state)
    with pytest.raises(Untrusted):
        local.images("web")
    assert adopt(state, yes=False) == {"sealed": False, "documents": [str(root / "record.json")]}
    with pytest.raises(Untrusted):
        local.images("web")
    adopt(state, yes=True)
    assert local.images("web")[0]["version"] == "1"
    assert adopt(state, yes=False)["documents"] == []


# ---- the key ------------------------------------------------------------------------------------


def test_the_key_is_made_once_outside_the_folder_and_kept_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    first = Trust.load()
    key = tmp_path / "config" / "bakehouse" / "trust.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "config" / "bakehouse").stat().st_mode & 0o777 == 0o700
    assert Trust.load().seal("p", b"d") == first.seal("p", b"d")  # the same key next time
    key.chmod(0o644)
    with pytest.raises(UsageError, match="can be read or changed by others"):
        Trust.load()


def test_a_key_from_the_environment_must_be_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "not-a-key")
    with pytest.raises(UsageError, match="BAKEHOUSE_TRUST_KEY is not a trust key"):
        Trust.load()
    monkeypatch.setenv(KEY_ENV, "00" * 31)  # too short
    with pytest.raises(UsageError):
        Trust.load()
    monkeypatch.setenv(KEY_ENV, "00" * 32)
    assert Trust.load().seal("p", b"d") == OTHER.seal("p", b"d")


# ---- the index cache ----------------------------------------------------------------------------


def test_a_parsed_index_made_elsewhere_is_not_used(tmp_path: Path) -> None:
    """The parsed Packages of a signed digest: used from the cache only with this key's seal
    (here offline, so not using it is an error instead of a fetch)."""
    suite = debindex.Suite("http://127.0.0.1:9/debian", "bookworm-security", ("main",))
    entries = {"main/binary-amd64/Packages.xz": ("d" * 64, 1)}
    cache = debindex.IndexCache(tmp_path / "indexes", trust=KEY)
    parsed = tmp_path / "indexes" / "packages" / f"{'d' * 64}.json"
    parsed.parent.mkdir(parents=True)
    cache._keep(parsed, json.dumps({"openssl": "3.0.17-1~deb12u3"}).encode())
    assert cache._packages(suite, "main", entries, offline=True) == {"openssl": "3.0.17-1~deb12u3"}
    # an older version written in between runs, to hide a pending security update
    parsed.write_text(json.dumps({"openssl": "3.0.17-1~deb12u2"}))
    debindex._PARSED.clear()  # the next run: a new process
    with pytest.raises(IndexError_, match="not cached"):
        cache._packages(suite, "main", entries, offline=True)


def test_a_replay_mark_made_elsewhere_is_not_used(tmp_path: Path) -> None:
    """A date far in the future, written in, would refuse every real index from then on."""
    suite = debindex.Suite("http://127.0.0.1:9/debian", "bookworm-security", ("main",))
    cache = debindex.IndexCache(tmp_path / "indexes", trust=KEY)
    mark = cache.seen(suite)
    mark.parent.mkdir(parents=True)
    cache._keep(mark, b"2026-11-28T02:53:00+00:00")
    assert cache._seen(suite) is not None
    mark.write_text("2099-01-01T00:00:00+00:00")
    assert cache._seen(suite) is None
    assert os.path.exists(seal_path(mark))


# ---- the seals in the production paths ----------------------------------------------------------


def forged_base(root: Path) -> Catalogue:
    """A catalogue with this machine's key, holding a base record it never sealed."""
    catalogue = Catalogue(DirStore(root, KEY), "local")
    folder = catalogue.base_dir("k1")
    folder.mkdir(parents=True)
    (folder / "record.json").write_text('{"key": "k1", "artifacts": {}}')
    return catalogue


def test_a_base_bake_rebuilds_an_unsealed_cached_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bakehouse.progress import Progress
    from bakehouse.runs import run_dir
    from bakehouse.targets.local import base as base_stage

    catalogue = forged_base(tmp_path / "cat")
    built: list[str] = []
    monkeypatch.setattr(base_stage, "build", lambda *a: built.append(a[2]) or "new base")
    monkeypatch.setattr(base_stage, "verify", lambda *a: pytest.fail("the forged base was used"))
    with run_dir(tmp_path / "state", "web", "t") as run:
        got = base_stage._ensure(
            None, {}, "k1", tmp_path / "c.sh", catalogue, run, Progress(quiet=True), False
        )
    assert (got, built) == ("new base", ["k1"])
    assert not catalogue.base_dir("k1").exists()


def test_the_base_key_walk_passes_over_an_unsealed_record(tmp_path: Path) -> None:
    """Which base a definition asks for must not fail on a record this key did not seal (the
    build that follows replaces it)."""
    from bakehouse.targets.local import base as base_stage
    from tests.conftest import ROOT

    spec = web_spec()
    catalogue = Catalogue(DirStore(tmp_path / "cat", KEY), "local")
    _, key = base_stage.current(spec.base.local, ROOT / "packer", catalogue)
    folder = catalogue.base_dir(key)
    folder.mkdir(parents=True)
    (folder / "record.json").write_text(json.dumps({"key": key, "revoked": {"reason": "x"}}))
    assert base_stage.current(spec.base.local, ROOT / "packer", catalogue)[1] == key


def web_spec():  # type: ignore[no-untyped-def]
    from bakehouse.spec import Catalog
    from tests.conftest import ROOT

    return Catalog(ROOT / "images").load("web")


def test_host_patching_redoes_an_unsealed_cached_patched_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bakehouse.progress import Progress
    from bakehouse.runs import run_dir
    from bakehouse.targets.local import base as base_stage
    from bakehouse.targets.local import hostpatch

    class Patching(Exception):
        pass

    def verify(base: object, roles: object = None) -> None:
        raise Patching  # reached only when the cached patched base was not used

    catalogue = forged_base(tmp_path / "cat")
    monkeypatch.setattr(base_stage, "verify", verify)
    with run_dir(tmp_path / "state", "web", "t") as run, pytest.raises(Patching):
        hostpatch._ensure(
            None,  # type: ignore[arg-type]
            tmp_path / "patch.sh",
            "all",
            debindex.Indexes(),
            catalogue,
            run,
            Progress(quiet=True),
            {},
            "k1",
        )
    assert not catalogue.base_dir("k1").exists()


def test_the_state_folders_index_cache_is_sealed(tmp_path: Path) -> None:
    """bakehouse's own index cache (not only IndexCache given a key) refuses a parsed index it
    did not seal, and `invoke trust --yes` can vouch for one."""
    state = tmp_path / "state"
    parsed = state / "cache" / "indexes" / "packages" / f"{'d' * 64}.json"
    parsed.parent.mkdir(parents=True)
    parsed.write_text('{"openssl": "0"}')
    assert debindex.state_cache(state)._trusted(parsed) is None
    assert str(parsed) in adopt(state, yes=True)["documents"]
    assert debindex.state_cache(state)._trusted(parsed) == b'{"openssl": "0"}'


def test_a_key_someone_else_owns_or_a_link_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    Trust.load()
    key = tmp_path / "config" / "bakehouse" / "trust.key"
    os.chown(key, 1, 1)  # the tests run as root: make it another user's
    with pytest.raises(UsageError, match="can be read or changed by others"):
        Trust.load()
    key.unlink()
    key.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UsageError, match="is a symbolic link"):
        Trust.load()


def test_a_second_first_run_keeps_the_key_that_is_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bakehouse import trust

    monkeypatch.delenv(KEY_ENV)
    key = tmp_path / "k" / "trust.key"
    trust._make(key)
    first = key.read_text()
    trust._make(key)  # lost the race: the file in place stays, nothing is left beside it
    assert key.read_text() == first and len(bytes.fromhex(first.strip())) == 32
    assert [p.name for p in key.parent.iterdir()] == ["trust.key"]


def test_invoke_trust_covers_every_kind_of_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `invoke trust` lists is what bakehouse seals: records of images and bases, channels,
    roll records, parsed indexes and index dates."""
    monkeypatch.setenv(KEY_ENV, "cd" * 32)
    state = tmp_path / "state"
    docs = [
        "catalogue/local/images/web/1/record.json",
        "catalogue/local/bases/k1/record.json",
        "catalogue/local/channels.json",
        "catalogue/aws/rolls/web/0001.json",
        "cache/indexes/packages/" + "e" * 64 + ".json",
        "cache/indexes/releases/deb_trixie-security.InRelease.date",
    ]
    for doc in docs:
        (state / doc).parent.mkdir(parents=True, exist_ok=True)
        (state / doc).write_text("{}")
    assert sorted(adopt(state, yes=True)["documents"]) == sorted(str(state / d) for d in docs)
    assert adopt(state, yes=False)["documents"] == []
    store = DirStore(state / "catalogue", Trust.load())
    assert store.read("local/channels.json") == b"{}"
    date = state / docs[-1]
    assert debindex.state_cache(state)._trusted(date) == b"{}"
