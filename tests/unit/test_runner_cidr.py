"""--runner-cidr opens SSH on the build and verify instances: it is one address unless
--wide-runner-cidr says otherwise, never a slice of the Internet, and it is checked on every
command that takes it (verify too), before any AWS call."""

from __future__ import annotations

import pytest

from bakehouse.errors import EXIT_USAGE
from tests.conftest import run_cli


@pytest.mark.parametrize("task", ["bake", "verify", "deploy", "nightly"])
@pytest.mark.parametrize(
    ("cidr", "wide", "message"),
    [
        ("0.0.0.0/0", True, "much of the Internet"),
        ("::/0", True, "much of the Internet"),
        ("10.0.0.0/7", True, "much of the Internet"),
        ("10.0.0.0/12", True, "much of the Internet"),
        ("203.0.113.0/24", False, "holds 256 addresses, not one runner"),
        ("2001:db8::/64", False, "not one runner"),
        ("203.0.113.7", False, None),  # one address: accepted (fails later, on no credentials)
        ("203.0.113.0/24", True, None),
        ("203.0.113.7/33", False, "is not an address range"),
        ("203.0.113.7/24", True, "is not an address range"),  # host bits set
    ],
)
def test_runner_cidr(task: str, cidr: str, wide: bool, message: str | None, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    argv = [task, "--target", "aws", "--runner-cidr", cidr, *(["--wide-runner-cidr"] * wide)]
    if task != "nightly":
        argv += ["--image", "web"]
    if task == "nightly":
        argv += ["--dry-run"]
    code, _, err = run_cli(*argv)
    if message is None:
        assert "--runner-cidr" not in err, err
    else:
        assert code == EXIT_USAGE and message in err, err
