"""Verify over SSH on AWS pins the instance's host keys, read from its console through the EC2
API: a server presenting any other key is refused before anything runs on it. The handshake
tests use a real SSH server (paramiko's) on a loopback port."""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest
from botocore.stub import Stubber

from bakehouse import vm
from bakehouse.aws import hostkeys
from bakehouse.aws.session import Aws
from bakehouse.errors import AwsError, VmError
from tests.aws.conftest import REGIONS

pytestmark = pytest.mark.usefixtures("aws_env")

ED25519 = paramiko.Ed25519Key.from_private_key_file


def console(*keys: paramiko.PKey) -> str:
    lines = "\n".join(f"{k.get_name()} {k.get_base64()} root@ip-10-0-0-7" for k in keys)
    return (
        "[   12.3] cloud-init[512]: Cloud-init v. 22.4.2 running 'modules:config'\n"
        "<14>Nov 29 20:00:01 ec2: \n"
        f"-----BEGIN SSH HOST KEY KEYS-----\n{lines}\n-----END SSH HOST KEY KEYS-----\n"
        "[   13.0] cloud-init[530]: Cloud-init v. 22.4.2 finished\n"
    )


def new_key(tmp_path: Path, name: str) -> paramiko.PKey:
    import subprocess

    path = tmp_path / name
    subprocess.run(  # an OpenSSH ed25519 key, as cloud-init makes
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True
    )
    return ED25519(str(path))


def test_the_keys_come_from_the_last_block_and_must_decode(tmp_path: Path) -> None:
    old, new = new_key(tmp_path, "old"), new_key(tmp_path, "new")
    text = console(old) + "reboot\n" + console(new)
    assert hostkeys.parse(text) == [("ssh-ed25519", new.get_base64())]
    forged = text.replace(new.get_base64(), base64.b64encode(b"\0\0\0\x07ssh-rsa").decode())
    assert hostkeys.parse(forged) == []  # labelled ed25519, encodes another type
    assert hostkeys.parse("no keys here") == []


def test_waits_for_the_keys_on_the_console(tmp_path: Path) -> None:
    key = new_key(tmp_path, "host")
    aws = Aws()
    ec2 = aws.client("ec2", REGIONS[0])
    booting = base64.b64encode(b"[    1.0] Linux version 6.1\n").decode()
    ready = base64.b64encode(console(key).encode()).decode()
    slept: list[float] = []
    with Stubber(ec2) as stub:
        for output in (booting, ready):
            stub.add_response(
                "get_console_output",
                {"InstanceId": "i-0123456789abcdef0", "Output": output},
                {"InstanceId": "i-0123456789abcdef0"},
            )
        keys = hostkeys.wait_for_keys(ec2, "i-0123456789abcdef0", 600, sleep=slept.append)
        stub.assert_no_pending_responses()
    assert keys == [("ssh-ed25519", key.get_base64())] and slept == [10]


def test_no_keys_in_time_is_an_error_not_a_blind_connection() -> None:
    aws = Aws()
    ec2 = aws.client("ec2", REGIONS[0])
    now = [0.0]
    with Stubber(ec2) as stub:
        for _ in range(2):
            stub.add_response(
                "get_console_output",
                {"InstanceId": "i-0123456789abcdef0", "Output": ""},
                {"InstanceId": "i-0123456789abcdef0"},
            )
        with pytest.raises(AwsError, match="printed no SSH host keys"):
            hostkeys.wait_for_keys(
                ec2,
                "i-0123456789abcdef0",
                5,
                sleep=lambda s: now.__setitem__(0, now[0] + s),
                clock=lambda: now[0],
            )


class Server(paramiko.ServerInterface):
    def __init__(self, client_key: paramiko.PKey):
        self.client_key = client_key

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return paramiko.AUTH_SUCCESSFUL if key == self.client_key else paramiko.AUTH_FAILED

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        channel.send_exit_status(0)
        return True


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[tuple[int, paramiko.PKey, Path]]:
    """A real SSH server on loopback with its own host key, accepting one client key."""
    host_key = new_key(tmp_path, "server")
    client_key = new_key(tmp_path, "client")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            transport = paramiko.Transport(conn)
            transport.add_server_key(host_key)
            try:
                transport.start_server(server=Server(client_key))
                channel = transport.accept(10)
                if channel is not None:
                    time.sleep(0.2)
                    channel.close()
            except (paramiko.SSHException, EOFError, OSError):
                pass

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1], host_key, tmp_path / "client"
    finally:
        stop.set()
        listener.close()


def test_the_pinned_key_lets_the_suite_in(
    sshd: tuple[int, paramiko.PKey, Path], tmp_path: Path
) -> None:
    port, host_key, client = sshd
    known = hostkeys.write_known_hosts(
        tmp_path / "known_hosts", f"[127.0.0.1]:{port}", [("ssh-ed25519", host_key.get_base64())]
    )
    took = vm.wait_for_ssh(
        port, client, "admin", time.monotonic() + 30, None, None, known_hosts=known
    )
    assert took < 30


def test_any_other_key_is_refused_before_anything_runs(
    sshd: tuple[int, paramiko.PKey, Path], tmp_path: Path
) -> None:
    port, _, client = sshd
    console_key = new_key(tmp_path, "the-real-instance")
    known = hostkeys.write_known_hosts(
        tmp_path / "known_hosts",
        f"[127.0.0.1]:{port}",
        [("ssh-ed25519", console_key.get_base64())],
    )
    with pytest.raises(VmError, match="presented a host key other than the one it printed"):
        vm.wait_for_ssh(port, client, "admin", time.monotonic() + 30, None, None, known_hosts=known)


def test_the_suites_ssh_config_checks_the_pinned_keys(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    text = vm.write_ssh_config(
        tmp_path / "cfg", "203.0.113.7", 22, "admin", tmp_path / "k", known_hosts=known
    ).read_text()
    assert "StrictHostKeyChecking yes" in text and f"UserKnownHostsFile {known}" in text
    assert "/dev/null" not in text
