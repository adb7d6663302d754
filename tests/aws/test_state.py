"""The aws target's catalogue in S3: a new bucket is private, encrypted, versioned and TLS-only;
every request names the expected owner; a bucket of another account is refused; entries are
whole or refused; concurrent updates lose nothing."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from bakehouse.aws.session import Aws
from bakehouse.aws.state import S3Store, default_bucket
from bakehouse.catalogue import Catalogue
from bakehouse.errors import AwsError, CatalogueError
from tests.aws.conftest import ACCOUNT, REGIONS, client

pytestmark = pytest.mark.usefixtures("aws_env")
BUCKET = default_bucket(ACCOUNT)


def store() -> S3Store:
    return S3Store(Aws(), BUCKET, REGIONS[0])


def staged(folder: Path, body: str = "m") -> Path:
    folder.mkdir()
    (folder / "manifest.json").write_text(body)
    return folder


def test_a_new_bucket_is_private_encrypted_versioned_and_tls_only() -> None:
    store().write("x/doc.json", b"{}")
    s3 = client("s3")
    block = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    rule = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    (deny,) = json.loads(s3.get_bucket_policy(Bucket=BUCKET)["Policy"])["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {
        "Bool": {"aws:SecureTransport": "false"}
    }


def test_every_request_names_the_expected_owner(tmp_path: Path) -> None:
    aws = Aws()
    seen: list[tuple[str, dict[str, Any]]] = []
    s3 = aws.client("s3", REGIONS[0])
    s3.meta.events.register(
        "provide-client-params.s3.*",
        lambda params, model, **_: seen.append((model.name, dict(params))),
    )
    cat = Catalogue(S3Store(aws, BUCKET, REGIONS[0]), "aws")
    record = {"name": "web", "version": "1", "target": "aws", "state": "baked", "history": []}
    cat.add(record, staged(tmp_path / "s"))
    cat.transition("web", "1", "verified")
    cat.images("web")
    cat.artifact("web", "1", "manifest.json")
    names = {name for name, _ in seen}
    assert {"CreateBucket", "PutObject", "GetObject", "ListObjectsV2", "HeadBucket"} <= names
    for name, params in seen:
        if name != "CreateBucket":  # the one call that has no such parameter
            assert params.get("ExpectedBucketOwner") == ACCOUNT, name


def test_a_bucket_of_another_account_is_refused() -> None:
    """AWS answers 403 when the expected owner is not the bucket's (moto does not check owners:
    botocore's Stubber gives AWS's answer)."""
    s = store()
    with Stubber(s.s3) as stub:
        stub.add_client_error("head_bucket", "403", http_status_code=403)
        with pytest.raises(AwsError, match="is not this account's") as caught:
            s.exists()
    assert caught.value.hint and "BAKEHOUSE_AWS_STATE_BUCKET" in caught.value.hint
    with Stubber(s.s3) as stub:
        stub.add_client_error("head_bucket", "403", http_status_code=403)
        with pytest.raises(AwsError):
            s.write("a/b.json", b"{}")  # nothing is written into someone else's bucket


def test_an_entry_is_whole_or_refused(tmp_path: Path) -> None:
    cat = Catalogue(store(), "aws")
    record = {"name": "web", "version": "1", "target": "aws", "state": "baked", "history": []}
    cat.add(record, staged(tmp_path / "a", "first"))
    with pytest.raises(CatalogueError, match="exists already"):
        cat.add(record, staged(tmp_path / "b", "second"))
    assert cat.artifact("web", "1", "manifest.json") == b"first"  # nothing of it replaced
    assert [r["version"] for r in cat.images("web")] == ["1"]


def test_concurrent_updates_lose_nothing() -> None:
    """Conditional writes (If-Match on the ETag): every writer's change survives."""
    s = store()
    s.write("aws/channels.json", b"{}")

    def add(i: int) -> None:
        s.update("aws/channels.json", lambda doc: {**(doc or {}), f"w{i}": i})

    threads = [threading.Thread(target=add, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert json.loads(s.read("aws/channels.json") or b"{}") == {f"w{i}": i for i in range(6)}


def test_records_from_before_the_account_held_them_are_uploaded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An AWS bake recorded by an older bakehouse in the local catalogue is not lost: the local
    catalogue's migration sets it aside, and the aws target's first bake uploads it — once the
    operator has vouched for the unsealed record."""
    from bakehouse.errors import Untrusted
    from bakehouse.project import Project
    from bakehouse.spec import Catalog
    from bakehouse.targets.aws import AwsTarget
    from bakehouse.targets.base import BakeRequest, TargetOptions
    from bakehouse.trust import adopt
    from tests.conftest import ROOT, TODAY

    state = tmp_path / "state"
    old = state / "catalogue" / "images" / "web" / "20260101.000000"
    old.mkdir(parents=True)
    legacy = {"name": "web", "version": "20260101.000000", "target": "aws", "state": "published"}
    (old / "record.json").write_text(json.dumps(legacy | {"amis": [], "history": []}))
    (old / "report.md").write_text("# web")
    monkeypatch.setenv("BAKEHOUSE_STATE_DIR", str(state))
    spec = Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("web", TODAY)
    options = TargetOptions(runner_cidr="192.0.2.1/32")
    # written by a bakehouse that sealed nothing: it reaches the account only once the
    # operator vouches for it (`invoke trust --yes`), never on its own word
    with pytest.raises(Untrusted):
        AwsTarget(Project(ROOT), options).check(spec, BakeRequest())
    assert AwsTarget(Project(ROOT), options).catalogue.versions("web") == []
    adopt(state, yes=True)
    AwsTarget(Project(ROOT), options).check(spec, BakeRequest())
    target = AwsTarget(Project(ROOT), options)
    assert target.catalogue.image("web", "20260101.000000")["state"] == "published"
    assert target.catalogue.artifact("web", "20260101.000000", "report.md") == b"# web"
    assert not (state / "catalogue" / "aws" / "images").exists()
    assert list((state / "catalogue" / "aws").glob("images.uploaded-*"))
    target.check(spec, BakeRequest())  # a second bake has nothing left to upload


def test_an_entry_never_replaces_a_file_another_writer_put_first(tmp_path: Path) -> None:
    """Two runners recording the same version at once: whoever is second fails on the first
    file the other already wrote, and replaces nothing."""
    cat = Catalogue(store(), "aws")
    cat.store.write("aws/images/web/1/manifest.json", b"theirs")  # the other runner, mid-add
    record = {"name": "web", "version": "1", "target": "aws", "state": "baked", "history": []}
    with pytest.raises(CatalogueError, match=r"manifest\.json exists already"):
        cat.add(record, staged(tmp_path / "s", "mine"))
    assert cat.artifact("web", "1", "manifest.json") == b"theirs"


def test_index_marks_are_kept_in_the_account_and_never_go_back(tmp_path: Path) -> None:
    """A fresh runner reads the newest package-index Date any runner accepted from the
    account's bucket (with the records), and no runner can lower it."""
    import datetime as dt

    from bakehouse import debindex
    from bakehouse.project import Project
    from bakehouse.targets import get
    from tests.conftest import ROOT

    key = "http://deb.debian.org/debian-security bookworm-security"
    seen = dt.datetime(2026, 11, 28, 2, 53, tzinfo=dt.UTC)
    marks = get("aws", Project(ROOT)).index_marks()
    assert isinstance(marks, debindex.StoreMarks)
    assert marks.store.location == store().location  # the catalogue's bucket
    marks.raise_to(key, seen + dt.timedelta(days=1))
    debindex.StoreMarks(store()).raise_to(key, seen)  # a runner with an older index
    assert debindex.StoreMarks(store()).get(key) == seen + dt.timedelta(days=1)
    assert get("local", Project(ROOT)).index_marks() is None  # its cache is its state
