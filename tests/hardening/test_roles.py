"""Role checks: what a role image must run, and how."""

from __future__ import annotations

import pytest

from tests.hardening.controls import Control, ids
from tests.hardening.facts import FactError, Facts

WEB = "bakehouse role: web"


@pytest.mark.role("nginx")
@pytest.mark.parametrize(
    "control",
    [
        Control("bh-web-01", "nginx installed", WEB, ()),
    ],
    ids=ids,
)
def test_nginx_installed(facts: Facts, control: Control) -> None:
    # a package with the nginx binary: nginx-common (configuration only) does not count
    flavours = {"nginx", "nginx-light", "nginx-core", "nginx-full", "nginx-extras"}
    assert flavours & set(facts.packages), "no nginx package"


@pytest.mark.role("nginx")
@pytest.mark.parametrize(
    "control",
    [
        Control("bh-web-02", "nginx enabled and running", WEB, ()),
    ],
    ids=ids,
)
def test_nginx_running(facts: Facts, control: Control) -> None:
    unit = facts.unit("nginx.service")
    assert unit.get("UnitFileState") == "enabled", unit
    assert unit.get("ActiveState") == "active", unit


@pytest.mark.role("nginx")
@pytest.mark.parametrize(
    "control",
    [
        Control("bh-web-03", "nginx listens on port 80", WEB, ()),
    ],
    ids=ids,
)
def test_nginx_port(facts: Facts, control: Control) -> None:
    assert any(local.endswith(":80") and "nginx" in proc for _, local, proc in facts.listening), (
        facts.listening
    )


@pytest.mark.role("nginx")
@pytest.mark.parametrize(
    "control",
    [
        Control(
            "bh-web-04",
            "nginx hides its version (server_tokens off)",
            f"{WEB}; CIS nginx 2.5.1",
            (),
        ),
    ],
    ids=ids,
)
def test_nginx_server_tokens(facts: Facts, control: Control) -> None:
    # the whole effective configuration: a config nginx cannot read errors, never passes
    conf = facts.must("nginx config", "nginx -T 2>/dev/null")
    if "# configuration file /etc/nginx/nginx.conf:" not in conf:
        raise FactError("nginx config: nginx -T did not print /etc/nginx/nginx.conf")
    tokens = [line.split() for line in conf.splitlines() if line.split()[:1] == ["server_tokens"]]
    assert tokens and all(t[1].rstrip(";") == "off" for t in tokens), tokens
