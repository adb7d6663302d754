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


def test_a_server_the_pins_do_not_name_is_refused(
    sshd: tuple[int, paramiko.PKey, Path], tmp_path: Path
) -> None:
    """Pins written for one address never admit another: no key is taken on first sight."""
    port, host_key, client = sshd
    known = hostkeys.write_known_hosts(
        tmp_path / "known_hosts", "203.0.113.9", [("ssh-ed25519", host_key.get_base64())]
    )
    with pytest.raises(VmError, match="did not accept"):
        vm.wait_for_ssh(port, client, "admin", time.monotonic() + 1, None, None, known_hosts=known)


def test_only_known_host_key_types_are_taken() -> None:
    blob = base64.b64encode(b"\0\0\0\x07ssh-dss" + b"\0" * 20).decode()
    text = f"{hostkeys.BEGIN}\nssh-dss {blob} root@x\n{hostkeys.END}\n"
    assert hostkeys.parse(text) == []


def test_verify_over_ssh_pins_the_console_keys_end_to_end_of_the_wiring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AwsTarget's SSH path hands the console's keys to both the readiness check and the
    suite's ssh_config. moto's console has no keys and its instances no SSH, so those three
    calls are replaced by recorders here (each is tested for real above)."""
    import dataclasses

    from bakehouse import suite
    from bakehouse.progress import Progress
    from bakehouse.project import Project
    from bakehouse.runs import run_dir
    from bakehouse.spec import Catalog
    from bakehouse.targets.aws import AwsTarget, RegionalAmi
    from bakehouse.targets.base import TargetOptions
    from tests.conftest import ROOT, TODAY

    key = new_key(tmp_path, "console")
    seen: dict[str, object] = {}
    monkeypatch.setattr(
        hostkeys, "wait_for_keys", lambda *a, **k: [("ssh-ed25519", key.get_base64())]
    )

    def ready(*args: object, **kwargs: object) -> float:
        known = kwargs.get("known_hosts")
        seen["ready"] = known
        seen["pinned"] = known.read_text() if isinstance(known, Path) else ""
        return 1.0

    class Done(Exception):
        pass

    def run_suite(root: Path, folder: Path, connection: list[str], *a: object, **k: object) -> None:
        seen["config"] = (folder / "ssh_config").read_text()
        raise Done

    monkeypatch.setattr(vm, "wait_for_ssh", ready)
    monkeypatch.setattr(suite, "run_suite", run_suite)
    spec = Catalog(ROOT / "images", ROOT / "packer" / "scripts").load("web", TODAY)
    aws = dataclasses.replace(spec.targets.aws, verify_via="ssh")
    spec = dataclasses.replace(spec, targets=dataclasses.replace(spec.targets, aws=aws))
    target = AwsTarget(Project(ROOT), TargetOptions(runner_cidr="192.0.2.10/32"))
    with run_dir(tmp_path, "web", "test") as run, pytest.raises(Done):
        target.on_instance(
            spec, RegionalAmi(REGIONS[0], "ami-0d0000000000000a2"), run, Progress(quiet=True)
        )
    known = seen["ready"]
    assert isinstance(known, Path) and key.get_base64() in str(seen["pinned"])
    assert f"UserKnownHostsFile {known}" in str(seen["config"])
    assert "StrictHostKeyChecking yes" in str(seen["config"])
