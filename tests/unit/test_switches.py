"""The test suite's switches do nothing outside it: the AWS endpoint override is honoured on
loopback only (elsewhere it is an error, never a silent redirect of signed calls), Packer is
the one on PATH, and the communicator override needs that local endpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from bakehouse import packer
from bakehouse.aws.session import ENDPOINT_ENV, Aws
from bakehouse.errors import AwsError


@pytest.mark.parametrize(
    "url",
    [
        "https://aws.attacker.example",
        "http://203.0.113.5:5000",
        "http://127.0.0.1.attacker.example:5000",
        "http://localhost@attacker.example/",
    ],
)
def test_a_remote_endpoint_is_refused(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENDPOINT_ENV, url)
    with pytest.raises(AwsError, match="is not a local test endpoint"):
        Aws()


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:5000", "https://localhost:4566", "http://[::1]:1"]
)
def test_a_loopback_endpoint_is_the_test_suites(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENDPOINT_ENV, url)
    assert Aws().endpoint == url


def test_packer_is_the_one_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAKEHOUSE_PACKER", "/tmp/evil-packer")
    assert packer.binary() == "packer"


def test_the_communicator_switch_needs_the_local_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bakehouse.project import Project
    from bakehouse.targets.aws import COMMUNICATOR_ENV, AwsTarget
    from bakehouse.targets.base import TargetOptions
    from tests.conftest import ROOT

    monkeypatch.delenv(ENDPOINT_ENV, raising=False)
    monkeypatch.setenv(COMMUNICATOR_ENV, "none")  # would skip every provisioner
    from bakehouse.runs import run_dir

    target = AwsTarget(Project(ROOT), TargetOptions(runner_cidr="192.0.2.1/32"))
    with run_dir(tmp_path, "web", "test") as run:
        variables = target.packer_variables(run, tmp_path, "fp", "abc")
    assert variables.get("communicator", "ssh") == "ssh"
