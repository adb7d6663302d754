"""Commands on an instance through SSM Run Command, and a testinfra backend built on them.

With ``targets.aws.verify_via: ssm`` the hardening suite judges an instance that has no SSH
port, no key pair and no inbound rule at all: every command travels as an
``AWS-RunShellScript`` invocation (SendCommand, then GetCommandInvocation until it ends).

GetCommandInvocation returns only the first 24,000 characters of stdout and 8,000 of stderr,
and several facts the suite reads (``sysctl -a``, the package list, the file scan) are larger.
So a command's output never travels raw: a wrapper runs it with stdout and stderr in files in a
private temporary directory on the instance, prints one header line (exit status, sizes) and,
when they fit, both streams gzip-compressed and base64-encoded. Larger output stays on the
instance and is fetched in 23,000-character chunks by further invocations; the directory is
removed at the end. Exit status, stdout and stderr bytes arrive exactly as over SSH.

``-p bakehouse.testinfra_ssm`` registers the backend, so the suite runs with
``--hosts=ssm://i-0123456789abcdef0@eu-west-1``.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import os
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from testinfra.backend import base

from bakehouse.aws.session import Aws, api_error
from bakehouse.errors import AwsError, SsmError

STDOUT_LIMIT = 24_000  # characters GetCommandInvocation returns of stdout
CHUNK_BLOCKS = 23  # a chunk is 23 blocks of 1,000 characters, under the limit with room to spare
BLOCK = 1_000
INLINE_LIMIT = STDOUT_LIMIT - 1_000  # both encoded streams in the first reply when they fit
MAGIC = "BAKEHOUSE-SSM/1"
DOCUMENT = "AWS-RunShellScript"
INSTANCE_RE = re.compile(r"(i|mi)-[0-9a-f]{8,17}")
# the instance's mktemp -d result (a private 0700 directory), checked before it is reused
TMP_RE = re.compile(r"/tmp/bakehouse-ssm\.[A-Za-z0-9]{10}")  # noqa: S108  # nosec B108
RUNNING = ("Pending", "InProgress", "Delayed")
WRAPPER_FAILED = (97, 98)  # exit codes: mktemp, or gzip/base64, failed on the instance


@dataclass(frozen=True)
class Invocation:
    """What GetCommandInvocation says about one finished command."""

    status: str
    code: int
    stdout: str
    stderr: str
    details: str = ""


Transport = Callable[[str], Invocation]


def wrap(command: str) -> str:
    """The script that runs ``command`` and replies with a header and, if small, the output."""
    return f"""set -u
umask 077
d=$(mktemp -d /tmp/bakehouse-ssm.XXXXXXXXXX) || exit {WRAPPER_FAILED[0]}
/bin/sh -c {shlex.quote(command)} </dev/null >"$d/o" 2>"$d/e"
rc=$?
gzip -n -c <"$d/o" | base64 -w 0 >"$d/O" || exit {WRAPPER_FAILED[1]}
gzip -n -c <"$d/e" | base64 -w 0 >"$d/E" || exit {WRAPPER_FAILED[1]}
rm -f "$d/o" "$d/e"
ol=$(wc -c <"$d/O")
el=$(wc -c <"$d/E")
if [ $((ol + el)) -le {INLINE_LIMIT} ]; then
  printf '%s %s %s %s %s inline\\n' {MAGIC} "$rc" $ol $el "$d"
  cat "$d/O"; echo; cat "$d/E"; echo
  rm -rf "$d"
else
  printf '%s %s %s %s %s stored\\n' {MAGIC} "$rc" $ol $el "$d"
fi
"""


def chunk_script(directory: str, stream: str, index: int) -> str:
    """Print chunk ``index`` of a stored stream (``O`` or ``E``)."""
    path = shlex.quote(f"{directory}/{stream}")
    skip = index * CHUNK_BLOCKS
    return f"dd if={path} bs={BLOCK} skip={skip} count={CHUNK_BLOCKS} 2>/dev/null"


def cleanup_script(directory: str) -> str:
    return f"rm -rf {shlex.quote(directory)}"


@dataclass(frozen=True)
class Header:
    rc: int
    out_len: int
    err_len: int
    directory: str
    inline: bool


def parse_header(line: str) -> Header:
    parts = line.split()
    if len(parts) != 6 or parts[0] != MAGIC or parts[5] not in ("inline", "stored"):
        raise SsmError(f"unexpected reply from the instance: {line[:200]!r}")
    if not TMP_RE.fullmatch(parts[4]):
        raise SsmError(f"unexpected working directory in the reply: {parts[4][:100]!r}")
    if not all(p.isdigit() for p in parts[1:4]):
        raise SsmError(f"unexpected numbers in the reply: {line[:200]!r}")
    return Header(int(parts[1]), int(parts[2]), int(parts[3]), parts[4], parts[5] == "inline")


def _decode(encoded: str) -> bytes:
    import binascii
    import zlib

    try:
        return gzip.decompress(base64.b64decode(encoded, validate=True))
    except (binascii.Error, gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise SsmError(f"the output from the instance is damaged: {exc}") from None


def _checked(inv: Invocation, doing: str) -> str:
    if inv.status != "Success" or inv.code != 0:
        detail = inv.stderr.strip()[-500:] or inv.details or "no output"
        raise SsmError(
            f"{doing} over SSM ended {inv.status} (exit {inv.code}): {detail}",
            "the instance needs gzip, base64, mktemp and dd (coreutils) and a writable /tmp"
            if inv.code in WRAPPER_FAILED
            else "see the command's history in Systems Manager > Run Command",
        )
    return inv.stdout


def execute(transport: Transport, command: str) -> tuple[int, bytes, bytes]:
    """Run ``command`` on the instance: (exit status, stdout, stderr), whatever their size."""
    first = _checked(transport(wrap(command)), "running a command")
    head, _, rest = first.partition("\n")
    header = parse_header(head)
    if header.inline:
        lines = rest.split("\n")
        if len(lines) < 2:
            raise SsmError("the reply from the instance was cut short")
        out_text, err_text = lines[0], lines[1]
    else:
        try:
            out_text = _fetch(transport, header.directory, "O", header.out_len)
            err_text = _fetch(transport, header.directory, "E", header.err_len)
        finally:
            _checked(transport(cleanup_script(header.directory)), "removing the output")
    if len(out_text) != header.out_len or len(err_text) != header.err_len:
        raise SsmError(
            f"output arrived incomplete: {len(out_text)}/{header.out_len} and "
            f"{len(err_text)}/{header.err_len} characters"
        )
    return header.rc, _decode(out_text), _decode(err_text)


def _fetch(transport: Transport, directory: str, stream: str, length: int) -> str:
    size = CHUNK_BLOCKS * BLOCK
    parts = []
    for index in range((length + size - 1) // size):
        parts.append(_checked(transport(chunk_script(directory, stream, index)), "reading output"))
    return "".join(parts)


class SsmTransport:
    """SendCommand + GetCommandInvocation for one instance; cancels what it started on error."""

    def __init__(
        self,
        client: Any,
        instance_id: str,
        timeout: float = 600,
        comment: str = "bakehouse verify",
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.client = client
        self.instance_id = instance_id
        self.timeout = timeout
        self.comment = comment
        self.sleep = sleep
        self.clock = clock
        self.invocations = 0

    def __call__(self, script: str) -> Invocation:
        try:
            sent = self.client.send_command(
                InstanceIds=[self.instance_id],
                DocumentName=DOCUMENT,
                Parameters={"commands": [script], "executionTimeout": [str(int(self.timeout))]},
                TimeoutSeconds=max(30, int(self.timeout)),
                Comment=self.comment[:100],
            )
        except _boto_errors() as exc:
            raise _api_error(exc, f"SendCommand to {self.instance_id}") from None
        self.invocations += 1
        command_id = sent["Command"]["CommandId"]
        try:
            return self._wait(command_id)
        except BaseException:
            self._cancel(command_id)
            raise

    def _wait(self, command_id: str) -> Invocation:
        from botocore.exceptions import ClientError

        deadline = self.clock() + self.timeout + 30
        delay = 0.2
        while True:
            self.sleep(delay)
            delay = min(delay * 2, 2.0)
            try:
                inv = self.client.get_command_invocation(
                    CommandId=command_id, InstanceId=self.instance_id
                )
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                # the invocation is not visible for a moment after SendCommand returns
                if code == "InvocationDoesNotExist" and self.clock() < deadline:
                    continue
                raise _api_error(exc, f"GetCommandInvocation {command_id}") from None
            except _boto_errors() as exc:
                raise _api_error(exc, f"GetCommandInvocation {command_id}") from None
            if inv["Status"] in RUNNING:
                if self.clock() >= deadline:
                    raise SsmError(
                        f"command {command_id} on {self.instance_id} still {inv['Status']} "
                        f"after {self.timeout:.0f} s",
                        "is the SSM agent on the instance running and online?",
                    )
                continue
            return Invocation(
                inv["Status"],
                int(inv.get("ResponseCode", -1)),
                inv.get("StandardOutputContent", ""),
                inv.get("StandardErrorContent", ""),
                inv.get("StatusDetails", ""),
            )

    def _cancel(self, command_id: str) -> None:
        # best effort: the command also ends by itself at its execution timeout
        with contextlib.suppress(*_boto_errors()):
            self.client.cancel_command(CommandId=command_id, InstanceIds=[self.instance_id])


def _boto_errors() -> tuple[type[Exception], ...]:
    """What a failed call raises: ClientError, BotoCoreError, or ResponseParserError for an
    endpoint's bare HTTP 500 (an emulator without the API)."""
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    return (ClientError, BotoCoreError, ResponseParserError)


def _api_error(exc: Exception, doing: str) -> AwsError:
    return api_error(
        exc,
        doing,
        "the runner needs ssm:SendCommand and ssm:GetCommandInvocation (pipelines/iam-policy.json)",
        SsmError,
    )


def wait_until_managed(
    client: Any,
    instance_id: str,
    timeout: float = 600,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> float:
    """Wait until the instance's SSM agent reports Online; returns the seconds it took."""
    start = clock()
    last = "not registered"
    while True:
        try:
            reply = client.describe_instance_information(
                Filters=[{"Key": "InstanceIds", "Values": [instance_id]}]
            )
        except _boto_errors() as exc:
            raise _api_error(exc, "DescribeInstanceInformation") from None
        infos = reply.get("InstanceInformationList", [])
        if infos:
            last = str(infos[0].get("PingStatus", "unknown"))
            if last == "Online":
                return clock() - start
        if clock() - start >= timeout:
            raise SsmError(
                f"instance {instance_id} did not come online in SSM within {timeout:.0f} s "
                f"({last})",
                "the image must run amazon-ssm-agent, the instance profile must allow "
                "AmazonSSMManagedInstanceCore, and the subnet must reach the SSM endpoints "
                "(a NAT gateway or VPC endpoints for ssm, ssmmessages and ec2messages)",
            )
        sleep(5)


class SsmBackend(base.BaseBackend):  # type: ignore[misc]  # testinfra is untyped
    """testinfra backend: ``ssm://INSTANCE_ID@REGION`` (profile and endpoint from the
    environment, as for every bakehouse AWS call). Commands run as root."""

    NAME = "ssm"

    def __init__(
        self, hostname: str, *args: Any, transport: Transport | None = None, **kwargs: Any
    ):
        instance_id, _, region = hostname.partition("@")
        if not INSTANCE_RE.fullmatch(instance_id):
            raise SsmError(
                f"not an instance id: {instance_id!r}", "use --hosts=ssm://i-0123abcd@region"
            )
        super().__init__(hostname, *args, **kwargs)
        self.instance_id = instance_id
        if transport is None:
            aws = Aws(profile=os.environ.get("AWS_PROFILE"), region=region or None)
            transport = SsmTransport(aws.client("ssm"), instance_id)
        self.transport = transport

    @classmethod
    def get_hosts(cls, host: str, **kwargs: Any) -> list[str]:
        return [host]

    def run(self, command: str, *args: str, **kwargs: Any) -> base.CommandResult:
        cmd = self.get_command(command, *args)
        rc, out, err = execute(self.transport, cmd)
        return self.result(rc, self.encode(cmd), out, err)
