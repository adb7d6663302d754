"""packer/scripts/patch.sh finds the release's security suite on any image: from its apt sources,
or from the line bakehouse hands it (vendor AMIs keep deb822 .sources files, and bakehouse, not
the script, knows where a distribution's security archive is). The script runs for real, with
its files under a scratch root and apt-get recording what it was asked (the package work itself
runs in every real bake)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "packer" / "scripts" / "patch.sh"
TRIXIE = "deb http://deb.debian.org/debian-security trixie-security main"
NOBLE = "deb http://security.ubuntu.com/ubuntu noble-security main universe"
DEB822 = {"sources.list.d/debian.sources": "Types: deb\nURIs: http://x/\nSuites: trixie-security\n"}


def run(
    tmp: Path, codename: str, sources: dict[str, str], **env: str
) -> subprocess.CompletedProcess[str]:
    etc = tmp / "etc"
    (etc / "apt" / "sources.list.d").mkdir(parents=True)
    (etc / "os-release").write_text(f"ID=x\nVERSION_CODENAME={codename}\n")
    for name, text in sources.items():
        (etc / "apt" / name).write_text(text)
    text = SCRIPT.read_text().replace("/etc/", f"{etc}/")
    (tmp / "patch.sh").write_text(text)
    bin_ = tmp / "bin"
    bin_.mkdir()
    log = tmp / "apt.log"
    # apt-get: note the arguments and, for a security-only run, the list it is pointed at
    (bin_ / "apt-get").write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        'for a in "$@"; do case "$a" in Dir::Etc::SourceList=*) '
        f'cat "${{a#Dir::Etc::SourceList=}}" >> {log};; esac; done\n'
    )
    (bin_ / "dpkg-query").write_text("#!/bin/sh\necho pkg\n")
    for tool in ("apt-get", "dpkg-query"):
        (bin_ / tool).chmod(0o755)
    return subprocess.run(
        ["sh", str(tmp / "patch.sh")],
        env={"PATH": f"{bin_}:{os.environ['PATH']}", **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_an_image_without_its_security_suite_gets_the_one_bakehouse_gives(tmp_path: Path) -> None:
    result = run(tmp_path, "noble", {"sources.list": ""}, BAKEHOUSE_SECURITY_SOURCE=NOBLE)
    assert result.returncode == 0, result.stderr
    added = tmp_path / "etc" / "apt" / "sources.list.d" / "bakehouse-security.list"
    assert added.read_text() == NOBLE + "\n"


def test_without_a_security_suite_anywhere_nothing_is_patched(tmp_path: Path) -> None:
    result = run(
        tmp_path, "trixie", {"sources.list": "deb http://deb.debian.org/debian trixie main\n"}
    )
    assert result.returncode == 2
    assert "no trixie-security suite in the apt sources, and none given" in result.stderr
    assert not (tmp_path / "apt.log").exists()


def test_a_security_line_for_another_release_is_refused(tmp_path: Path) -> None:
    result = run(
        tmp_path, "trixie", {"sources.list": TRIXIE + "\n"}, BAKEHOUSE_SECURITY_SOURCE=NOBLE
    )
    assert result.returncode == 2 and "is not for trixie" in result.stderr
    assert not (tmp_path / "apt.log").exists()


@pytest.mark.parametrize(
    ("sources", "given", "expected"),
    [
        # a one-line sources.list (local bases): taken from there
        (
            {"sources.list": f"deb http://deb.debian.org/debian trixie main\n{TRIXIE}\n"},
            None,
            TRIXIE,
        ),
        # deb822 only (vendor AMIs): the line bakehouse gives
        (
            DEB822,
            TRIXIE,
            TRIXIE,
        ),
    ],
)
def test_security_only_patching_resolves_against_the_security_suite_alone(
    tmp_path: Path, sources: dict[str, str], given: str | None, expected: str
) -> None:
    env = {"BAKEHOUSE_PATCH_POLICY": "security"}
    if given:
        env["BAKEHOUSE_SECURITY_SOURCE"] = given
    result = run(tmp_path, "trixie", sources, **env)
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "apt.log").read_text().splitlines()
    assert "Dir::Etc::SourceParts=/nonexistent" in calls[0]
    assert calls[1] == expected  # the only source of the security-only run


def test_deb822_only_and_nothing_given_is_an_error_for_security_only(tmp_path: Path) -> None:
    result = run(tmp_path, "trixie", DEB822, BAKEHOUSE_PATCH_POLICY="security")
    assert result.returncode == 2
    assert "cannot find the trixie-security suite as an apt line" in result.stderr
