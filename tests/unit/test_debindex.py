"""Host-side package indexes: Release parsing, Packages parsing, pending updates by Debian
version order, security flags. Fixtures are real stanzas from bookworm and bookworm-security."""

from __future__ import annotations

from pathlib import Path

from bakehouse import debindex

FIX = Path(__file__).parents[1] / "fixtures"


def indexes() -> debindex.Indexes:
    ix = debindex.Indexes()
    ix.suites["bookworm"] = debindex.parse_packages((FIX / "bookworm-main-Packages").read_text())
    ix.suites["bookworm-security"] = debindex.parse_packages(
        (FIX / "bookworm-security-main-Packages").read_text()
    )
    ix.security.add("bookworm-security")
    return ix


def test_parse_packages_real_stanzas() -> None:
    main = debindex.parse_packages((FIX / "bookworm-main-Packages").read_text())
    assert main["openssh-server"] == "1:9.2p1-2+deb12u10"
    assert "Filename" not in main and len(main) == 7


def test_parse_packages_keeps_highest_version() -> None:
    text = "Package: a\nVersion: 1.0-1\n\nPackage: a\nVersion: 1:0.1\n\nPackage: a\nVersion: 2.0\n"
    assert debindex.parse_packages(text) == {"a": "1:0.1"}  # the epoch wins


def test_parse_release() -> None:
    text = (
        "Origin: Debian\nMD5Sum:\n 0123 10 main/x\nSHA256:\n"
        " " + "a" * 64 + " 1234 main/binary-amd64/Packages.xz\n"
        " " + "b" * 64 + " 99 main/binary-amd64/Release\nNext: x\n"
    )
    entries = debindex.parse_release(text)
    assert entries["main/binary-amd64/Packages.xz"] == ("a" * 64, 1234)
    assert "main/x" not in entries


def test_up_to_date_image_has_nothing_pending() -> None:
    ix = indexes()
    installed = {name: version for name, (version, _) in ix.candidates().items()}
    assert debindex.pending(installed, ix) == []


def test_older_openssl_is_a_pending_security_update() -> None:
    ix = indexes()
    installed = {
        "openssl": "3.0.20-1~deb12u2",
        "libssl3": "3.0.20-1~deb12u2",
        "openssh-server": "1:9.2p1-2+deb12u10",
        "base-files": "12.4+deb12u15",
    }
    pending = {p.name: p for p in debindex.pending(installed, ix)}
    assert set(pending) == {"openssl", "libssl3"}
    assert pending["openssl"].candidate == "3.0.22-1~deb12u2" and pending["openssl"].security


def test_newer_in_main_than_security_counts_by_what_is_installed() -> None:
    ix = indexes()
    cand = ix.candidates()
    # bookworm has deb12u10, bookworm-security only deb12u9: the newest is not the security one
    assert cand["openssh-server"] == ("1:9.2p1-2+deb12u10", False)
    # from deb12u9 (the security fix installed) the point release brings no security fix...
    (pending,) = debindex.pending({"openssh-server": "1:9.2p1-2+deb12u9"}, ix)
    assert not pending.security
    # ...but from deb12u8 it does: deb12u9's fix is in it
    (pending,) = debindex.pending({"openssh-server": "1:9.2p1-2+deb12u8"}, ix)
    assert pending.candidate == "1:9.2p1-2+deb12u10" and pending.security


def test_kept_back_kernel_shows_as_metapackage() -> None:
    ix = indexes()
    pending = debindex.pending({"linux-image-cloud-amd64": "6.1.176-1"}, ix)
    assert [(p.name, p.candidate, p.security) for p in pending] == [
        ("linux-image-cloud-amd64", "6.1.192-2", True)
    ]


def test_installed_from_manifest_drops_arch_qualifier() -> None:
    manifest = {"packages": [{"name": "libc6:amd64", "version": "2.36"}]}
    assert debindex.installed_from_manifest(manifest) == {"libc6": "2.36"}
