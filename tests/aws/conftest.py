"""A real moto server for the AWS tests, started by the suite on 127.0.0.1 with a free port
(with the few calls moto lacks added: moto_ext.py).

It is seeded (MOTO_AMIS_PATH) with Debian-like AMIs from Debian's owner account at different
dates, and a public look-alike from another account with a newer date, so "most recent" means
something and the whoAMI attack can be tested. Every test starts from a reset server.
"""

from __future__ import annotations

import functools
import json
import os
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DEBIAN_OWNER = "136693071363"
ATTACKER = "999988887777"
ACCOUNT = "123456789012"  # moto's own account id
REGIONS = ["eu-west-1", "eu-central-1"]
TLS: dict[str, str] = {}  # "ca": the CA the server's certificate is signed by, once it runs

SEED = [
    {
        "ami_id": "ami-0d0000000000000a1",
        "name": "debian-13-amd64-20260901-1000",
        "owner_id": DEBIAN_OWNER,
        "creation_date": "2026-09-01T10:00:00.000Z",
    },
    {
        "ami_id": "ami-0d0000000000000a2",
        "name": "debian-13-amd64-20261101-1100",
        "owner_id": DEBIAN_OWNER,
        "creation_date": "2026-11-01T11:00:00.000Z",
    },
    {
        "ami_id": "ami-0d0000000000000a3",
        "name": "debian-13-arm64-20261120-1100",
        "owner_id": DEBIAN_OWNER,
        "creation_date": "2026-11-20T11:00:00.000Z",
        "architecture": "arm64",
    },
    # the look-alike: same name pattern, public, newer, from someone else
    {
        "ami_id": "ami-0bad0000000000bad",
        "name": "debian-13-amd64-20261127-0000",
        "owner_id": ATTACKER,
        "creation_date": "2026-11-27T00:00:00.000Z",
    },
]


def _seed_file(folder: Path) -> Path:
    amis = []
    for item in SEED:
        amis.append(
            {
                "state": "available",
                "public": True,
                "image_location": "debian/" + item["name"],
                "sriov": "simple",
                "root_device_type": "ebs",
                "root_device_name": "/dev/xvda",
                "description": "Debian 12",
                "image_type": "machine",
                "platform": None,
                "architecture": "x86_64",
                "virtualization_type": "hvm",
                "hypervisor": "xen",
                **item,
            }
        )
    path = folder / "amis.json"
    path.write_text(json.dumps(amis))
    return path


# Debian's own public parameters, as AWS serves them (base.aws.ssm_parameter)
PUBLIC_PARAMETERS = [
    {"Name": "/aws/service/debian/release/13/latest/amd64", "Value": "ami-0d0000000000000a2"},
    {"Name": "/aws/service/debian/release/12/latest/amd64", "Value": "ami-0d0000000000000a2"},
    {"Name": "/aws/service/debian/release/13/latest/arm64", "Value": "ami-0d0000000000000a3"},
]


def server_env(folder: Path) -> dict[str, str]:
    """The seeds and dummy credentials a test server starts with."""
    (folder / "public-parameters.json").write_text(json.dumps(PUBLIC_PARAMETERS))
    return {
        "MOTO_AMIS_PATH": str(_seed_file(folder)),
        "BAKEHOUSE_MOTO_PUBLIC_PARAMETERS": str(folder / "public-parameters.json"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server, over TLS with a CA made for the run (its path: ``TLS["ca"]``)."""
    from tests.aws.moto_ext import running

    folder = tmp_path_factory.mktemp("moto")
    with running(folder, server_env(folder)) as (url, ca):
        TLS["ca"] = ca
        yield url


@pytest.fixture
def aws_env(
    moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, index_cache: Path
) -> str:
    """Credentials and endpoint for boto3 (and Packer) pointed at a freshly reset moto, and a
    state folder of the test's own (sharing the session's package indexes)."""
    state = tmp_path / "aws-env-state"
    (state / "cache").mkdir(parents=True)
    (state / "cache" / "indexes").symlink_to(index_cache)
    monkeypatch.setenv("BAKEHOUSE_STATE_DIR", str(state))
    req = urllib.request.Request(moto_server + "/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=10, context=ssl.create_default_context(cafile=TLS["ca"]))
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGIONS[0])
    monkeypatch.setenv("BAKEHOUSE_AWS_ENDPOINT", moto_server)
    monkeypatch.setenv("AWS_CA_BUNDLE", TLS["ca"])  # boto3
    monkeypatch.setenv("SSL_CERT_FILE", TLS["ca"])  # Packer (Go)
    return moto_server


def client(service: str, region: str = REGIONS[0]) -> Any:
    """A boto3 client on the test server (what a user's console would show); one per service,
    region and endpoint, as making one costs more than most calls."""
    return _client(service, region, os.environ["BAKEHOUSE_AWS_ENDPOINT"], TLS["ca"])


@functools.lru_cache(maxsize=64)
def _client(service: str, region: str, endpoint: str, ca: str) -> Any:
    import boto3

    return boto3.client(service, region_name=region, endpoint_url=endpoint, verify=ca)
