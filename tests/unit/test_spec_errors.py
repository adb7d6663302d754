"""Malformed image definitions: each gives one exact `file:line: key: message` and a hint."""

from __future__ import annotations

import pytest

from bakehouse.errors import EXIT_USAGE, SpecError, SpecErrors

GOOD = "description: A web image.\n"

# (id, files {name: text}, image to load, exact message, a piece of the hint or None)
CASES = [
    (
        "unknown-top-level-key",
        {"web": "description: x\ndescripton: typo\n"},
        "web",
        "images/web.yaml:2: descripton: unknown key",
        "did you mean 'description'?",
    ),
    (
        "unknown-nested-key",
        {"web": "description: x\nroll:\n  min_healty: 90\n"},
        "web",
        "images/web.yaml:3: roll.min_healty: unknown key",
        "did you mean 'min_healthy'?",
    ),
    (
        "percentage-out-of-range",
        {"web": "description: x\nroll:\n  min_healthy: 120\n"},
        "web",
        "images/web.yaml:3: roll.min_healthy: must be 0–100% (got 120)",
        None,
    ),
    (
        "wrong-type-int",
        {"web": "description: x\ntargets:\n  local:\n    cpus: two\n"},
        "web",
        "images/web.yaml:4: targets.local.cpus: must be a whole number (got text ('two'))",
        "e.g. 1",
    ),
    (
        "bad-enum",
        {"web": "description: x\npatch:\n  policy: everything\n"},
        "web",
        "images/web.yaml:3: patch.policy: must be one of all, security (got text ('everything'))",
        None,
    ),
    (
        "enum-typo-hint",
        {"web": "description: x\ntargets:\n  local:\n    accelerator: kvn\n"},
        "web",
        "images/web.yaml:4: targets.local.accelerator: must be one of auto, kvm, tcg "
        "(got text ('kvn'))",
        "did you mean 'kvm'?",
    ),
    (
        "missing-required",
        {"web": "packages: [nginx]\n"},
        "web",
        "images/web.yaml:1: description: missing required key",
        "one line saying what the image is for",
    ),
    (
        "aws-filter-without-owners",
        {
            "web": "description: x\nbase:\n  aws:\n    ssm_parameter: null\n    filter:\n"
            "      name: debian-12-amd64-*\n"
        },
        "web",
        "images/web.yaml:5: base.aws.filter.owners: missing required key",
        "look-alike public AMI",
    ),
    (
        "aws-filter-empty-owners",
        {
            "web": "description: x\nbase:\n  aws:\n    ssm_parameter: null\n    filter:\n"
            "      name: debian-12-amd64-*\n      owners: []\n"
        },
        "web",
        "images/web.yaml:7: base.aws.filter.owners: must have at least 1 item",
        None,
    ),
    (
        "aws-both-ssm-and-filter",
        {
            "web": "description: x\nbase:\n  aws:\n    filter:\n      name: debian-*\n"
            "      owners: ['136693071363']\n"
        },
        "web",
        "images/web.yaml:3: base.aws: set one of ssm_parameter or filter, not both",
        "SSM public parameter",
    ),
    (
        "expired-waiver",
        {
            "web": "description: x\nhardening:\n  waivers:\n    - id: sshd-48\n"
            "      reason: legacy clients need this cipher\n      expires: 2026-01-01\n"
        },
        "web",
        "images/web.yaml:6: hardening.waivers[0].expires: waiver sshd-48 expired on 2026-01-01",
        "renew the waiver",
    ),
    (
        "impossible-date",
        {
            "web": "description: x\nhardening:\n  waivers:\n    - id: sshd-48\n"
            "      reason: legacy clients need this cipher\n      expires: 2027-02-30\n"
        },
        "web",
        "images/web.yaml:6: hardening.waivers[0].expires: cannot read value '2027-02-30' "
        "(ValueError)",
        "quote it",
    ),
    (
        "waiver-without-reason",
        {
            "web": "description: x\nhardening:\n  waivers:\n    - id: sshd-48\n"
            "      expires: 2027-01-01\n"
        },
        "web",
        "images/web.yaml:4: hardening.waivers[0].reason: missing required key",
        "for the auditor",
    ),
    (
        "extends-cycle",
        {"a": "description: x\nextends: b\n", "b": "description: y\nextends: a\n"},
        "a",
        "images/b.yaml:2: extends: cycle in extends: a → b → a",
        "cannot extend itself",
    ),
    (
        "extends-self",
        {"a": "description: x\nextends: a\n"},
        "a",
        "images/a.yaml:2: extends: cycle in extends: a → a",
        None,
    ),
    (
        "extends-unknown",
        {"web": "description: x\nextends: nope\n"},
        "web",
        "images/web.yaml:2: extends: unknown image 'nope'",
        "known images: web",
    ),
    (
        "duplicate-key",
        {"web": "description: x\npackages: [a1]\npackages: [b1]\n"},
        "web",
        "images/web.yaml:3: packages: duplicate key (first set on line 2)",
        None,
    ),
    (
        "invalid-yaml",
        {"web": "description: x\nroll:\n  min_healthy: 90\n bad: indent\n"},
        "web",
        "images/web.yaml:4: invalid YAML: *",
        "indentation",
    ),
    (
        "top-level-list",
        {"web": "- description: x\n"},
        "web",
        "images/web.yaml:1: the top level must be a mapping of keys to values",
        None,
    ),
    (
        "checkpoints-not-ascending",
        {"web": "description: x\nroll:\n  checkpoints: [50, 20]\n"},
        "web",
        "images/web.yaml:3: roll.checkpoints[1]: checkpoints must be in ascending order",
        None,
    ),
    (
        "healthy-spread",
        {"web": "description: x\nroll:\n  min_healthy: 0\n  max_healthy: 150\n"},
        "web",
        "images/web.yaml:4: roll.max_healthy: must be at most 100 above min_healthy "
        "(got 150 and 0)",
        None,
    ),
    (
        "bad-package-name",
        {"web": "description: x\npackages:\n  - nginx\n  - Nginx Light\n"},
        "web",
        "images/web.yaml:4: packages[1]: must be a Debian package name (got 'Nginx Light')",
        "e.g. nginx",
    ),
    (
        "missing-script",
        {"web": "description: x\nprovision:\n  - script: nope.sh\n"},
        "web",
        "images/web.yaml:3: provision[0].script: no script nope.sh in packer/scripts/",
        None,
    ),
    (
        "account-as-number",
        {
            "web": "description: x\ntargets:\n  aws:\n    share:\n      accounts:\n"
            "        - 123456789012\n"
        },
        "web",
        "images/web.yaml:6: targets.aws.share.accounts[0]: must be a 12-digit account id "
        "(got a number (123456789012))",
        "quote account ids",
    ),
    (
        "bad-region",
        {"web": "description: x\ntargets:\n  aws:\n    regions: [eu-west-1, europe]\n"},
        "web",
        "images/web.yaml:4: targets.aws.regions[1]: must be an AWS region (got 'europe')",
        "eu-west-1",
    ),
    (
        "bad-size",
        {"web": "description: x\ntargets:\n  local:\n    disk_size: lots\n"},
        "web",
        "images/web.yaml:4: targets.local.disk_size: must be a size like 4G or 512M "
        "(got text ('lots'))",
        None,
    ),
    (
        "kms-arn-multi-region",
        {
            "web": "description: x\ntargets:\n  aws:\n    regions: [eu-west-1, us-east-1]\n"
            "    kms_key_id: arn:aws:kms:eu-west-1:123456789012:key/abc\n"
        },
        "web",
        "images/web.yaml:5: targets.aws.kms_key_id: a key ARN belongs to one region, "
        "but the AMI is copied to 2 regions",
        "alias",
    ),
    (
        "ssm-verify-without-profile",
        {"web": "description: x\ntargets:\n  aws:\n    verify_via: ssm\n"},
        "web",
        "images/web.yaml:4: targets.aws.verify_via: verification over SSM needs an instance "
        "profile for the verification instance",
        "AmazonSSMManagedInstanceCore",
    ),
    (
        "instance-profile-not-a-name",
        {"web": "description: x\ntargets:\n  aws:\n    instance_profile: 'my profile'\n"},
        "web",
        "images/web.yaml:4: targets.aws.instance_profile: must be an IAM instance profile name "
        "or ARN (got 'my profile')",
        None,
    ),
    (
        "name-mismatch",
        {"web": "name: webserver\ndescription: x\n"},
        "web",
        "images/web.yaml:1: name: must match the file name ('web', got 'webserver')",
        "rename the file",
    ),
    (
        "quoted-boolean",
        {"web": "description: x\ntargets:\n  aws:\n    share:\n      public: 'yes'\n"},
        "web",
        "images/web.yaml:5: targets.aws.share.public: must be true or false (got text ('yes'))",
        None,
    ),
    (
        "duplicate-channel",
        {"web": "description: x\npublish:\n  channels: [latest, stable, latest]\n"},
        "web",
        "images/web.yaml:3: publish.channels[2]: duplicate item 'latest'",
        None,
    ),
    (
        "error-in-parent-names-parent",
        {"base": "description: x\nroll:\n  warmup: -5\n", "web": "description: y\nextends: base\n"},
        "web",
        "images/base.yaml:3: roll.warmup: must be 0–86400 seconds (got -5)",
        None,
    ),
    (
        "section-wrong-type",
        {"web": "description: x\nroll: fast\n"},
        "web",
        "images/web.yaml:2: roll: must be a mapping (got text ('fast'))",
        "expected keys",
    ),
    (
        "yaml-merge-key",
        {"web": "description: x\nroll:\n  <<: {warmup: 5}\n"},
        "web",
        "images/web.yaml:3: roll: YAML merge keys (<<) are not supported",
        "extends",
    ),
]


@pytest.mark.parametrize(
    ("files", "image", "message", "hint"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_malformed_definition(tmp_images, files, image, message, hint):  # type: ignore[no-untyped-def]
    for name, text in files.items():
        tmp_images.write(name, text)
    with pytest.raises(SpecError) as caught:
        tmp_images.load(image)
    err = caught.value
    if message.endswith("*"):  # the parser's own wording differs between libyaml and PyYAML
        assert err.message.startswith(message[:-1])
    else:
        assert err.message == message
    assert err.exit_code == EXIT_USAGE
    if hint is not None:
        assert err.hint is not None and hint in err.hint


def test_at_least_twenty_distinct_cases() -> None:
    assert len({c[3] for c in CASES}) >= 20


def test_good_definition_loads(tmp_images) -> None:  # type: ignore[no-untyped-def]
    tmp_images.write("web", GOOD)
    spec = tmp_images.load("web")
    assert spec.name == "web"
    assert spec.roll.min_healthy == 90


def test_every_problem_of_a_definition_in_one_run(tmp_images) -> None:  # type: ignore[no-untyped-def]
    tmp_images.write(
        "web",
        "description: x\n"
        "descripton: typo\n"  # an unknown key
        "roll:\n"
        "  min_healthy: 120\n"  # a bad value
        "targets:\n"
        "  local:\n"
        "    cpus: two\n"  # a wrong type, deeper down
        "packages: [nginx, Bad Name]\n",  # a bad list item
    )
    with pytest.raises(SpecErrors) as caught:
        tmp_images.load("web")
    err = caught.value
    assert [e.message for e in err.errors] == [  # in the order the file reads
        "images/web.yaml:2: descripton: unknown key",
        "images/web.yaml:4: roll.min_healthy: must be 0–100% (got 120)",
        "images/web.yaml:7: targets.local.cpus: must be a whole number (got text ('two'))",
        "images/web.yaml:8: packages[1]: " + err.errors[3].detail,
    ]
    assert err.exit_code == EXIT_USAGE and (err.file, err.line, err.key) == (
        "images/web.yaml",
        2,
        "descripton",
    )
    shown = err.render().splitlines()
    assert [line.split(": ")[1] for line in shown if line.startswith("error: ")] == [
        "images/web.yaml:2",
        "images/web.yaml:4",
        "images/web.yaml:7",
        "images/web.yaml:8",
    ]
    assert "hint: did you mean 'description'?" in shown


def test_one_problem_is_still_one_error(tmp_images) -> None:  # type: ignore[no-untyped-def]
    tmp_images.write("web", "description: x\nroll:\n  min_healthy: 120\n")
    with pytest.raises(SpecError) as caught:
        tmp_images.load("web")
    assert (
        caught.value.render()
        == "error: images/web.yaml:3: roll.min_healthy: must be 0–100% (got 120)"
    )


def test_every_kind_of_problem_is_collected(tmp_images) -> None:  # type: ignore[no-untyped-def]
    """A missing required key, two bad list items, and a check made after the parse."""
    tmp_images.write(
        "web", "packages: [Bad Name, also bad]\ntargets:\n  aws:\n    instance_type: t4g.small\n"
    )
    with pytest.raises(SpecErrors) as caught:
        tmp_images.load("web")
    keys = [e.key for e in caught.value.errors]
    assert keys == ["description", "packages[0]", "packages[1]"]
    assert caught.value.message.endswith("(and 2 more)")
    tmp_images.write(
        "web", "description: x\ntargets:\n  aws:\n    instance_type: t4g.small\nname: other\n"
    )
    with pytest.raises(SpecErrors) as caught:
        tmp_images.load("web")
    assert [e.key for e in caught.value.errors] == ["targets.aws.instance_type", "name"]
