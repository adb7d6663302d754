"""Distribution families: each release's archive, signing key (Ubuntu's pinned by fingerprint),
security suite and AWS defaults; nightly's patch-level decisions per family and architecture,
from real index excerpts (tests/fixtures/indexes, cut from the archives' Packages files of
28 Nov 2026) and real signed InRelease files; Graviton instance types against the base."""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bakehouse import debindex, distro, plan
from bakehouse.errors import IndexError_, SpecError
from bakehouse.spec import Catalog
from tests.conftest import TODAY

FIX = Path(__file__).parents[1] / "fixtures"
UBUNTU_2018 = "F6ECB3762474EDA9D21B7022871920D1991BC93C"


def excerpt(suite: str, arch: str = "amd64") -> dict[str, str]:
    return debindex.parse_packages((FIX / "indexes" / f"{suite}_{arch}.Packages").read_text())


def indexes(codename: str, arch: str = "amd64") -> debindex.Indexes:
    out = debindex.Indexes()
    for suite in (codename, f"{codename}-updates", f"{codename}-security"):
        out.suites[suite] = excerpt(suite, arch)
        if suite.endswith("-security"):
            out.security.add(suite)
    return out


def decide(installed: dict[str, str], ix: debindex.Indexes) -> plan.Decision:
    """Nightly's decision for an image whose inputs did not change, baked a day ago."""
    now = dt.datetime(2026, 11, 28, 4, 0, tzinfo=dt.UTC)
    facts = plan.Facts(
        image="web",
        fingerprint="f",
        base_key="b",
        last={
            "version": "20261127.030000",
            "state": "published",
            "fingerprint": "f",
            "base": {"key": "b"},
            "created": (now - dt.timedelta(days=1)).isoformat(),
        },
        rebuild_on="security",
        max_age_days=30,
        pending=tuple(debindex.pending(installed, ix)),
    )
    return plan.decide(facts, now)


# ---- decisions per family, from real index excerpts --------------------------------------------


def test_debian_a_security_update_only_in_the_security_suite_rebakes() -> None:
    """Debian's -security is a suite of its own: nginx-light's fix (deb13u11) is there and in
    no other suite; the point-release version (deb13u10) is installed."""
    ix = indexes("trixie")
    installed = {**excerpt("trixie"), "nginx-light": "1.26.3-3+deb13u10"}
    pending = {p.name: p for p in debindex.pending(installed, ix)}
    assert pending["nginx-light"].candidate == "1.26.3-3+deb13u11"
    assert pending["nginx-light"].security
    assert decide(installed, ix).bake


def test_debian_an_update_from_updates_alone_does_not_rebake_for_security() -> None:
    """tzdata's newer version (2026f) comes from trixie-updates: an update, not a security one."""
    ix = indexes("trixie")
    installed = {"tzdata": "2026e-0+deb13u1"}
    (p,) = debindex.pending(installed, ix)
    assert (p.name, p.security) == ("tzdata", False)
    decision = decide(installed, ix)
    assert not decision.bake and "none that rebuild_on=security" in decision.reason


def test_ubuntu_a_security_fix_copied_to_updates_is_a_security_update() -> None:
    """Ubuntu publishes security fixes to -security and copies them to -updates: the same
    version in both is a security update."""
    ix = indexes("noble")
    installed = {"openssl": "3.0.13-0ubuntu3", "libssl3t64": "3.0.13-0ubuntu3"}
    pending = debindex.pending(installed, ix)
    assert {(p.name, p.candidate, p.security) for p in pending} == {
        ("openssl", "3.0.13-0ubuntu3.16", True),
        ("libssl3t64", "3.0.13-0ubuntu3.16", True),
    }
    assert decide(installed, ix).bake


def test_ubuntu_a_security_fix_behind_a_newer_update_still_counts() -> None:
    """apport: -security carries 2.28.1-0ubuntu3.8, -updates a later 2.28.3-0ubuntu0.1. From
    the release's 2.28.1-0ubuntu2 the update brings the security fix, though the newest
    version is not the security suite's."""
    ix = indexes("noble")
    (p,) = debindex.pending({"apport": "2.28.1-0ubuntu2"}, ix)
    assert (p.candidate, p.security) == ("2.28.3-0ubuntu0.1", True)
    # from the security version itself only the ordinary update is left
    (q,) = debindex.pending({"apport": "2.28.1-0ubuntu3.8"}, ix)
    assert (q.candidate, q.security) == ("2.28.3-0ubuntu0.1", False)


def test_arm64_decisions_come_from_the_arm64_indexes() -> None:
    """The arm64 kernel's security update exists only in binary-arm64: an arm64 image is
    judged against those, and the amd64 indexes do not even carry the package."""
    installed = {"linux-image-cloud-arm64": "6.12.117-1"}
    (p,) = debindex.pending(installed, indexes("trixie", "arm64"))
    assert (p.candidate, p.security) == ("6.12.118-1", True)
    assert debindex.pending(installed, indexes("trixie", "amd64")) == []


def test_each_release_reads_its_own_suites_for_its_architecture() -> None:
    def suites(codename: str, arch: str) -> list[tuple[str, str, str, bool]]:
        rel = distro.release(codename)
        fam = rel.distro
        found = fam.suites(rel, fam.mirror(arch), fam.security_mirror(arch), fam.components, arch)
        return [(s.mirror, s.name, s.arch, s.security) for s in found]

    assert suites("trixie", "arm64") == [
        ("http://deb.debian.org/debian", "trixie", "arm64", False),
        ("http://deb.debian.org/debian", "trixie-updates", "arm64", False),
        ("http://deb.debian.org/debian-security", "trixie-security", "arm64", True),
    ]
    assert suites("noble", "amd64")[2] == (
        "http://security.ubuntu.com/ubuntu",
        "noble-security",
        "amd64",
        True,
    )
    # Ubuntu's arm64 packages are on ports, not on the main archive
    assert {m for m, *_ in suites("noble", "arm64")} == {"http://ports.ubuntu.com/ubuntu-ports"}


# ---- Ubuntu's archive key: pinned by fingerprint ------------------------------------------------


def fingerprints(keyring: Path) -> list[str]:
    out = subprocess.run(
        ["gpg", "--show-keys", "--with-colons", str(keyring)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    keys = out.split("\npub:")
    return [k.split("\nfpr:", 1)[1].split(":")[8] for k in keys if "\nfpr:" in k]


def test_the_ubuntu_keyring_holds_the_pinned_key_only() -> None:
    ubuntu = distro.FAMILIES["ubuntu"]
    assert ubuntu.signers == (UBUNTU_2018,)
    assert fingerprints(ubuntu.keyring) == [UBUNTU_2018]


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "mirror"
    (root / "ubuntu" / "dists" / "noble-security").mkdir(parents=True)
    shutil.copy(
        FIX / "inrelease" / "noble-security.InRelease",
        root / "ubuntu" / "dists" / "noble-security" / "InRelease",
    )
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/ubuntu"
    finally:
        server.shutdown()
        server.server_close()


SIGNED = dt.datetime(2026, 11, 28, 3, 0, tzinfo=dt.UTC)


def test_ubuntus_signed_index_is_read_with_its_pinned_key(
    mirror: tuple[Path, str], tmp_path: Path
) -> None:
    _, url = mirror
    rel = distro.release("noble")
    (_, _, security) = rel.distro.suites(rel, url, url, ("main",), "amd64")
    cache = debindex.IndexCache(tmp_path / "cache", now=lambda: SIGNED)
    text, offline = cache.release(security)
    assert "Suite: noble-security" in text and not offline


def test_a_signature_by_another_key_of_the_keyring_is_refused(
    mirror: tuple[Path, str], tmp_path: Path
) -> None:
    """A keyring that holds more than the archive's key (here Debian's keys too): a file must
    still be signed by the pinned key — pinned to Debian's here, so Ubuntu's file is refused."""
    _, url = mirror
    both = tmp_path / "both.gpg"
    both.write_bytes(
        distro.DEBIAN_KEYRING.read_bytes() + distro.FAMILIES["ubuntu"].keyring.read_bytes()
    )
    debian_key = "4CB50190207B4758A3F73A796ED0E7B82643E131"  # Debian 12/bookworm archive key
    suite = distro.Suite(url, "noble-security", ("main",), "amd64", both, (debian_key,))
    cache = debindex.IndexCache(tmp_path / "cache", now=lambda: SIGNED)
    with pytest.raises(IndexError_, match=f"not signed by the pinned key.*but by {UBUNTU_2018}"):
        cache.release(suite)
    allowed = distro.Suite(url, "noble-security", ("main",), "amd64", both, (UBUNTU_2018,))
    assert cache.release(allowed)[1] is False


def test_debians_keyring_does_not_take_ubuntus_file(
    mirror: tuple[Path, str], tmp_path: Path
) -> None:
    _, url = mirror
    suite = distro.Suite(url, "noble-security", ("main",), "amd64")  # Debian's keyring
    with pytest.raises(IndexError_, match="does not verify"):
        debindex.IndexCache(tmp_path / "cache", now=lambda: SIGNED).release(suite)


# ---- definitions: what the release decides, and the architecture ------------------------------


def catalog(tmp_path: Path, **images: str) -> Catalog:
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    (folder / "_defaults.yaml").write_text("publish:\n  channels: [latest]\n")
    for name, text in images.items():
        (folder / f"{name}.yaml").write_text(text)
    return Catalog(folder)


def test_the_release_decides_archive_ami_and_login(tmp_path: Path) -> None:
    cat = catalog(
        tmp_path,
        deb="description: d\nbase:\n  local:\n    suite: trixie\n",
        ubu="description: u\nbase:\n  local:\n    suite: noble\n",
        arm="description: a\nbase:\n  arch: arm64\n  local:\n    suite: noble\n"
        "targets:\n  aws:\n    instance_type: t4g.small\n",
    )
    deb, ubu, arm = (cat.load(n, TODAY).base for n in ("deb", "ubu", "arm"))
    assert deb.aws.ssm_parameter == "/aws/service/debian/release/13/latest/amd64"
    assert deb.aws.allowed_owners() == ("136693071363",) and deb.aws.ssh_username == "admin"
    assert deb.local.mirror_for() == "http://deb.debian.org/debian"
    assert ubu.aws.ssm_parameter == (
        "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
    )
    assert ubu.aws.allowed_owners() == ("099720109477",) and ubu.aws.ssh_username == "ubuntu"
    assert ubu.local.comps == ("main", "universe")
    assert ubu.local.apt_sources()[2] == (
        "deb http://security.ubuntu.com/ubuntu noble-security main universe"
    )
    assert "/arm64/" in str(arm.aws.ssm_parameter)
    assert arm.local.index_suites("arm64")[0].mirror == "http://ports.ubuntu.com/ubuntu-ports"


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (
            "base:\n  arch: arm64\n",
            "targets.aws.instance_type",
            "t3.small is an x86_64 instance type, but the base is arm64",
        ),
        (
            "targets:\n  aws:\n    instance_type: c7g.large\n",
            "targets.aws.instance_type",
            "c7g.large is an arm64 instance type, but the base is amd64",
        ),
        (
            "base:\n  arch: arm64\n  aws:\n    ssm_parameter: /aws/service/debian/release/13/"
            "latest/amd64\ntargets:\n  aws:\n    instance_type: t4g.small\n",
            "base.aws.ssm_parameter",
            "names amd64 images, but base.arch is arm64",
        ),
        (
            "base:\n  aws:\n    filter:\n      name: debian-13-arm64-*\n      owners: "
            "['136693071363']\n      architecture: arm64\n",
            "base.aws.filter.architecture",
            "is arm64, but base.arch is amd64",
        ),
        (
            "base:\n  local:\n    suite: noble\n    components: [main, non-free]\n",
            "base.local.components[1]",
            "non-free is not a component of Ubuntu's archive",
        ),
        ("base:\n  local:\n    suite: buster\n", "base.local.suite", "buster"),
    ],
)
def test_a_definition_that_cannot_work_is_refused(
    tmp_path: Path, text: str, where: str, message: str
) -> None:
    cat = catalog(tmp_path, web=f"description: w\n{text}")
    with pytest.raises(SpecError) as err:
        cat.load("web", TODAY)
    rendered = err.value.render()
    assert "images/web.yaml:" in rendered and where in rendered and message in rendered, rendered


@pytest.mark.parametrize(
    ("instance_type", "arch"),
    [
        ("t3.small", "amd64"),
        ("c7i.large", "amd64"),
        ("m7i-flex.large", "amd64"),
        ("g4dn.xlarge", "amd64"),  # g is the family (GPU), not Graviton
        ("t4g.small", "arm64"),
        ("m7gd.large", "arm64"),
        ("c6gn.medium", "arm64"),
        ("x2gd.large", "arm64"),
        ("im4gn.large", "arm64"),
        ("g5g.xlarge", "arm64"),
        ("a1.medium", "arm64"),
        ("c8g.large", "arm64"),
    ],
)
def test_graviton_instance_types(instance_type: str, arch: str) -> None:
    assert distro.instance_arch(instance_type) == arch


def test_every_family_is_complete() -> None:
    for family in distro.FAMILIES.values():
        assert family.releases and family.keyring.is_file(), family.name
        for rel in family.releases:
            assert distro.release(rel.codename) is rel
            for arch in distro.ARCHES:
                assert family.ssm_parameter(rel, arch).startswith("/aws/service/")
                assert family.mirror(arch).startswith("http")
    with pytest.raises(SpecError, match="unknown release 'buster'"):
        distro.release("buster")


def test_the_local_target_bakes_amd64_only(tmp_path: Path) -> None:
    from bakehouse.errors import UsageError
    from bakehouse.project import Project
    from bakehouse.targets import get
    from bakehouse.targets.base import BakeRequest
    from tests.conftest import ROOT

    cat = catalog(
        tmp_path,
        arm="description: a\nbase:\n  arch: arm64\n"
        "targets:\n  aws:\n    instance_type: t4g.small\n",
    )
    with pytest.raises(UsageError, match="the local target bakes amd64 images; arm is arm64"):
        get("local", Project(ROOT)).check(cat.load("arm", TODAY), BakeRequest())
