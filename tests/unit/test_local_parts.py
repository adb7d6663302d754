"""Pure parts of the local target: argv builders, content keys, Packer progress, JUnit, SBOM."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from bakehouse import packer, sbom, suite, vm
from bakehouse.progress import Progress
from bakehouse.spec import Catalog
from bakehouse.targets.local import base as base_stage
from tests.conftest import ROOT, TODAY


def local_base():  # type: ignore[no-untyped-def]
    return Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("web", TODAY).base.local


def test_base_key_follows_content(tmp_path: Path) -> None:
    customize = tmp_path / "customize.sh"
    customize.write_text("echo 1\n")
    lb = local_base()
    key = base_stage.content_key(base_stage.inputs(lb, customize, "mmdebstrap 1.3.5"))
    assert key == base_stage.content_key(base_stage.inputs(lb, customize, "mmdebstrap 1.3.5"))
    changed = [
        base_stage.inputs(
            dataclasses.replace(lb, packages=("curl",)), customize, "mmdebstrap 1.3.5"
        ),
        base_stage.inputs(lb, customize, "mmdebstrap 1.4.0"),
        base_stage.inputs(
            dataclasses.replace(lb, include_updates=False), customize, "mmdebstrap 1.3.5"
        ),
    ]
    customize.write_text("echo 2\n")
    changed.append(base_stage.inputs(lb, customize, "mmdebstrap 1.3.5"))
    assert len({key, *(base_stage.content_key(c) for c in changed)}) == 5


def test_stale_base_installs_from_release_only_but_keeps_all_sources() -> None:
    lb = dataclasses.replace(local_base(), include_updates=False)
    argv = base_stage.mmdebstrap_argv(lb, Path("/r"), Path("/c.sh"))
    suite = lb.suite
    assert argv[-2:] == ["/r", f"deb http://deb.debian.org/debian {suite} main"]
    assert len(base_stage.sources(lb)) == 3
    assert any(a.startswith("--customize-hook=sh /c.sh ") for a in argv)


def test_each_release_base_has_its_own_kernel_packages_and_usr_layout() -> None:
    catalog = Catalog(ROOT / "images", ROOT / "packer" / "scripts")
    jammy = catalog.load("web-jammy", TODAY).base.local
    noble = catalog.load("web-noble", TODAY).base.local
    # 22.04's systemd carries resolved; its aide-common wants a mail transport with no daemon
    assert "systemd-resolved" not in base_stage.packages(jammy)
    assert "systemd-resolved" in base_stage.packages(noble)
    assert {"msmtp-mta", "linux-image-virtual"} <= set(base_stage.packages(jammy))
    assert "msmtp-mta" not in base_stage.packages(noble)
    # 22.04 has no usr-is-merged package: /usr is merged before anything is unpacked
    hooks = [
        a
        for a in base_stage.mmdebstrap_argv(jammy, Path("/r"), Path("/c.sh"))
        if a.startswith("--setup-hook")
    ]
    assert hooks == [f"--setup-hook={base_stage.MERGE_USR}"]
    assert not [
        a for a in base_stage.mmdebstrap_argv(noble, Path("/r"), Path("/c.sh")) if "setup-hook" in a
    ]
    key = base_stage.inputs(jammy, ROOT / "packer" / "base" / "customize.sh", "mmdebstrap 1")
    assert key["merge_usr"] is True


def test_qemu_argv_snapshot_and_loopback_only(tmp_path: Path) -> None:
    cfg = vm.VmConfig(
        name="v,1",
        disk=tmp_path / "a,b.qcow2",
        kernel=Path("/k"),
        initrd=Path("/i"),
        append="root=/dev/vda",
        serial_log=tmp_path / "s.log",
        ssh_port=2222,
    )
    argv = vm.qemu_argv(cfg)
    drive = argv[argv.index("-drive") + 1]
    assert "a,,b.qcow2" in drive and "snapshot=on" in drive
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in argv[argv.index("-netdev") + 1]
    assert argv[argv.index("-accel") + 1].startswith("tcg")
    kvm = vm.qemu_argv(dataclasses.replace(cfg, accelerator="kvm", snapshot=False))
    assert kvm[kvm.index("-cpu") + 1] == "host" and "snapshot=on" not in " ".join(kvm)


def test_packer_watch_times_phases() -> None:
    import io

    watch = packer.PackerWatch(Progress(stream=io.StringIO()))
    for line in [
        "==> web.qemu.image: Starting VM, booting disk image",
        "==> web.qemu.image: Connected to SSH!",
        "==> web.qemu.image: Provisioning with shell script: /x/packer/scripts/patch.sh",
        "==> web.qemu.image: Gracefully halting virtual machine...",
        "==> web.qemu.image: Converting hard drive...",
        "Build 'web.qemu.image' errored after 1 second: boom",
    ]:
        watch(line)
    timings = watch.finish()
    assert list(timings) == [
        "prepare",
        "boot",
        "provision",
        "provision:patch.sh",
        "shutdown",
        "convert",
    ]
    assert watch.errors and "errored" in watch.errors[0]
    # the local chroot build's steps (shell-local) are timed the same way
    chroot = packer.PackerWatch(Progress(stream=io.StringIO()))
    for line in [
        "==> web.null.image: Running local shell script: /x/packer/scripts/patch.sh",
        "==> web.null.image: Running local shell script: /x/packer/scripts/harden.sh",
    ]:
        chroot(line)
    assert list(chroot.finish()) == ["prepare", "provision:patch.sh", "provision:harden.sh"]


JUNIT = """<?xml version="1.0"?><testsuites><testsuite name="pytest">
<testcase classname="t" name="test_a[paramiko://vm-sshd-06]"><properties>
<property name="control" value="sshd-06"/><property name="title" value="No root login"/>
<property name="reference" value="dev-sec"/></properties></testcase>
<testcase classname="t" name="test_b[x-sshd-48]"><properties>
<property name="control" value="sshd-48"/></properties>
<skipped type="pytest.xfail" message="waived: legacy clients"/></testcase>
<testcase classname="t" name="test_c[x-os-06]"><properties>
<property name="control" value="os-06"/></properties>
<failure message="AssertionError: suid">trace</failure></testcase>
<testcase classname="t" name="test_d[x-bh-web-01]"><skipped message="role check"/></testcase>
</testsuite></testsuites>"""


def test_parse_junit(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    controls = suite.parse_junit(path)
    assert [(c["id"], c["outcome"]) for c in controls] == [
        ("sshd-06", "passed"),
        ("sshd-48", "waived"),
        ("os-06", "failed"),
        ("test_d[x-bh-web-01]", "skipped"),
    ]
    assert controls[0]["title"] == "No root login"


def test_sbom_lists_every_package_with_a_purl() -> None:
    manifest = {
        "kernel": "6.1.0-1-cloud-amd64",
        "packages": [
            {
                "name": "libssl3",
                "version": "3.0.22-1~deb12u2",
                "architecture": "amd64",
                "source": "openssl",
                "source_version": "3.0.22-1~deb12u2",
            },
            {
                "name": "bash",
                "version": "5.2.15-2+b7",
                "architecture": "amd64",
                "source": "bash",
                "source_version": "5.2.15-2",
            },
        ],
    }
    text = sbom.build(manifest, "web", "20260101.000000", "debian", "debian-12")
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(text) is None
    doc = json.loads(text)
    assert doc["bomFormat"] == "CycloneDX"
    assert [c["name"] for c in doc["components"]] == ["bash", "libssl3"]
    (root,) = [d for d in doc["dependencies"] if d["ref"] == "image:web@20260101.000000"]
    assert root["dependsOn"] == [c["bom-ref"] for c in doc["components"]]
    purls = sorted(c["purl"] for c in doc["components"])
    assert purls[1].startswith("pkg:deb/debian/libssl3@3.0.22-1~deb12u2?arch=amd64")
    assert "upstream=openssl" in purls[1] and "distro=debian-12" in purls[1]
    ubuntu = json.loads(sbom.build(manifest, "web", "1", "ubuntu", "ubuntu-24.04"))
    assert sorted(c["purl"] for c in ubuntu["components"])[1].startswith("pkg:deb/ubuntu/libssl3@")
    assert doc["metadata"]["component"]["name"] == "bakehouse-web"


def test_base_key_follows_the_shared_scripts(tmp_path: Path) -> None:
    """customize.sh runs packer/scripts/hostkeys.sh: a change there rebuilds the base too."""
    customize, shared = base_stage.base_scripts(ROOT / "packer")
    assert customize.is_file() and [p.name for p in shared] == ["hostkeys.sh"]
    assert f"../scripts/{shared[0].name}" in customize.read_text()
    copy = tmp_path / "hostkeys.sh"
    copy.write_text(shared[0].read_text())
    lb = local_base()
    before = base_stage.content_key(base_stage.inputs(lb, customize, "m", (copy,)))
    copy.write_text(copy.read_text() + "\n")
    assert base_stage.content_key(base_stage.inputs(lb, customize, "m", (copy,))) != before
