"""Every release bakes, verifies and publishes for real on the local target: Debian 12, Ubuntu
24.04 and Ubuntu 22.04 here (Debian 13, the default, is test_local_bake.py's web image). Each
builds its own base with mmdebstrap from its own archive (Ubuntu's checked against the pinned
key), runs the same provisioning and the whole hardening suite, and is published only when it
passes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.e2e
INVOKE = str(Path(sys.executable).parent / "invoke")


@pytest.mark.parametrize(
    ("image", "family", "release", "kernel"),
    [
        ("web-bookworm", "debian", "12", "-cloud-amd64"),
        ("web-noble", "ubuntu", "24.04", "-generic"),
        ("web-jammy", "ubuntu", "22.04", "-generic"),
    ],
)
def test_a_release_bakes_verifies_and_publishes(
    state: Path, image: str, family: str, release: str, kernel: str
) -> None:
    result = subprocess.run(
        [INVOKE, "bake", "--image", image],
        cwd=ROOT,
        env={**os.environ, "BAKEHOUSE_STATE_DIR": str(state)},
        capture_output=True,
        text=True,
        timeout=3000,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = sorted((state / "catalogue" / "local" / "images" / image).glob("*/record.json"))
    record = json.loads(records[-1].read_text())
    assert record["state"] == "published"
    summary = record["verify"]["summary"]
    assert record["verify"]["ok"] and summary["failed"] == summary["error"] == 0
    assert summary["passed"] > 280
    assert record["kernel"].endswith(kernel)
    folder = records[-1].parent
    sbom = json.loads((folder / "sbom.cdx.json").read_text())
    nginx = [c for c in sbom["components"] if c["name"] == "nginx-light"]
    assert nginx and nginx[0]["purl"].startswith(f"pkg:deb/{family}/nginx-light@")
    assert f"distro={family}-{release}" in nginx[0]["purl"]
    base = json.loads(
        (
            state / "catalogue" / "local" / "bases" / record["base"]["key"] / "record.json"
        ).read_text()
    )
    assert (
        base["inputs"]["suite"] == {"12": "bookworm", "24.04": "noble", "22.04": "jammy"}[release]
    )
    # built by Packer in a chroot (the default): no build VM
    built = json.loads((folder / "packer-manifest.json").read_text())["builds"]
    assert [b["builder_type"] for b in built] == ["null"]


def test_the_vm_build_bakes_verifies_and_publishes_too(state: Path, tmp_path: Path) -> None:
    """targets.local.build: vm — Packer's qemu builder, the scripts in a VM booted from the
    host-patched base (Debian 12, whose base the test above built)."""
    import shutil

    project = tmp_path / "project"
    for part in ("images", "packer", "tests/hardening"):
        shutil.copytree(ROOT / part, project / part)
    (project / "tests" / "__init__.py").write_text("")
    definition = project / "images" / "web-bookworm.yaml"
    definition.write_text(definition.read_text() + "targets:\n  local:\n    build: vm\n")
    result = subprocess.run(
        [INVOKE, "bake", "--image", "web-bookworm"],
        cwd=ROOT,
        env={**os.environ, "BAKEHOUSE_STATE_DIR": str(state), "BAKEHOUSE_ROOT": str(project)},
        capture_output=True,
        text=True,
        timeout=3000,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "packer build (qemu)" in result.stderr
    records = sorted(
        (state / "catalogue" / "local" / "images" / "web-bookworm").glob("*/record.json")
    )
    record = json.loads(records[-1].read_text())
    assert record["state"] == "published" and record["verify"]["ok"]
    assert record["verify"]["summary"]["failed"] == record["verify"]["summary"]["error"] == 0
    built = json.loads((records[-1].parent / "packer-manifest.json").read_text())["builds"]
    assert [b["builder_type"] for b in built] == ["qemu"]
