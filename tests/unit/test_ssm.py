"""The SSM command protocol: wrapper scripts run for real by /bin/sh on this machine.

SSM Run Command cannot run here (no agent, and moto's SendCommand executes nothing), so the
transport in these tests plays the part of the agent as documented for AWS-RunShellScript: the
script runs under /bin/sh, the invocation is ``Success`` on exit 0 and ``Failed`` otherwise, and
GetCommandInvocation returns only the first 24,000 characters of stdout and 8,000 of stderr.
Everything bakehouse sends is executed; results are compared with testinfra's local backend.
The API sequence itself (SendCommand, polling, cancel) is tested with botocore's Stubber in
tests/aws/test_ssm_api.py.
"""

from __future__ import annotations

import glob
import subprocess  # nosec B404
from pathlib import Path

import pytest
import testinfra

from bakehouse.aws import ssm


class AgentLikeShell:
    """Runs each script with /bin/sh and cuts the output like GetCommandInvocation does."""

    def __init__(self) -> None:
        self.scripts: list[str] = []
        self.largest_reply = 0

    def __call__(self, script: str) -> ssm.Invocation:
        self.scripts.append(script)
        proc = subprocess.run(  # nosec B603
            ["/bin/sh", "-c", script], capture_output=True, check=False
        )
        out = proc.stdout.decode("utf-8", "replace")
        self.largest_reply = max(self.largest_reply, len(out))
        return ssm.Invocation(
            "Success" if proc.returncode == 0 else "Failed",
            proc.returncode,
            out[:24_000],
            proc.stderr.decode("utf-8", "replace")[:8_000],
        )


COMMANDS = [
    "true",
    "exit 3",
    "echo hello; echo oops >&2; exit 1",
    "printf 'no newline'",
    "seq 1 200000",  # ~1.3 MB of text: several chunks even gzip-compressed
    "head -c 300000 /dev/urandom | od -v -An -tx1",  # random: compresses badly
    "printf '\\377\\000\\001 binary'",
    "seq 1 50000 >&2; echo done",  # large stderr
    "printf '%s\\n' \"it's\" '$HOME' '`x`' '\"q\"' 'ünïcødé'",
    "cat /etc/os-release",
    "sleep 0.1; printf ''",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_execute_matches_a_local_run(command: str) -> None:
    agent = AgentLikeShell()
    rc, out, err = ssm.execute(agent, command)
    local = testinfra.get_host("local://").run(command)
    assert rc == local.rc
    if "urandom" not in command:
        assert out == local.stdout_bytes
        assert err == local.stderr_bytes
    else:
        assert len(out) == len(local.stdout_bytes) == 300000 // 16 * 49
    assert agent.largest_reply <= 24_000


def test_large_output_travels_in_chunks_and_leaves_nothing_behind() -> None:
    before = set(glob.glob("/tmp/bakehouse-ssm.*"))
    agent = AgentLikeShell()
    rc, out, _ = ssm.execute(agent, "head -c 2000000 /dev/urandom | base64")
    assert rc == 0
    assert len(out) > 2_600_000
    # first reply, chunks of both streams, then the clean-up
    assert len(agent.scripts) > 100
    assert agent.scripts[-1].startswith("rm -rf /tmp/bakehouse-ssm.")
    assert set(glob.glob("/tmp/bakehouse-ssm.*")) == before


def test_small_output_is_one_invocation() -> None:
    agent = AgentLikeShell()
    assert ssm.execute(agent, "sysctl -a 2>/dev/null | head -c 20000")[0] == 0
    assert len(agent.scripts) == 1


def test_a_wrapper_failure_is_an_error_not_a_result() -> None:
    def broken(script: str) -> ssm.Invocation:
        return ssm.Invocation("Failed", 97, "", "mktemp: failed to create directory")

    with pytest.raises(ssm.SsmError, match="mktemp: failed"):
        ssm.execute(broken, "true")


def test_truncated_or_foreign_replies_are_errors() -> None:
    with pytest.raises(ssm.SsmError, match="unexpected reply"):
        ssm.execute(lambda s: ssm.Invocation("Success", 0, "hello\n", ""), "true")
    with pytest.raises(ssm.SsmError, match="working directory"):
        ssm.parse_header("BAKEHOUSE-SSM/1 0 4 4 /etc;rm inline")
    with pytest.raises(ssm.SsmError, match="unexpected numbers"):
        ssm.parse_header("BAKEHOUSE-SSM/1 x 4 4 /tmp/bakehouse-ssm.abcdefghij inline")
    damaged = "BAKEHOUSE-SSM/1 0 4 4 /tmp/bakehouse-ssm.abcdefghij inline\nAAAA\nAAAA\n"
    with pytest.raises(ssm.SsmError, match="damaged"):
        ssm.execute(lambda s: ssm.Invocation("Success", 0, damaged, ""), "true")
    agent = AgentLikeShell()

    def cut(script: str) -> ssm.Invocation:
        inv = agent(script)
        return ssm.Invocation(inv.status, inv.code, inv.stdout[:200], inv.stderr)

    with pytest.raises(ssm.SsmError, match="incomplete"):
        ssm.execute(cut, "seq 1 100000")


def test_backend_runs_the_hardening_facts_commands(tmp_path: Path) -> None:
    """The backend class over the agent-like shell gives testinfra's usual CommandResult."""
    backend = ssm.SsmBackend("i-0123456789abcdef0@eu-west-1", transport=AgentLikeShell())
    result = backend.run("printf '%%s|' %s %s", "a b", "c")
    assert (result.rc, result.stdout) == (0, "a b|c|")
    assert backend.run("test -e %s", str(tmp_path / "missing")).rc == 1


def test_backend_rejects_a_host_that_is_not_an_instance() -> None:
    with pytest.raises(ssm.SsmError, match="not an instance id"):
        ssm.SsmBackend("web.example.com")


def test_plugin_registers_the_backend() -> None:
    import bakehouse.testinfra_ssm  # noqa: F401

    assert testinfra.backend.get_backend_class("ssm") is ssm.SsmBackend
