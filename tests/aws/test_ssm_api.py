"""SSM Run Command plumbing against botocore's Stubber.

moto accepts SendCommand but runs nothing (every invocation is an empty ``Success``) and has no
DescribeInstanceInformation, so the request sequence — send, poll through
InvocationDoesNotExist and InProgress, cancel on an error or Ctrl-C, wait for the agent to come
online — is tested with the Stubber, which checks each request against the real SSM service
model and answers with real response shapes. The wrapper scripts themselves run for real in
tests/unit/test_ssm.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from bakehouse.aws import ssm

IID = "i-0123456789abcdef0"
CID = "11111111-2222-3333-4444-555555555555"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "ssm", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def sent(stub: Stubber, timeout: int = 600) -> None:
    stub.add_response(
        "send_command",
        {"Command": {"CommandId": CID}},
        {
            "InstanceIds": [IID],
            "DocumentName": "AWS-RunShellScript",
            "Parameters": {"commands": ANY, "executionTimeout": [str(timeout)]},
            "TimeoutSeconds": max(30, timeout),
            "Comment": ANY,
        },
    )


def invocation(status: str, code: int = -1, out: str = "", err: str = "") -> dict[str, Any]:
    return {
        "CommandId": CID,
        "InstanceId": IID,
        "Status": status,
        "ResponseCode": code,
        "StandardOutputContent": out,
        "StandardErrorContent": err,
    }


GET = {"CommandId": CID, "InstanceId": IID}


def test_send_then_poll_until_done(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    sent(stub)
    stub.add_client_error("get_command_invocation", "InvocationDoesNotExist", expected_params=GET)
    stub.add_response("get_command_invocation", invocation("Pending"), GET)
    stub.add_response("get_command_invocation", invocation("InProgress"), GET)
    stub.add_response("get_command_invocation", invocation("Success", 0, "hi\n"), GET)
    clock = Clock()
    transport = ssm.SsmTransport(client, IID, sleep=clock.sleep, clock=clock)
    result = transport("echo hi")
    assert (result.status, result.code, result.stdout) == ("Success", 0, "hi\n")
    assert clock.sleeps == [0.2, 0.4, 0.8, 1.6]  # quick first polls, backing off to 2 s
    assert transport.invocations == 1


def test_a_failed_script_comes_back_as_failed(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    sent(stub)
    stub.add_response("get_command_invocation", invocation("Failed", 97, "", "mktemp: no"), GET)
    clock = Clock()
    with pytest.raises(ssm.SsmError, match=r"ended Failed \(exit 97\): mktemp: no"):
        ssm.execute(ssm.SsmTransport(client, IID, sleep=clock.sleep, clock=clock), "true")


def test_a_command_that_never_finishes_is_cancelled(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    sent(stub, timeout=10)
    clock = Clock()
    # the deadline is the timeout + 30 s: polls after 0.2, 0.6, 1.4, 3 s, then every 2 s to 41 s
    for _ in range(4 + 19):
        stub.add_response("get_command_invocation", invocation("InProgress"), GET)
    stub.add_response("cancel_command", {}, {"CommandId": CID, "InstanceIds": [IID]})
    transport = ssm.SsmTransport(client, IID, timeout=10, sleep=clock.sleep, clock=clock)
    with pytest.raises(ssm.SsmError, match="still InProgress after 10 s"):
        transport("sleep 9999")


def test_ctrl_c_while_waiting_cancels_the_command(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    sent(stub)
    stub.add_response("get_command_invocation", invocation("InProgress"), GET)
    stub.add_response("cancel_command", {}, {"CommandId": CID, "InstanceIds": [IID]})
    calls = 0

    def sleep(seconds: float) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ssm.SsmTransport(client, IID, sleep=sleep)("sleep 60")


def test_access_denied_names_the_permission(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    stub.add_client_error("send_command", "AccessDeniedException", "not authorized")
    with pytest.raises(ssm.SsmError, match="AccessDeniedException") as info:
        ssm.SsmTransport(client, IID)("true")
    assert "ssm:SendCommand" in (info.value.hint or "")


def test_wait_until_managed(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    params = {"Filters": [{"Key": "InstanceIds", "Values": [IID]}]}
    stub.add_response("describe_instance_information", {"InstanceInformationList": []}, params)
    stub.add_response(
        "describe_instance_information",
        {"InstanceInformationList": [{"InstanceId": IID, "PingStatus": "ConnectionLost"}]},
        params,
    )
    stub.add_response(
        "describe_instance_information",
        {"InstanceInformationList": [{"InstanceId": IID, "PingStatus": "Online"}]},
        params,
    )
    clock = Clock()
    took = ssm.wait_until_managed(client, IID, sleep=clock.sleep, clock=clock)
    assert took == 10


def test_an_agent_that_never_registers_explains_why(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    for _ in range(4):
        stub.add_response("describe_instance_information", {"InstanceInformationList": []})
    clock = Clock()
    with pytest.raises(ssm.SsmError, match="did not come online in SSM") as info:
        ssm.wait_until_managed(client, IID, timeout=15, sleep=clock.sleep, clock=clock)
    assert "amazon-ssm-agent" in (info.value.hint or "")
