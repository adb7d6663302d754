"""The verification instance's SSH host keys, read from its EC2 console output.

An image baked by bakehouse has no host keys (they are removed at the end of every bake), so
each instance makes its own at first boot, and cloud-init prints them on the console between
``-----BEGIN SSH HOST KEY KEYS-----`` and ``-----END SSH HOST KEY KEYS-----``. The console
comes through the EC2 API, not the network path to the instance: keys read there and pinned
in a known_hosts file mean nothing between the runner and the instance can pose as it.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bakehouse.aws.session import api_error
from bakehouse.errors import AwsError

BEGIN = "-----BEGIN SSH HOST KEY KEYS-----"
END = "-----END SSH HOST KEY KEYS-----"
TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)


def parse(console: str) -> list[tuple[str, str]]:
    """(type, base64 key) for each host key of the last block on the console (pure). A line
    whose key does not decode, or whose encoded type differs from its label, is dropped."""
    blocks = re.findall(re.escape(BEGIN) + r"(.*?)" + re.escape(END), console, re.S)
    if not blocks:
        return []
    keys = []
    for line in blocks[-1].splitlines():
        words = line.strip().split()
        if len(words) < 2 or words[0] not in TYPES:
            continue
        try:
            blob = base64.b64decode(words[1], validate=True)
        except (binascii.Error, ValueError):
            continue
        length = int.from_bytes(blob[:4], "big")
        if blob[4 : 4 + length].decode("ascii", "replace") != words[0]:
            continue
        keys.append((words[0], words[1]))
    return keys


def wait_for_keys(
    ec2: Any,
    instance_id: str,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[tuple[str, str]]:
    """Poll the instance's console until its host keys appear."""
    from botocore.exceptions import BotoCoreError, ClientError

    deadline = clock() + timeout
    while True:
        try:
            output = ec2.get_console_output(InstanceId=instance_id).get("Output") or ""
        except (ClientError, BotoCoreError) as exc:
            raise api_error(exc, f"reading the console of {instance_id}") from None
        keys = parse(output)
        if keys:
            return keys
        if clock() >= deadline:
            raise AwsError(
                f"{instance_id} printed no SSH host keys on its console within {timeout:.0f} s, "
                "so its SSH server cannot be told from an impostor",
                "the image must print them at first boot (cloud-init does), or verify over "
                "SSM (targets.aws.verify_via: ssm)",
            )
        sleep(10)


def write_known_hosts(path: Path, host: str, keys: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{host} {kind} {key}\n" for kind, key in keys))
    path.chmod(0o600)
    return path
