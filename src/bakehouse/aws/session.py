"""boto3 sessions from the standard credential chain, with a clear message when there are none.

Every API call made through an :class:`Aws` is counted per (service, operation), which the
benchmarks use to show that planning is O(images), not O(images × something).
"""

from __future__ import annotations

import os
import threading
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bakehouse.errors import AwsError

ENDPOINT_ENV = "BAKEHOUSE_AWS_ENDPOINT"  # tests point every client at a moto server with it
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def test_endpoint() -> str | None:
    """The test suite's local AWS stand-in (a moto server), if one is set. It is honoured only
    on this machine's loopback address: set in a CI job or a shell, it could otherwise send
    every call, and the credentials' signatures with it, anywhere."""
    value = os.environ.get(ENDPOINT_ENV)
    if not value:
        return None
    host = urllib.parse.urlsplit(value).hostname
    if host not in LOOPBACK:
        raise AwsError(
            f"{ENDPOINT_ENV}={value!r} is not a local test endpoint",
            f"it exists for the test suite and is honoured on 127.0.0.1 only; unset {ENDPOINT_ENV}",
        )
    return value


_SESSIONS: dict[tuple[Any, ...], Any] = {}
_SESSIONS_LOCK = threading.Lock()


def _shared_session(profile: str | None, region: str | None) -> Any:
    """One boto3 session per profile and region in a process: service models load once
    (the EC2 model alone takes a tenth of a second), whatever number of Aws objects."""
    import boto3
    import botocore.exceptions

    with _SESSIONS_LOCK:
        # the environment the credential chain reads is part of the key: a changed
        # AWS_PROFILE, key or region gets a fresh session, never a stale one
        env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
        key = (profile, region, env)
        if key not in _SESSIONS:
            try:
                _SESSIONS[key] = boto3.Session(profile_name=profile, region_name=region)
            except botocore.exceptions.ProfileNotFound:
                raise AwsError(
                    f"no AWS profile named {profile!r}", "see `aws configure list-profiles`"
                ) from None
        return _SESSIONS[key]


@dataclass
class Aws:
    profile: str | None = None
    region: str | None = None
    endpoint: str | None = field(default_factory=test_endpoint)
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    _session: Any = None
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict)
    _account: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _count_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def session(self) -> Any:
        with self._lock:  # a boto3 session must not make clients in two threads at once
            return self._open()

    def _open(self) -> Any:
        if self._session is None:
            self._session = _shared_session(self.profile, self.region)
            if self._session.get_credentials() is None:
                raise AwsError(
                    "no AWS credentials found (environment, profile, SSO or instance role)",
                    "set AWS_PROFILE or pass --profile, or run `aws sso login`",
                )
        return self._session

    def client(self, service: str, region: str | None = None) -> Any:
        region = region or self.region or self.session.region_name
        if not region:
            raise AwsError("no AWS region given", "pass --region or set AWS_REGION")
        key = (service, region)
        with self._lock:
            if key not in self._clients:
                self._clients[key] = self._make(service, region)
        return self._clients[key]

    def _make(self, service: str, region: str) -> Any:
        from botocore.config import Config

        session = self._open()
        with _SESSIONS_LOCK:  # a shared boto3 session makes clients one at a time
            client = session.client(
                service,
                region_name=region,
                endpoint_url=self.endpoint,
                config=Config(
                    retries={"max_attempts": 8, "mode": "adaptive"},
                    # an endpoint override serves every bucket under one host name
                    s3={"addressing_style": "path" if self.endpoint else "auto"},
                    max_pool_connections=16,
                ),
            )
        client.meta.events.register("before-call.*.*", self._count)
        return client

    def account(self) -> str:
        """The caller's account id (asked once)."""
        if self._account is None:
            from botocore.exceptions import BotoCoreError, ClientError

            try:
                # STS answers in every region: any will do when none is configured
                region = self.region or self.session.region_name or "us-east-1"
                sts = self.client("sts", region)
                self._account = str(sts.get_caller_identity()["Account"])
            except (ClientError, BotoCoreError) as exc:
                raise api_error(exc, "asking STS who the caller is") from None
        return self._account

    def _count(self, model: Any, **_: Any) -> None:
        with self._count_lock:
            self.calls[(model.service_model.service_name, model.name)] += 1

    def total_calls(self) -> int:
        return sum(self.calls.values())


def api_error(
    exc: Exception,
    doing: str,
    hint: str = "check the credentials' permissions (pipelines/iam-policy.json)",
    kind: type[AwsError] = AwsError,
) -> AwsError:
    """One clear error for a failed AWS call (ClientError, or moto's unimplemented 500s)."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
    message = getattr(exc, "response", {}).get("Error", {}).get("Message", str(exc))
    return kind(f"{doing} failed: {code}: {message}", hint)
