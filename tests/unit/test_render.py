"""Rendering: golden files pin the output, Packer 1.6.6 accepts it, no value can break out."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import pytest

from bakehouse import layout, packer, render
from bakehouse.errors import RenderError, UsageError
from bakehouse.render import PackerVersion
from bakehouse.spec import Catalog, ImageSpec, Step
from tests.conftest import ROOT, TODAY

GOLDEN = Path(__file__).parent / "golden"
PACKER_DIR = ROOT / "packer"
SCRIPTS = PACKER_DIR / "scripts"
V166 = PackerVersion(1, 6, 6)
IMAGES = ["base", "web", "worker"]
TARGETS = ["local", "aws"]


def load(name: str) -> ImageSpec:
    return Catalog(ROOT / "images", SCRIPTS).load(name, TODAY)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("image", IMAGES)
def test_golden(image: str, target: str) -> None:
    text = render.render(load(image), target, PACKER_DIR, V166)
    golden = GOLDEN / f"{image}.{target}.pkr.hcl"
    if os.environ.get("BAKEHOUSE_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text(), (
        f"rendered output changed; if intended, rerun with BAKEHOUSE_UPDATE_GOLDEN=1 and review "
        f"the diff of {golden.name}"
    )


def test_packer_block_is_version_aware() -> None:
    web = load("web")
    old = render.render(web, "local", PACKER_DIR, V166)
    new = render.render(web, "local", PACKER_DIR, PackerVersion(1, 9, 4))
    assert "required_plugins" not in old and 'required_version = ">= 1.6.6"' in old
    assert "required_plugins" in new and 'source  = "github.com/hashicorp/qemu"' in new
    aws_new = render.render(web, "aws", PACKER_DIR, PackerVersion(1, 9, 4))
    assert "required_plugins" not in aws_new  # the null builder is part of Packer itself


def test_the_aws_template_only_provisions() -> None:
    """Everything AWS is bakehouse's (src/bakehouse/aws/build.py): the template names no
    instance, volume, key, region or tag, so Packer makes no AWS call; sharing happens at
    publish, after verification."""
    text = render.render(load("worker"), "aws", PACKER_DIR, V166)
    assert re.search(r'source "null" "image"', text)
    body = text.split('source "null"', 1)[1]
    for word in ("amazon-ebs", "ami_", "region", "tags", "kms", "encrypt", "security_group"):
        assert word not in body, word


def vm_build(spec: ImageSpec) -> ImageSpec:
    local = dataclasses.replace(spec.targets.local, build="vm")
    return dataclasses.replace(spec, targets=dataclasses.replace(spec.targets, local=local))


def test_golden_vm_build() -> None:
    """The local target's other build: Packer's qemu builder, the scripts in a VM."""
    text = render.render(vm_build(load("web")), "local", PACKER_DIR, V166)
    golden = GOLDEN / "web.local-vm.pkr.hcl"
    if os.environ.get("BAKEHOUSE_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text()


def test_the_data_disk_is_part_of_the_local_image() -> None:
    """(On aws both volumes are the build instance's launch mappings, encrypted:
    tests/aws/test_aws_target.py::test_the_build_instance_request.) In a VM, filesystems.sh
    makes it, last: what it copies is what ships; the chroot build lays it out on the host
    after the last step instead (tests/unit/test_chroot_build.py), so no step may try."""
    spec = load("worker")
    local = render.render(vm_build(spec), "local", PACKER_DIR, V166)
    assert f'disk_additional_size = ["{spec.targets.local.data_disk_size}M"]' in local
    assert '"filesystems.sh"]' in local
    chroot = render.render(spec, "local", PACKER_DIR, V166)
    assert 'source "null" "image"' in chroot and "filesystems.sh" not in chroot
    assert '"cleanup.sh"]' in chroot
    layout_line = f"BAKEHOUSE_FILESYSTEMS={layout.env_value()}"
    assert layout_line in render.render(spec, "aws", PACKER_DIR, V166)
    assert layout_line in local


def test_only_the_package_steps_of_the_chroot_build_have_the_network() -> None:
    text = render.render(load("worker"), "local", PACKER_DIR, V166)
    by_script = {}
    for block in text.split('provisioner "shell-local"')[1:]:
        argv = re.search(r"concat\((\[[^]]*\])", block)[1]  # type: ignore[index]
        scripts = re.search(r"for s in (\[.*?\]) :", block)[1]  # type: ignore[index]
        for script in json.loads(scripts):
            by_script[script] = json.loads(argv)
    assert list(by_script) == [
        "patch.sh",
        "packages.sh",
        "worker.sh",
        "harden.sh",
        "manifest.sh",
        "hostkeys.sh",
        "cleanup.sh",
    ]
    for script, argv in by_script.items():
        assert argv[0] == "unshare" and {"--mount", "--pid", "--kill-child"} <= set(argv)
        assert ("--net" in argv) == (script not in ("patch.sh", "packages.sh")), script


def test_packer_version_parse() -> None:
    assert PackerVersion.parse("Packer v1.6.6\n") == V166
    assert PackerVersion.parse("1.10.0-dev") == PackerVersion(1, 10, 0)
    assert not V166.plugins and PackerVersion(1, 7, 0).plugins
    with pytest.raises(RenderError):
        PackerVersion.parse("garbage")


def test_unescaped_values_are_refused(tmp_path: Path) -> None:
    (tmp_path / "local.pkr.hcl.j2").write_text("x = {{ spec.name }}\n")
    render.environment.cache_clear()
    with pytest.raises(RenderError, match="unescaped value"):
        render.render(load("web"), "local", tmp_path, V166)


def test_unknown_target() -> None:
    with pytest.raises(UsageError, match="'gcp' is not a target"):
        render.render(load("web"), "gcp", PACKER_DIR, V166)


EVIL = 'x" }\n source "null" "pwn" { communicator = "none" } #${file("/etc/shadow")}%{ if 1 }'


def _evil(spec: ImageSpec, text: str, name: bool = True) -> ImageSpec:
    return dataclasses.replace(
        spec,
        name="web" + text if name else spec.name,
        description=text,
        packages=(text,),
        provision=(Step(script="web.sh", env=(("EVIL", text),)),),
    )


def _skeleton(text: str) -> str:
    return re.sub(r'"(?:[^"\\\n]|\\.)*"', '""', text)


@pytest.mark.parametrize("target", TARGETS)
def test_user_values_cannot_change_structure(target: str) -> None:
    spec = load("web")
    benign = render.render(_evil(spec, "plain"), target, PACKER_DIR, V166)
    evil = render.render(_evil(spec, EVIL), target, PACKER_DIR, V166)
    assert _skeleton(evil) == _skeleton(benign)
    assert 'source "null"' not in _skeleton(evil)


@pytest.mark.packer
@pytest.mark.parametrize("target", TARGETS)
def test_evil_render_passes_packer(tmp_path: Path, target: str) -> None:
    """Names are schema-checked, so AMI naming rules are not tested here: only the free-text
    values reach Packer with hostile content."""
    text = render.render(_evil(load("web"), EVIL, name=False), target, PACKER_DIR, V166)
    path = tmp_path / f"{target}.pkr.hcl"
    path.write_text(text)
    assert packer.validate(path, target, SCRIPTS) == []
