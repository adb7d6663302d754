"""The moto server the AWS tests start, with the calls bakehouse makes that moto (5.2) does not
implement: image deprecation, an AMI's ImdsSupport, tags on a new AMI's snapshots and on an
AMI's copies (and the copies' encryption), the root device type of an AMI made from an instance
(EBS),
public parameters other than Amazon's (Debian's ``/aws/service/debian/…``, seeded from the file
named by BAKEHOUSE_MOTO_PUBLIC_PARAMETERS, like MOTO_AMIS_PATH seeds the AMIs), and listing an
auto-scaling group's instance refreshes (there are none: moto cannot start one;
the refresh state machine is tested with botocore's Stubber). With BAKEHOUSE_MOTO_SSM_AGENT
naming an ssh_config, an SSM agent answers for the instances that have an instance profile:
Run Command scripts run as root on the real VM that config reaches (tests/agent.py), so the
hardening suite judges a real image through the whole AWS-side path. Test infrastructure only:
production code talks to it exactly as to AWS.

Each call keeps the state it changes on moto's own image objects, so a test reads it back
through DescribeImages (DeprecationTime, ImdsSupport) like it would from AWS, and the rules
EC2 documents are kept: a deprecation time in the past is refused.

It also serves over TLS (a throwaway CA made for the run; clients trust it through
AWS_CA_BUNDLE and, for Packer, SSL_CERT_FILE) and evaluates the one bucket-policy condition
bakehouse writes, ``aws:SecureTransport``, against the real request scheme — moto ignores
conditions, which would turn the state bucket's TLS-only rule into "deny everything".

    python tests/aws/moto_ext.py --tls DIR -H 127.0.0.1 -p PORT
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import ipaddress
import json
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from moto import backends
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult, BaseResponse, EmptyResult
from moto.ec2.exceptions import InvalidParameterValueError
from moto.ec2.responses import EC2Response
from moto.s3.models import FakeBucket
from moto.server import DomainDispatcherApplication, main
from moto.ssm.models import Parameter, ParameterDict
from moto.ssm.responses import SimpleSystemManagerResponse
from werkzeug.serving import WSGIRequestHandler


def _image(self: Any, ami_id: str) -> Any:
    found = self.ec2_backend.describe_images(ami_ids=[ami_id])
    if not found:  # deregistered: EC2 says it does not exist
        from moto.ec2.exceptions import InvalidAMIIdError

        raise InvalidAMIIdError(ami_id)
    return found[0]


def _when(value: Any) -> dt.datetime:
    when = (
        value
        if isinstance(value, dt.datetime)
        else dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    )
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def enable_image_deprecation(self: Any) -> ActionResult:
    image = _image(self, self._get_param("ImageId"))
    when = _when(self._get_param("DeprecateAt"))
    if when < dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30):
        raise InvalidParameterValueError(f"DeprecateAt {when.isoformat()} is in the past")
    image.deprecation_time = when.replace(second=0, microsecond=0).strftime(
        "%Y-%m-%dT%H:%M:%S.000Z"
    )
    return ActionResult({"Return": True})


def disable_image_deprecation(self: Any) -> ActionResult:
    image = _image(self, self._get_param("ImageId"))
    image.deprecation_time = None
    return ActionResult({"Return": True})


_modify = EC2Response.modify_image_attribute


def modify_image_attribute(self: Any) -> Any:
    imds = self._get_param("ImdsSupport")
    if imds:
        value = imds.get("Value") if isinstance(imds, dict) else imds
        if value != "v2.0":
            raise InvalidParameterValueError(f"ImdsSupport {value!r}")
        _image(self, self._get_param("ImageId")).imds_support = value
        return EmptyResult()
    return _modify(self)


def _tag_map(specs: list[dict[str, Any]], kind: str) -> dict[str, str]:
    return {
        t["Key"]: t["Value"] for spec in specs if spec["ResourceType"] == kind for t in spec["Tags"]
    }


def _made(self: Any, image: Any, specs: list[dict[str, Any]]) -> ActionResult:
    """Tag a new AMI and its snapshot as the request's TagSpecifications say."""
    for kind, ident in (("image", image.id), ("snapshot", image.ebs_snapshot.id)):
        tags = _tag_map(specs, kind)
        if tags:
            self.ec2_backend.create_tags([ident], tags)
    return ActionResult({"ImageId": image.id})


def create_image(self: Any) -> ActionResult:
    """moto refuses snapshot TagSpecifications (NotImplementedError); EC2 tags the AMI's
    snapshots with them."""
    self.error_on_dryrun()
    specs = self._get_param("TagSpecifications", [])
    for spec in specs:
        if spec["ResourceType"] not in ("image", "snapshot"):
            raise InvalidParameterValueError(f"ResourceType {spec['ResourceType']!r}")
    image = self.ec2_backend.create_image(
        self._get_param("InstanceId"),
        self._get_param("Name"),
        self._get_param("Description", ""),
        tag_specifications=[],
    )
    image.root_device_type = "ebs"  # moto says "standard"; an AMI made from an instance is EBS
    return _made(self, image, specs)


def copy_image(self: Any) -> ActionResult:
    """moto drops CopyImage's TagSpecifications, Encrypted and KmsKeyId: the copy and its
    snapshot are tagged, and the snapshot keeps its encryption and key, as EC2 does."""
    self.error_on_dryrun()
    kms = self._get_param("KmsKeyId")
    encrypted = str(self._get_param("Encrypted", "false")).lower() == "true"
    if kms and not encrypted:
        raise InvalidParameterValueError("KmsKeyId requires Encrypted")
    image = self.ec2_backend.copy_image(
        self._get_param("SourceImageId"),
        self._get_param("SourceRegion"),
        self._get_param("Name"),
        self._get_param("Description"),
    )
    image.ebs_snapshot.encrypted = encrypted
    image.ebs_snapshot.kms_key_id = kms
    return _made(self, image, self._get_param("TagSpecifications", []))


def describe_instance_refreshes(self: Any) -> ActionResult:
    name = self._get_param("AutoScalingGroupName")
    if name not in self.autoscaling_backend.autoscaling_groups:
        from moto.autoscaling.exceptions import ValidationError

        raise ValidationError(f"AutoScalingGroup name not found - {name}")
    return ActionResult({"InstanceRefreshes": []})


AutoScalingResponse.describe_instance_refreshes = describe_instance_refreshes  # type: ignore[attr-defined]

for _name, _fn in {
    "enable_image_deprecation": enable_image_deprecation,
    "disable_image_deprecation": disable_image_deprecation,
    "modify_image_attribute": modify_image_attribute,
    "create_image": create_image,
    "copy_image": copy_image,
}.items():
    setattr(EC2Response, _name, _fn)


# ---- public parameters ---------------------------------------------------------------------------

_check_loading = ParameterDict._check_loading_status
PUBLIC_ENV = "BAKEHOUSE_MOTO_PUBLIC_PARAMETERS"


def _check_loading_status(self: Any, key: str) -> None:
    _check_loading(self, key)
    path = os.environ.get(PUBLIC_ENV)
    if not path or not str(key or "").startswith("/aws/service/") or self.__dict__.get("seeded"):
        return
    self.seeded = True
    for item in json.loads(Path(path).read_text()):
        dict.setdefault(self, item["Name"], []).append(
            Parameter(
                account_id=self.account_id,
                name=item["Name"],
                value=item["Value"],
                parameter_type="String",
                description=None,
                allowed_pattern=None,
                keyid=None,
                last_modified_date=dt.datetime.now(dt.UTC),
                version=1,
                data_type=item.get("DataType", "aws:ec2:image"),
            )
        )


ParameterDict._check_loading_status = _check_loading_status  # type: ignore[method-assign]


# ---- an SSM agent, when the tests give one -------------------------------------------------------

AGENT_ENV = "BAKEHOUSE_MOTO_SSM_AGENT"
_agents: dict[str, Any] = {}
_results: dict[str, dict[str, Any]] = {}
_send_command = SimpleSystemManagerResponse.send_command
_get_invocation = SimpleSystemManagerResponse.get_command_invocation


def _agent() -> Any:
    config = os.environ.get(AGENT_ENV)
    if not config:
        return None
    if config not in _agents:
        from tests.agent import SshAsAgent

        _agents[config] = SshAsAgent(config, forget_key=True)
    return _agents[config]


def _managed(self: Any, instance_id: str) -> bool:
    from moto.ec2.models import ec2_backends

    try:
        inst = ec2_backends[self.current_account][self.region].get_instance(instance_id)
    except Exception:
        return False
    return bool(inst.state == "running" and inst.iam_instance_profile)


def describe_instance_information(self: Any) -> Any:
    if _agent() is None:
        raise NotImplementedError(
            "The describe_instance_information action has not been implemented"
        )
    ids = [
        v for f in self._get_param("Filters", []) if f["Key"] == "InstanceIds" for v in f["Values"]
    ]
    found = [i for i in ids if _managed(self, i)]
    return ActionResult(
        {
            "InstanceInformationList": [
                {"InstanceId": i, "PingStatus": "Online", "PlatformType": "Linux"} for i in found
            ]
        }
    )


def send_command(self: Any) -> Any:
    agent = _agent()
    reply = _send_command(self)
    if agent is None:
        return reply
    command = reply.result["Command"] if hasattr(reply, "result") else None
    command_id = command["CommandId"] if command else None
    script = "\n".join(self._get_param("Parameters", {}).get("commands", []))
    for instance_id in self._get_param("InstanceIds", []):
        if not _managed(self, instance_id):
            continue
        status, code, out, err = agent.run(script)
        _results[f"{command_id}/{instance_id}"] = {
            "CommandId": command_id,
            "InstanceId": instance_id,
            "DocumentName": self._get_param("DocumentName"),
            "PluginName": "aws:runShellScript",
            "Status": status,
            "StatusDetails": status,
            "ResponseCode": code,
            "StandardOutputContent": out,
            "StandardErrorContent": err,
        }
    return reply


def get_command_invocation(self: Any) -> Any:
    key = f"{self._get_param('CommandId')}/{self._get_param('InstanceId')}"
    if key in _results:
        return ActionResult(_results[key])
    return _get_invocation(self)


def cancel_command(self: Any) -> Any:
    return ActionResult({})


if os.environ.get(AGENT_ENV):
    for _name, _fn in {
        "describe_instance_information": describe_instance_information,
        "send_command": send_command,
        "get_command_invocation": get_command_invocation,
        "cancel_command": cancel_command,
    }.items():
        setattr(SimpleSystemManagerResponse, _name, _fn)


# ---- TLS and the aws:SecureTransport condition ---------------------------------------------------

_request = threading.local()
_dispatch = DomainDispatcherApplication.__call__
_list_of_moto_modules = backends.list_of_moto_modules


def _remember_scheme(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
    _request.secure = environ.get("wsgi.url_scheme") == "https"
    return _dispatch(self, environ, start_response)


def _holds(condition: dict[str, Any]) -> bool | None:
    """Whether a statement's condition holds for this request (None: not one we evaluate)."""
    if set(condition) != {"Bool"} or set(condition["Bool"]) != {"aws:SecureTransport"}:
        return None
    want = str(condition["Bool"]["aws:SecureTransport"]).lower() == "true"
    return bool(getattr(_request, "secure", False)) == want


def get_permission(self: Any, action: str, resource: str) -> Any:
    from moto.iam.access_control import IAMPolicy, PermissionResult

    if self.policy is None:
        return PermissionResult.NEUTRAL
    policy = json.loads(self.policy)
    statements = policy.get("Statement", [])
    kept = [
        s
        for s in (statements if isinstance(statements, list) else [statements])
        if "Condition" not in s or _holds(s["Condition"]) is not False
    ]
    return IAMPolicy(json.dumps({**policy, "Statement": kept})).is_action_permitted(
        action, resource
    )


DomainDispatcherApplication.__call__ = _remember_scheme  # type: ignore[method-assign]
# moto lists its own package folder on every request to find the service; the list never
# changes while the server runs (a sixth of the server's time went there)
backends.list_of_moto_modules = functools.cache(  # type: ignore[assignment]
    lambda: tuple(_list_of_moto_modules())
)
FakeBucket.get_permission = get_permission  # type: ignore[method-assign]


def make_tls(folder: Path) -> tuple[Path, Path]:
    """A CA (ca.pem, what clients trust) and a certificate for 127.0.0.1 signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("bakehouse test CA"))
        .issuer_name(name("bakehouse test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return folder / "server.pem", folder / "server.key"


_call_action = BaseResponse.call_action


def call_action(self: Any) -> Any:
    """An action moto lacks answers as AWS answers a call it does not know (a client error,
    not retried), instead of an HTML page with status 500 that clients retry for seconds."""
    try:
        return _call_action(self)
    except NotImplementedError as exc:
        body = (
            "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidAction</Code>"
            f"<Message>{exc} by this emulator</Message></Error>"
            "<RequestId>moto</RequestId></ErrorResponse>"
        )
        return 400, {"Content-Type": "text/xml"}, body


BaseResponse.call_action = call_action  # type: ignore[method-assign]


def _no_delay(handler: Any) -> None:
    """Werkzeug closes every connection after one response and writes a response in several
    small pieces; with Nagle's algorithm each TLS exchange then waits for a delayed ACK (40 ms).
    Sending at once keeps a call at a few milliseconds, as against AWS."""
    import socket

    _setup(handler)
    with contextlib.suppress(OSError):
        handler.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


_setup = WSGIRequestHandler.setup
WSGIRequestHandler.setup = _no_delay  # type: ignore[method-assign]


@contextlib.contextmanager
def running(folder: Path, env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """This server as a process over TLS: yields its URL and the CA that signs it."""
    import socket
    import ssl
    import subprocess
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (folder / "moto.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--tls",
            str(folder / "tls"),
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url, ca = f"https://127.0.0.1:{port}", str(folder / "tls" / "ca.pem")
    deadline = time.monotonic() + 30
    while True:
        try:
            context = ssl.create_default_context(cafile=ca)
            urllib.request.urlopen(url + "/moto-api/", timeout=1, context=context)
            break
        except (OSError, ssl.SSLError) as exc:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError(
                    f"moto did not start: {(folder / 'moto.log').read_text()}"
                ) from exc
            time.sleep(0.2)
    try:
        yield url, ca
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests.agent
    args = sys.argv[1:]
    if args[:1] == ["--tls"]:
        cert, key = make_tls(Path(args[1]))
        args = [*args[2:], "-c", str(cert), "-k", str(key)]
    main(args)
