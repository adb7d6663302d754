"""The real image definitions load; extends, defaults and additive lists compose as documented."""

from __future__ import annotations

import dataclasses

import pytest

from bakehouse.spec import Catalog, ImageSpec
from tests.conftest import ROOT, TODAY


@pytest.fixture
def catalog() -> Catalog:
    return Catalog(ROOT / "images", ROOT / "packer" / "scripts")


def test_project_images(catalog: Catalog) -> None:
    names = catalog.names()
    assert {"base", "web", "worker"} <= set(names)
    assert "_defaults" not in names
    for spec in catalog.load_all(TODAY):
        assert isinstance(spec, ImageSpec)
        assert spec.files[0] == "images/_defaults.yaml"


def test_web_extends_base_and_defaults(catalog: Catalog) -> None:
    web = catalog.load("web", TODAY)
    assert web.files == ("images/_defaults.yaml", "images/base.yaml", "images/web.yaml")
    assert web.packages == ("nginx-light",)
    assert [s.script for s in web.provision] == ["web.sh"]
    assert web.hardening.role_checks == ("nginx",)
    assert web.publish.channels == ("latest", "stable")
    assert dict(web.roll.selector) == {"bakehouse:role": "web"}
    # from _defaults
    assert web.base.aws.ssm_parameter == "/aws/service/debian/release/13/latest/amd64"
    assert web.targets.local.disk_size == 4096 and web.targets.local.memory == 1024


def test_worker_pins_ami_owner(catalog: Catalog) -> None:
    worker = catalog.load("worker", TODAY)
    assert worker.base.aws.ssm_parameter is None
    assert worker.base.aws.filter is not None
    assert worker.base.aws.filter.owners == ("136693071363",)
    assert dict(worker.provision[0].env) == {"WORKER_USER": "worker"}


def test_specs_are_frozen(catalog: Catalog) -> None:
    web = catalog.load("web", TODAY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        web.name = "other"  # type: ignore[misc]


def test_lists_add_up_along_extends(tmp_images) -> None:  # type: ignore[no-untyped-def]
    tmp_images.write(
        "base",
        """\
        description: base
        packages: [curl]
        hardening:
          waivers:
            - {id: os-10, reason: a reason long enough, expires: 2027-01-01}
        publish: {channels: [latest]}
    """,
    )
    tmp_images.write(
        "web",
        """\
        description: web
        extends: base
        packages: [nginx-light]
        hardening:
          waivers:
            - {id: sshd-48, reason: another long reason, expires: 2027-01-01}
        publish: {channels: [stable]}
    """,
    )
    web = tmp_images.load("web")
    assert web.packages == ("curl", "nginx-light")  # additive
    assert [w.id for w in web.hardening.waivers] == ["os-10", "sshd-48"]  # additive
    assert web.publish.channels == ("stable",)  # replaced


def test_error_lines_follow_additive_merge(tmp_images) -> None:  # type: ignore[no-untyped-def]
    from bakehouse.errors import SpecError

    tmp_images.write("base", "description: base\npackages: [curl, wget]\n")
    tmp_images.write("web", "description: web\nextends: base\npackages:\n  - ok1\n  - BAD\n")
    with pytest.raises(SpecError) as caught:
        tmp_images.load("web")
    assert caught.value.message.startswith("images/web.yaml:5: packages[3]:")


def test_name_is_not_inherited(tmp_images) -> None:  # type: ignore[no-untyped-def]
    tmp_images.write("base", "name: base\ndescription: base\n")
    tmp_images.write("web", "description: web\nextends: base\n")
    assert tmp_images.load("web").name == "web"


def test_multiple_parents_apply_in_order(tmp_images) -> None:  # type: ignore[no-untyped-def]
    tmp_images.write("a", "description: a\nroll: {warmup: 10}\npackages: [aa]\n")
    tmp_images.write("b", "description: b\nroll: {warmup: 20, bake_time: 5}\npackages: [bb]\n")
    tmp_images.write("c", "description: c\nextends: [a, b]\n")
    c = tmp_images.load("c")
    assert c.roll.warmup == 20 and c.roll.bake_time == 5
    assert c.packages == ("aa", "bb")


def test_to_dict_is_json_ready(catalog: Catalog) -> None:
    import json

    data = catalog.load("web", TODAY).to_dict()
    text = json.dumps(data)
    assert '"selector": {"bakehouse:role": "web"}' in text
    assert data["targets"]["aws"]["regions"] == ["eu-west-1"]
