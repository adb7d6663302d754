"""Nothing from the build ships: host keys, build credentials, private keys, cloud credentials,
shell history, machine identity, build-time logs and temporary files."""

from __future__ import annotations

from typing import Any

import pytest

from tests.hardening.controls import Control, ids
from tests.hardening.facts import FactError, Facts

BH = "bakehouse: no secrets baked in"


def _image_only(context: dict[str, Any]) -> None:
    if context.get("standalone"):
        pytest.skip("checks how the image was built: needs the bakehouse context")


@pytest.mark.parametrize(
    "control",
    [
        Control(
            "bh-sec-01",
            "SSH host keys were made on this boot, not baked in",
            BH,
            (),
        ),
    ],
    ids=ids,
)
def test_host_keys_generated_at_boot(
    facts: Facts, context: dict[str, Any], control: Control
) -> None:
    _image_only(context)
    unit = facts.unit("bakehouse-ssh-hostkeys.service")
    assert unit.get("ConditionResult") == "yes", (
        "host keys already existed at boot, so they were baked into the image"
    )
    assert unit.get("ExecMainStatus") == "0", unit


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-sec-02", "The image had an empty machine-id", BH, ()),
    ],
    ids=ids,
)
def test_machine_id_was_empty(facts: Facts, context: dict[str, Any], control: Control) -> None:
    _image_only(context)
    assert "initializing machine id" in facts.journal_first_boot.lower(), (
        "systemd found a machine-id at boot: the image carries one"
    )


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-sec-03", "root has no authorized keys", BH, ("/root/.ssh/authorized_keys",)),
    ],
    ids=ids,
)
def test_root_no_authorized_keys(facts: Facts, control: Control) -> None:
    assert facts.files.get(control.args[0], "").strip() == ""


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-sec-04", "The build user holds only this verification's key", BH, ()),
    ],
    ids=ids,
)
def test_build_user_keys(facts: Facts, context: dict[str, Any], control: Control) -> None:
    _image_only(context)
    keys = [
        line.split()[1]
        for line in facts.files.get("/home/admin/.ssh/authorized_keys", "").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    allowed = context.get("verify_key", "").split()
    allowed_blob = allowed[1] if len(allowed) > 1 else None
    assert [k for k in keys if k != allowed_blob] == [], "keys other than the verify key"


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-sec-05", "No private keys outside system locations", BH, ("keyfile",)),
        Control("bh-sec-06", "No cloud credentials", BH, ("cloudcreds",)),
        Control("bh-sec-07", "No shell or tool history", BH, ("history",)),
    ],
    ids=ids,
)
def test_scan_secrets(facts: Facts, control: Control) -> None:
    found = facts.scans.get(control.args[0], [])
    assert found == [], f"found: {found[:10]}"


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-sec-08", "No apt indexes from the build", BH, ()),
    ],
    ids=ids,
)
def test_no_apt_lists(facts: Facts, context: dict[str, Any], control: Control) -> None:
    _image_only(context)
    # an empty folder is the right answer: the closing line proves the listing ran
    names = facts.must("apt lists", "ls -A /var/lib/apt/lists/ && echo '-- listed'").split("\n")
    if "-- listed" not in names:
        raise FactError("apt lists: the listing did not finish")
    indexes = [n for n in names if "_Packages" in n]
    assert indexes == [], f"{len(indexes)} package index files"


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-sec-09", "Nothing left in the image's /tmp and /var/tmp", BH, ()),
    ],
    ids=ids,
)
def test_no_build_tmp(facts: Facts, context: dict[str, Any], control: Control) -> None:
    _image_only(context)
    # /tmp is a tmpfs at run time: look underneath it through a bind mount of /; /var/tmp is
    # its own filesystem. The listing counts only when the bind mount worked and ls read both
    # folders: it ends with "rc 0"; a failed mount or read errors the control, never passes it
    out = facts.must(
        "tmp underneath",
        'd=$(mktemp -d -p /run) && mount --bind / "$d" && '
        '{ ls -A "$d/tmp" /var/tmp; rc=$?; umount "$d"; rmdir "$d"; echo "rc $rc"; }',
    )
    lines = out.splitlines()
    if not lines or lines[-1] != "rc 0":
        raise FactError(f"tmp underneath: the bind mount or the listing failed ({lines[-1:]})")
    left = [
        line
        for line in lines[:-1]
        if line
        and not line.endswith(":")
        and not line.startswith("systemd-private-")
        and line != "lost+found"  # the filesystem's own
    ]
    assert left == [], f"left over: {left}"


@pytest.mark.parametrize(
    "control",
    [
        Control("bh-sec-10", "No journal from the build", BH, ()),
    ],
    ids=ids,
)
def test_journal_only_this_boot(facts: Facts, context: dict[str, Any], control: Control) -> None:
    _image_only(context)
    # a journal folder of any other machine id is the build's (bh-sec-02 makes the id new, so
    # journalctl, which reads the current id's folder, would never show it)
    folders = facts.must(
        "journal folders",
        "if [ -d /var/log/journal ]; then ls -A /var/log/journal; fi; cat /etc/machine-id",
    ).split()
    if not folders:
        raise FactError("journal folders: no machine id read")
    *journals, machine_id = folders
    assert [j for j in journals if j != machine_id] == [], f"other journals: {journals}"
    listed = facts.must("journal boots", "journalctl --list-boots --no-pager")
    boots = [
        line for line in listed.splitlines() if line.strip() and not line.lstrip().startswith("IDX")
    ]
    # this boot is always in the journal: a listing without it did not read the journal
    if not boots:
        raise FactError("journal boots: journalctl listed no boot, not even this one")
    assert len(boots) == 1, f"{len(boots)} boots in the journal"
