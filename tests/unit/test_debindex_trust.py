"""A signed index is only believed for the suite it names, while it is valid, and never older
than one already seen: replayed or swapped InRelease files are refused.

The fixtures are Debian's own signed InRelease files, served by a local HTTP mirror."""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bakehouse import debindex
from bakehouse.debindex import IndexCache, Suite
from bakehouse.distro import DEBIAN_KEYRING
from bakehouse.errors import IndexError_

FIX = Path(__file__).parents[1] / "fixtures" / "inrelease"
SECURITY = FIX / "bookworm-security.InRelease"  # Date: Sat, 28 Nov 2026 02:53:00 UTC
UPDATES = FIX / "bookworm-updates.InRelease"  # Date: Sat, 28 Nov 2026 02:15:35 UTC, no Valid-Until
SIGNED_AT = dt.datetime(2026, 11, 28, 2, 53, tzinfo=dt.UTC)
VALID_UNTIL = dt.datetime(2026, 12, 5, 2, 53, tzinfo=dt.UTC)

pytestmark = pytest.mark.skipif(not DEBIAN_KEYRING.is_file(), reason="needs Debian's keyring")


class Mirror:
    def __init__(self, root: Path, url: str):
        self.root, self.url = root, url

    def serve(self, suite: str, fixture: Path) -> None:
        folder = self.root / "debian" / "dists" / suite
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(fixture, folder / "InRelease")


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[Mirror]:
    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Mirror(root, f"http://127.0.0.1:{server.server_address[1]}/debian")
    finally:
        server.shutdown()
        server.server_close()


def cache(tmp_path: Path, now: dt.datetime = SIGNED_AT + dt.timedelta(hours=1)) -> IndexCache:
    return IndexCache(tmp_path / "cache", now=lambda: now)


def test_the_right_file_is_accepted(mirror: Mirror, tmp_path: Path) -> None:
    mirror.serve("bookworm-security", SECURITY)
    text, offline = cache(tmp_path).release(Suite(mirror.url, "bookworm-security", ("main",)))
    assert "Codename: bookworm-security" in text and not offline


def test_a_file_for_another_suite_is_refused(mirror: Mirror, tmp_path: Path) -> None:
    # Debian's genuine, signed bookworm-updates file served as bookworm-security
    mirror.serve("bookworm-security", UPDATES)
    with pytest.raises(IndexError_, match="is for bookworm-updates, not bookworm-security"):
        cache(tmp_path).release(Suite(mirror.url, "bookworm-security", ("main",)))


def test_an_expired_file_is_refused(mirror: Mirror, tmp_path: Path) -> None:
    mirror.serve("bookworm-security", SECURITY)
    late = cache(tmp_path, VALID_UNTIL + dt.timedelta(seconds=1))
    with pytest.raises(IndexError_, match="expired on 2026-12-05"):
        late.release(Suite(mirror.url, "bookworm-security", ("main",)))


def test_a_file_older_than_one_seen_before_is_refused(mirror: Mirror, tmp_path: Path) -> None:
    mirror.serve("bookworm-security", SECURITY)
    suite = Suite(mirror.url, "bookworm-security", ("main",))
    index = cache(tmp_path)
    index.release(suite)  # seen: 28 Nov 02:53
    # a mirror replaying an older signed state: the high-water mark is later than what it serves
    index.seen(suite).write_text((SIGNED_AT + dt.timedelta(days=1)).isoformat())
    with pytest.raises(IndexError_, match="older than the one seen before"):
        index.release(suite)


def test_the_offline_copy_is_checked_again(mirror: Mirror, tmp_path: Path) -> None:
    mirror.serve("bookworm-security", SECURITY)
    suite = Suite(mirror.url, "bookworm-security", ("main",))
    cache(tmp_path).release(suite)
    shutil.rmtree(mirror.root / "debian")  # the mirror fails: the cached copy is used...
    assert cache(tmp_path, SIGNED_AT + dt.timedelta(days=2)).release(suite)[1] is True
    # ...but only while it is valid, and only while its signature holds
    with pytest.raises(IndexError_, match="expired"):
        cache(tmp_path, VALID_UNTIL + dt.timedelta(days=1)).release(suite)
    stored = cache(tmp_path).stored(suite)
    later = stored.read_bytes().replace(b"Valid-Until: Sat, 05", b"Valid-Until: Sat, 26")
    stored.write_bytes(later)
    with pytest.raises(IndexError_, match="signature"):
        cache(tmp_path).release(suite)


def test_a_release_without_a_date_is_refused() -> None:
    from bakehouse.debindex import check_release

    suite = Suite("http://m/debian", "bookworm-security", ("main",))
    text = "Suite: oldstable-security\nCodename: bookworm-security\n"
    with pytest.raises(IndexError_, match="has no Date field"):
        check_release(text, suite, SIGNED_AT, None, "here")
    dated = text + "Date: Sat, 28 Nov 2026 02:53:00 UTC\n"
    assert check_release(dated, suite, SIGNED_AT, None, "here") == SIGNED_AT


def test_a_fresh_runner_refuses_an_index_older_than_the_target_has_seen(
    mirror: Mirror, tmp_path: Path
) -> None:
    """The high-water mark kept with the target's state (the account's bucket on aws, a
    folder store here) reaches a runner whose own cache is empty, as a CI runner's is."""
    from bakehouse.catalogue import DirStore

    mirror.serve("bookworm-security", SECURITY)
    suite = Suite(mirror.url, "bookworm-security", ("main",))
    state = DirStore(tmp_path / "account")
    marks = debindex.StoreMarks(state)
    IndexCache(
        tmp_path / "runner-1", now=lambda: SIGNED_AT + dt.timedelta(hours=1), marks=marks
    ).release(suite)
    assert marks.get(debindex.mark_key(suite)) == SIGNED_AT  # recorded with the state
    later = SIGNED_AT + dt.timedelta(days=1)
    debindex.StoreMarks(state).raise_to(debindex.mark_key(suite), later)  # another runner saw newer
    debindex.StoreMarks(state).raise_to(debindex.mark_key(suite), SIGNED_AT)  # never goes back
    fresh = IndexCache(
        tmp_path / "runner-2",
        now=lambda: SIGNED_AT + dt.timedelta(hours=2),
        marks=debindex.StoreMarks(state),
    )
    with pytest.raises(IndexError_, match="older than the one seen before"):
        fresh.release(suite)
    # without the state's mark, the same fresh runner would have taken the replayed index
    assert IndexCache(tmp_path / "runner-3", now=lambda: SIGNED_AT + dt.timedelta(hours=2)).release(
        suite
    )


def test_an_unreadable_mark_is_an_error_not_a_pass(tmp_path: Path) -> None:
    from bakehouse.catalogue import DirStore

    state = DirStore(tmp_path / "account")
    state.write(debindex.StoreMarks.KEY, b"{not json")
    with pytest.raises(IndexError_, match="cannot read"):
        debindex.StoreMarks(state).get("http://deb.debian.org/debian-security bookworm-security")


def test_an_index_is_fetched_by_hash_while_the_mirror_updates(
    mirror: Mirror, tmp_path: Path
) -> None:
    """Between the Release and the Packages fetch the mirror moved on: its usual path already
    holds the next Packages. The copy kept under the signed digest (Acquire-By-Hash) is the
    one fetched; without a by-hash copy the usual path is used, and its sha256 still decides."""
    import hashlib
    import lzma

    signed = lzma.compress(b"Package: openssl\nVersion: 3.0.17-1~deb12u3\n\n")
    newer = lzma.compress(b"Package: openssl\nVersion: 3.0.17-1~deb12u4\n\n")
    digest = hashlib.sha256(signed).hexdigest()
    folder = mirror.root / "debian" / "dists" / "bookworm-security" / "main" / "binary-amd64"
    (folder / "by-hash" / "SHA256").mkdir(parents=True)
    (folder / "Packages.xz").write_bytes(newer)  # the mirror, half-way through its update
    (folder / "by-hash" / "SHA256" / digest).write_bytes(signed)
    suite = Suite(mirror.url, "bookworm-security", ("main",))
    entries = {"main/binary-amd64/Packages.xz": (digest, len(signed))}
    index = cache(tmp_path)
    assert index._packages(suite, "main", entries, False, by_hash=True) == {
        "openssl": "3.0.17-1~deb12u3"
    }
    debindex._PARSED.clear()
    shutil.rmtree(tmp_path / "cache" / "packages")
    with pytest.raises(IndexError_, match="sha256 does not match the signed Release"):
        index._packages(suite, "main", entries, False, by_hash=False)  # the race, by path
    (folder / "by-hash" / "SHA256" / digest).unlink()  # a mirror that keeps no by-hash copy
    (folder / "Packages.xz").write_bytes(signed)
    assert index._packages(suite, "main", entries, False, by_hash=True) == {
        "openssl": "3.0.17-1~deb12u3"
    }


def test_the_release_says_whether_files_are_kept_by_hash() -> None:
    assert debindex.BY_HASH.search(SECURITY.read_text())
    assert not debindex.BY_HASH.search("Origin: Debian\nSuite: x\n")
