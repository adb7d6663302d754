"""The data model: a frozen, fully validated :class:`ImageSpec` per image definition.

The schema is the table of fields below; every value is checked up front and the result is
immutable. ``load_image`` is the one entry point: YAML (with ``extends:``) → ImageSpec, or one
:class:`SpecError` that names the file, the line and the key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bakehouse import distro
from bakehouse import schema as s
from bakehouse.errors import Invalid, SpecError
from bakehouse.load import ImageFiles, Path_
from bakehouse.names import CHANNEL_RE, NAME_RE, REGION_RE
from bakehouse.schema import F

PACKAGE_RE = r"[a-z0-9][a-z0-9+.-]{1,62}"
SCRIPT_RE = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}\.sh"
ACCOUNT_RE = r"[0-9]{12}"
ROLE_CHECKS = ("nginx",)
PROFILES = ("baseline",)


@dataclass(frozen=True)
class LocalBase:
    """The distribution release and where its packages come from (the name ``local`` is
    historical: nightly and the aws target read the same release's indexes)."""

    suite: str  # a release codename (bakehouse.distro.RELEASES)
    mirror: str | None  # None: the family's archive for the architecture
    security_mirror: str | None
    components: tuple[str, ...] | None  # None: the family's default
    packages: tuple[str, ...]
    include_updates: bool
    initramfs: str

    @property
    def release(self) -> distro.Release:
        return distro.release(self.suite)

    def mirror_for(self, arch: str = "amd64") -> str:
        return self.mirror or self.release.distro.mirror(arch)

    def security_mirror_for(self, arch: str = "amd64") -> str:
        return self.security_mirror or self.release.distro.security_mirror(arch)

    @property
    def comps(self) -> tuple[str, ...]:
        return self.components or self.release.distro.components

    def index_suites(self, arch: str = "amd64") -> list[distro.Suite]:
        """Every signed index a patch level of this release is read from, for ``arch``."""
        rel = self.release
        return rel.distro.suites(
            rel, self.mirror_for(arch), self.security_mirror_for(arch), self.comps, arch
        )

    def apt_sources(self, arch: str = "amd64") -> list[str]:
        """The apt sources an image keeps: release, -updates and -security."""
        return [
            f"deb {s.mirror} {s.name} {' '.join(s.components)}" for s in self.index_suites(arch)
        ]


@dataclass(frozen=True)
class AmiFilter:
    name: str
    owners: tuple[str, ...]
    architecture: str


# Who publishes the AMIs behind well-known public parameters: a base read from one of them must
# be owned by its publisher, as if the definition had said so.
PUBLISHERS = {
    "/aws/service/debian/": ("136693071363",),  # Debian
    "/aws/service/canonical/": ("099720109477",),  # Canonical (Ubuntu)
    "/aws/service/ami-amazon-linux-latest/": ("amazon",),
}


@dataclass(frozen=True)
class AwsBase:
    ssm_parameter: str | None  # neither this nor a filter: the release publisher's parameter
    filter: AmiFilter | None
    ssh_username: str  # "": the family's (admin on Debian, ubuntu on Ubuntu)
    owners: tuple[str, ...] = ()  # who may own the AMI an ssm_parameter names

    def allowed_owners(self) -> tuple[str, ...]:
        """The owners allow-list that applies, whichever way the base is found."""
        if self.filter is not None:
            return self.filter.owners
        if self.owners:
            return self.owners
        for prefix, owners in PUBLISHERS.items():
            if (self.ssm_parameter or "").startswith(prefix):
                return owners
        return ()


@dataclass(frozen=True)
class Base:
    local: LocalBase
    aws: AwsBase
    arch: str = "amd64"  # the image's architecture (Debian's names); arm64 on aws only


def _base(local: LocalBase, aws: AwsBase, arch: str) -> Base:
    """The base with what the release decides filled in: the publisher's public parameter when
    the definition names no AMI, and the family's login user."""
    rel = local.release
    if aws.ssm_parameter is None and aws.filter is None:
        aws = dataclasses.replace(aws, ssm_parameter=rel.distro.ssm_parameter(rel, arch))
    if not aws.ssh_username:
        aws = dataclasses.replace(aws, ssh_username=rel.distro.ssh_username)
    return Base(local, aws, arch)


@dataclass(frozen=True)
class Step:
    script: str
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Waiver:
    id: str
    reason: str
    expires: dt.date


@dataclass(frozen=True)
class Hardening:
    profile: str
    role_checks: tuple[str, ...]
    waivers: tuple[Waiver, ...]


@dataclass(frozen=True)
class Patch:
    policy: str
    rebuild_on: str
    max_age_days: int


@dataclass(frozen=True)
class LocalTarget:
    disk_size: int  # MiB
    data_disk_size: int  # MiB: /var, /var/tmp, /var/log, /var/log/audit and /home
    memory: int  # MiB
    cpus: int
    accelerator: str
    ssh_timeout: int  # seconds
    build: str  # chroot | vm


@dataclass(frozen=True)
class Share:
    accounts: tuple[str, ...]
    organizations: tuple[str, ...]
    organizational_units: tuple[str, ...]
    public: bool


@dataclass(frozen=True)
class AwsTarget:
    regions: tuple[str, ...]
    instance_type: str
    subnet_id: str | None
    kms_key_id: str | None
    volume_size: int  # GiB
    data_volume_size: int  # GiB: /var, /var/tmp, /var/log, /var/log/audit and /home
    share: Share
    verify_via: str
    instance_profile: str | None  # the verification instance's, for verify_via: ssm


@dataclass(frozen=True)
class Targets:
    local: LocalTarget
    aws: AwsTarget


@dataclass(frozen=True)
class Publish:
    channels: tuple[str, ...]


@dataclass(frozen=True)
class Roll:
    selector: tuple[tuple[str, str], ...]
    min_healthy: int
    max_healthy: int
    warmup: int
    checkpoints: tuple[int, ...]
    checkpoint_delay: int
    alarms: tuple[str, ...]
    bake_time: int
    auto_rollback: bool
    skip_matching: bool
    scale_in_protected: str
    standby: str
    canary_percentage: int
    timeout: int


@dataclass(frozen=True)
class Retention:
    keep: int
    min_age_days: int


@dataclass(frozen=True)
class ImageSpec:
    name: str
    description: str
    base: Base
    packages: tuple[str, ...]
    provision: tuple[Step, ...]
    hardening: Hardening
    patch: Patch
    targets: Targets
    publish: Publish
    roll: Roll
    retention: Retention
    files: tuple[str, ...] = field(default=(), compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form of the fully resolved definition."""
        data: dict[str, Any] = _jsonable(asdict(self))
        return data


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if (
            value
            and all(isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) for v in value)
            and not all(isinstance(v, dict) for v in value)
        ):
            return {k: _jsonable(v) for k, v in value}
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


# ---- cross-field checks -------------------------------------------------------------------------


def _check_aws_base(b: AwsBase, path: Path_, ctx: s.Ctx) -> None:
    if b.ssm_parameter is not None and b.filter is not None:
        ctx.fail(
            path,
            "set one of ssm_parameter or filter, not both",
            "an SSM public parameter (e.g. /aws/service/debian/release/13/latest/amd64), a name "
            "filter with owners, or neither for the release publisher's own parameter",
        )
    if b.filter is not None and b.owners:
        ctx.fail((*path, "owners"), "with a filter, the owners go under filter.owners")


def _check_local_base(b: LocalBase, path: Path_, ctx: s.Ctx) -> None:
    family = b.release.distro
    for i, component in enumerate(b.components or ()):
        if component not in family.allowed_components:
            ctx.fail(
                (*path, "components", i),
                f"{component} is not a component of {family.title}'s archive",
                f"use {', '.join(family.allowed_components)}",
            )


def _check_base(b: Base, path: Path_, ctx: s.Ctx) -> None:
    aws = (*path, "aws")
    if b.aws.ssm_parameter is not None and not b.aws.allowed_owners():
        ctx.fail(
            (*aws, "ssm_parameter"),
            "a base from an SSM parameter needs an owners allow-list: anyone who can write the "
            "parameter could otherwise name any AMI",
            "add base.aws.owners, e.g. ['123456789012'] or [self]",
        )
    ec2 = distro.EC2_ARCH[b.arch]
    if b.aws.filter is not None and b.aws.filter.architecture != ec2:
        ctx.fail(
            (*aws, "filter", "architecture"),
            f"is {b.aws.filter.architecture}, but base.arch is {b.arch} ({ec2} on EC2)",
            "make them agree",
        )
    other = next(a for a in distro.ARCHES if a != b.arch)
    if b.aws.ssm_parameter is not None and f"/{other}/" in f"{b.aws.ssm_parameter}/":
        ctx.fail(
            (*aws, "ssm_parameter"),
            f"names {other} images, but base.arch is {b.arch}",
            f"use the {b.arch} parameter, or set base.arch: {other}",
        )


def _check_waiver(w: Waiver, path: Path_, ctx: s.Ctx) -> None:
    if w.expires < ctx.today:
        ctx.fail(
            (*path, "expires"),
            f"waiver {w.id} expired on {w.expires.isoformat()}",
            "fix the control, or renew the waiver with a new reason and expiry date",
        )


def _check_hardening(h: Hardening, path: Path_, ctx: s.Ctx) -> None:
    seen: set[str] = set()
    for i, w in enumerate(h.waivers):
        if w.id in seen:
            ctx.fail(
                (*path, "waivers", i, "id"),
                f"control {w.id} is waived twice",
                "keep one waiver per control",
            )
        seen.add(w.id)


def _check_roll(r: Roll, path: Path_, ctx: s.Ctx) -> None:
    if r.max_healthy - r.min_healthy > 100:
        ctx.fail(
            (*path, "max_healthy"),
            f"must be at most 100 above min_healthy (got {r.max_healthy} and {r.min_healthy})",
            "instance refresh allows a spread of at most 100 percentage points",
        )
    for i in range(1, len(r.checkpoints)):
        if r.checkpoints[i] <= r.checkpoints[i - 1]:
            ctx.fail(
                (*path, "checkpoints", i),
                "checkpoints must be in ascending order",
                "e.g. [20, 50, 100]",
            )
    if r.checkpoint_delay and not r.checkpoints:
        ctx.fail((*path, "checkpoint_delay"), "needs checkpoints", "set roll.checkpoints too")


def _check_aws_target(t: AwsTarget, path: Path_, ctx: s.Ctx) -> None:
    if t.verify_via == "ssm" and t.instance_profile is None:
        ctx.fail(
            (*path, "verify_via"),
            "verification over SSM needs an instance profile for the verification instance",
            "set targets.aws.instance_profile to a profile whose role has the "
            "AmazonSSMManagedInstanceCore policy",
        )
    share = t.share
    if share.public:
        ctx.fail(
            (*path, "share", "public"),
            "an encrypted AMI cannot be public (AWS refuses it), and every bakehouse AMI "
            "is encrypted",
            "share with accounts or organizations instead",
        )
    shared = share.accounts or share.organizations or share.organizational_units
    if shared and (t.kms_key_id is None or t.kms_key_id in ("alias/aws/ebs", "aws/ebs")):
        ctx.fail(
            (*path, "share"),
            "sharing an AMI encrypted with the AWS-managed EBS key: other accounts can never "
            "launch it (that key cannot be shared)",
            "set targets.aws.kms_key_id to a customer-managed key (alias/name in every region) "
            "whose key policy lets the shared accounts use kms:Decrypt, kms:DescribeKey, "
            "kms:CreateGrant, kms:ReEncrypt* and kms:GenerateDataKeyWithoutPlaintext",
        )
    if t.kms_key_id and t.kms_key_id.startswith("arn:") and len(t.regions) > 1:
        ctx.fail(
            (*path, "kms_key_id"),
            f"a key ARN belongs to one region, but the AMI is copied to {len(t.regions)} regions",
            "use an alias (alias/name) that exists in every region",
        )


def _check_steps(steps: tuple[Step, ...], path: Path_, ctx: s.Ctx) -> None:
    seen: set[str] = set()
    for i, step in enumerate(steps):
        if step.script in seen:
            ctx.fail(
                (*path, i, "script"),
                f"script {step.script} is listed twice",
                "each provisioning step runs once",
            )
        seen.add(step.script)


# ---- the schema ----------------------------------------------------------------------------------

_url = s.string(
    r"https?://[A-Za-z0-9.:_/~%+-]+",
    what="an http(s) URL",
    hint="e.g. http://deb.debian.org/debian",
)
_package = s.string(PACKAGE_RE, what="a Debian package name", hint="e.g. nginx")
_seconds = s.integer(0, 86_400, unit="seconds")
_env_name = s.string(r"[A-Z_][A-Z0-9_]{0,63}", what="an environment variable name (A-Z, 0-9, _)")

# Names a step's env may not set: bakehouse's own variables, and those that change what the
# shell, the dynamic loader, apt/dpkg, sudo or an interpreter runs.
RESERVED_ENV = re.compile(
    r"(BAKEHOUSE_|LD_|APT_|DPKG_|DEBIAN_|DEBCONF_|UCF_|BASH_FUNC_|SUDO_|SSH_|PYTHON|PERL|RUBY|"
    r"NODE_|GCONV_|MALLOC_|GLIBC_|LC_|GIT_|PIP_|XDG_|SSL_CERT_|OPENSSL_|JAVA_|_JAVA_).*"
    r"|PATH|IFS|ENV|BASH_ENV|SHELLOPTS|BASHOPTS|PS4|PROMPT_COMMAND|CDPATH|GLOBIGNORE|HOME|"
    r"SHELL|USER|LOGNAME|TMPDIR|LANG|LANGUAGE|LOCPATH|NLSPATH|HOSTALIASES|LOCALDOMAIN|"
    r"RES_OPTIONS|RESOLV_HOST_CONF|TZ|TZDIR|POSIXLY_CORRECT|HTTP_PROXY|HTTPS_PROXY|FTP_PROXY|"
    r"ALL_PROXY|NO_PROXY|UMASK|CURL_CA_BUNDLE|REQUESTS_CA_BUNDLE|GNUPGHOME|TMP|TEMP|PAGER|"
    r"EDITOR|VISUAL|SHLVL|PS1|MAIL"
)


def _env_key(value: Any, path: Path_, ctx: s.Ctx) -> str:
    name = _env_name(value, path, ctx)
    if RESERVED_ENV.fullmatch(name):
        ctx.fail(
            path,
            f"{name} is reserved: bakehouse, the shell, apt or the loader rely on it",
            f"use a name of your own, e.g. {_free_name(name)}",
        )
    return name


def _free_name(name: str) -> str:
    """A free name to suggest instead of a reserved one (pure)."""
    stem = name.removeprefix("BAKEHOUSE_").strip("_") or "SETTING"
    return f"APP_{stem}"


LOCAL_BASE = s.record(
    LocalBase,
    {
        "suite": F(
            s.enum(*distro.RELEASES),
            "trixie",
            "the distribution release by codename: trixie, bookworm (Debian 13, 12); noble, "
            "jammy (Ubuntu 24.04, 22.04)",
        ),
        "mirror": F(s.optional(_url), None, "default: the distribution's own archive"),
        "security_mirror": F(
            s.optional(_url), None, "default: the distribution's own security archive"
        ),
        "components": F(
            s.optional(
                s.list_of(
                    s.enum(
                        *sorted({c for f in distro.FAMILIES.values() for c in f.allowed_components})
                    ),
                    min_len=1,
                    unique=True,
                )
            ),
            None,
            "default: main (Debian), main and universe (Ubuntu)",
        ),
        "packages": F(s.list_of(_package, unique=True), []),
        "include_updates": F(
            s.boolean,
            True,
            "build the base from the release, -updates and -security suites (false: the "
            "release suite only, like a vendor image that every bake must patch)",
        ),
        "initramfs": F(
            s.enum("list", "most"),
            "list",
            "list: only the virtio modules a local VM needs, so kernel updates rebuild the "
            "initramfs in seconds; most: every module, like a generic vendor image",
        ),
    },
    _check_local_base,
)

OWNER = s.string(
    rf"{ACCOUNT_RE}|self|amazon|aws-marketplace",
    what="a 12-digit account id, self, amazon or aws-marketplace",
    hint="quote account ids: '136693071363'",
)

AMI_FILTER = s.record(
    AmiFilter,
    {
        "name": F(
            s.string(
                r"[A-Za-z0-9 ()\[\]./_*?:-]{3,128}",
                what="an AMI name pattern",
                hint="e.g. debian-12-amd64-*",
            ),
            help="an AMI name pattern",
        ),
        "owners": F(
            s.list_of(
                OWNER,
                min_len=1,
                unique=True,
            ),
            help="an allow-list of AMI owner account ids is required: without it a look-alike "
            "public AMI from anyone can be picked",
        ),
        "architecture": F(s.enum("x86_64", "arm64"), "x86_64"),
    },
)

AWS_BASE = s.record(
    AwsBase,
    {
        "ssm_parameter": F(
            s.optional(
                s.string(r"/[A-Za-z0-9_./-]{1,1010}", what="an SSM parameter path starting with /")
            ),
            None,
        ),
        "filter": F(s.optional(AMI_FILTER), None),
        "ssh_username": F(
            s.string(r"[a-z_][a-z0-9_-]{0,31}", what="a user name", allow_empty=True),
            "",
            "default: the distribution's (admin on Debian, ubuntu on Ubuntu)",
        ),
        "owners": F(
            s.list_of(OWNER, unique=True),
            [],
            "with ssm_parameter: who may own the AMI it names (default for Debian's, "
            "Canonical's and Amazon's public parameters: their publisher)",
        ),
    },
    _check_aws_base,
)

BASE = s.record(
    _base,
    {
        "local": F(LOCAL_BASE, {}),
        "aws": F(AWS_BASE, {}, "how to find the base AMI (default: the release publisher's)"),
        "arch": F(
            s.enum(*distro.ARCHES),
            "amd64",
            "the image's architecture: arm64 builds for Graviton instances (aws target only)",
        ),
    },
    _check_base,
)

STEP = s.record(
    Step,
    {
        "script": F(
            s.string(
                SCRIPT_RE,
                what="a script file name under packer/scripts/ ending in .sh",
                hint="e.g. web.sh",
            ),
            help="a script under packer/scripts/",
        ),
        "env": F(s.str_map(_env_key, s.string(what="text", max_len=1024, allow_empty=True)), {}),
    },
)

WAIVER = s.record(
    Waiver,
    {
        "id": F(
            s.string(
                r"[A-Za-z0-9][A-Za-z0-9_.-]{1,40}",
                what="a control id",
                hint="e.g. sshd-48 or os-10",
            ),
            help="the control id, e.g. sshd-48",
        ),
        "reason": F(
            s.string(
                r"(?s).{10,}",
                what="a reason of at least 10 characters",
                max_len=500,
                multiline=True,
            ),
            help="why the control cannot pass, for the auditor",
        ),
        "expires": F(s.date, help="a date YYYY-MM-DD: waivers must expire"),
    },
    _check_waiver,
)

HARDENING = s.record(
    Hardening,
    {
        "profile": F(s.enum(*PROFILES), "baseline"),
        "role_checks": F(s.list_of(s.enum(*ROLE_CHECKS), unique=True), []),
        "waivers": F(s.list_of(WAIVER), []),
    },
    _check_hardening,
)

PATCH = s.record(
    Patch,
    {
        "policy": F(s.enum("all", "security"), "all", "which updates a bake installs"),
        "rebuild_on": F(
            s.enum("any", "security", "inputs"),
            "security",
            "which pending updates trigger a nightly rebuild",
        ),
        "max_age_days": F(s.integer(1, 365, unit="days"), 30),
    },
)

LOCAL_TARGET = s.record(
    LocalTarget,
    {
        "disk_size": F(s.size_mib(1024, 256 * 1024), "4G"),
        "data_disk_size": F(
            s.size_mib(1024, 256 * 1024),
            2048,
            "the second disk: /var, /var/tmp, /var/log, /var/log/audit and /home",
        ),
        "memory": F(s.size_mib(256, 64 * 1024), "1G"),
        "cpus": F(s.integer(1, 64), 2),
        "accelerator": F(s.enum("auto", "kvm", "tcg"), "auto"),
        "ssh_timeout": F(s.integer(30, 3600, unit="seconds"), 900),
        "build": F(
            s.enum("chroot", "vm"),
            "chroot",
            "how Packer runs the scripts: chroot = in the image's root filesystem on this machine "
            "at native speed (null builder, shell-local; needs root), the disks laid out on the "
            "host, proven by the verify boot; vm = in a qemu VM (qemu builder), as they run on aws",
        ),
    },
)

SHARE = s.record(
    Share,
    {
        "accounts": F(
            s.list_of(
                s.string(
                    ACCOUNT_RE,
                    what="a 12-digit account id",
                    hint="quote account ids: '123456789012'",
                ),
                unique=True,
            ),
            [],
        ),
        "organizations": F(
            s.list_of(
                s.string(
                    r"arn:aws:organizations::[0-9]{12}:organization/o-[a-z0-9]{10,32}",
                    what="an organization ARN",
                ),
                unique=True,
            ),
            [],
        ),
        "organizational_units": F(
            s.list_of(
                s.string(
                    r"arn:aws:organizations::[0-9]{12}:ou/o-[a-z0-9]{10,32}/ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}",
                    what="an organizational unit ARN",
                ),
                unique=True,
            ),
            [],
        ),
        "public": F(s.boolean, False, "make AMIs public: almost never what you want"),
    },
)

AWS_TARGET = s.record(
    AwsTarget,
    {
        "regions": F(
            s.list_of(
                s.string(
                    REGION_RE,
                    what="an AWS region",
                    hint="e.g. eu-west-1",
                ),
                min_len=1,
                max_len=30,
                unique=True,
            ),
            ["eu-west-1"],
        ),
        "instance_type": F(
            s.string(r"[a-z][a-z0-9-]*\.[a-z0-9]+", what="an instance type", hint="e.g. t3.small"),
            "t3.small",
        ),
        "subnet_id": F(s.optional(s.string(r"subnet-[0-9a-f]{8,17}", what="a subnet id")), None),
        "kms_key_id": F(
            s.optional(
                s.string(
                    r"alias/[A-Za-z0-9/_-]{1,250}|[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}"
                    r"|arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/[A-Za-z0-9/_-]+",
                    what="a KMS key id, alias or ARN",
                )
            ),
            None,
        ),
        "volume_size": F(s.integer(2, 1024, unit="GiB"), 8),
        "data_volume_size": F(
            s.integer(2, 1024, unit="GiB"),
            4,
            "the second volume: /var, /var/tmp, /var/log, /var/log/audit and /home",
        ),
        "share": F(SHARE, {}),
        "verify_via": F(s.enum("ssh", "ssm"), "ssh"),
        "instance_profile": F(
            s.optional(
                s.string(
                    r"[A-Za-z0-9+=,.@_-]{1,128}"
                    r"|arn:aws[a-z-]*:iam::[0-9]{12}:instance-profile/[A-Za-z0-9+=,.@_/-]{1,128}",
                    what="an IAM instance profile name or ARN",
                )
            ),
            None,
            "the verification instance's profile when verify_via is ssm",
        ),
    },
    _check_aws_target,
)

TARGETS = s.record(Targets, {"local": F(LOCAL_TARGET, {}), "aws": F(AWS_TARGET, {})})

PUBLISH = s.record(
    Publish,
    {
        "channels": F(
            s.list_of(
                s.string(CHANNEL_RE, what="a channel name (a-z, 0-9, -)"), min_len=1, unique=True
            ),
            ["latest"],
        ),
    },
)

ROLL = s.record(
    Roll,
    {
        "selector": F(
            s.str_map(
                s.string(r"[A-Za-z0-9 _.:/=+@-]{1,128}", what="a tag key"),
                s.string(r"[A-Za-z0-9 _.:/=+@-]{0,256}", what="a tag value", allow_empty=True),
            ),
            {},
            "tags that select the auto-scaling groups to roll",
        ),
        "min_healthy": F(s.integer(0, 100, unit="%"), 90),
        "max_healthy": F(s.integer(100, 200, unit="%"), 100),
        "warmup": F(_seconds, 300),
        "checkpoints": F(s.list_of(s.integer(1, 100, unit="%"), max_len=10), []),
        "checkpoint_delay": F(s.integer(0, 172_800, unit="seconds"), 0),
        "alarms": F(
            s.list_of(
                s.string(r"[^\x00-\x1f]{1,255}", what="a CloudWatch alarm name"),
                max_len=10,
                unique=True,
            ),
            [],
        ),
        "bake_time": F(s.integer(0, 43_200, unit="seconds"), 0),
        "auto_rollback": F(s.boolean, True),
        "skip_matching": F(s.boolean, True),
        "scale_in_protected": F(s.enum("Refresh", "Ignore", "Wait"), "Ignore"),
        "standby": F(s.enum("Terminate", "Ignore", "Wait"), "Ignore"),
        "canary_percentage": F(s.integer(0, 100, unit="%"), 0),
        "timeout": F(s.integer(60, 172_800, unit="seconds"), 7200),
    },
    _check_roll,
)

RETENTION = s.record(
    Retention,
    {
        "keep": F(s.integer(1, 1000), 5),
        "min_age_days": F(s.integer(0, 3650, unit="days"), 7),
    },
)

_steps = s.list_of(STEP, max_len=50)


def _provision(value: Any, path: Path_, ctx: s.Ctx) -> tuple[Step, ...]:
    steps = _steps(value, path, ctx)
    _check_steps(steps, path, ctx)
    return steps


IMAGE_FIELDS: dict[str, F] = {
    "name": F(s.string(NAME_RE, what="a lower-case name (a-z, 0-9, -)")),
    "description": F(s.string(max_len=500), help="one line saying what the image is for"),
    "base": F(BASE, {}, "the distribution release, its architecture and where images come from"),
    "packages": F(s.list_of(_package, unique=True), []),
    "provision": F(_provision, []),
    "hardening": F(HARDENING, {}),
    "patch": F(PATCH, {}),
    "targets": F(TARGETS, {}),
    "publish": F(PUBLISH, {}),
    "roll": F(ROLL, {}),
    "retention": F(RETENTION, {}),
}


def _image(value: Any, path: Path_, ctx: s.Ctx) -> ImageSpec:
    def build(**kwargs: Any) -> ImageSpec:
        return ImageSpec(files=ctx.doc.files, **kwargs)

    return s.record(build, IMAGE_FIELDS)(value, path, ctx)


# ---- entry points -------------------------------------------------------------------------------


class Catalog:
    """The image definitions of one project: names, resolution and validated specs."""

    def __init__(
        self, images_dir: Path, scripts_dir: Path | None = None, display_root: str = "images"
    ):
        self.files = ImageFiles(images_dir, display_root)
        self.scripts_dir = scripts_dir

    def names(self) -> list[str]:
        return self.files.names()

    def load(self, name: str, today: dt.date | None = None) -> ImageSpec:
        if not (self.files.root / f"{name}.yaml").is_file():
            known = ", ".join(self.files.names()) or "none"
            raise SpecError(
                f"no image named {name!r}", f"known images: {known}", file=self.files.display(name)
            )
        own = self.files.raw(name)
        doc = self.files.resolve(name)
        data = dict(doc.data)
        # ``name`` is never inherited: it is the image's own file name unless it says otherwise
        if "name" in own.data:
            data["name"] = own.data["name"]
            doc.locs[("name",)] = own.locs[("name",)]
        else:
            data["name"] = name
        doc.data = data
        ctx = s.Ctx(doc, today or dt.date.today())
        try:
            spec = _image(data, (), ctx)
        except Invalid:
            ctx.done()  # every problem of the definition at once
            raise
        except SpecError as exc:  # a whole-document check
            ctx.errors.append(exc)
            ctx.done()
        if spec.name != name:
            ctx.report(
                ("name",),
                f"must match the file name ({name!r}, got {spec.name!r})",
                f"rename the file to {spec.name}.yaml or drop the name key",
            )
        kind = distro.instance_arch(spec.targets.aws.instance_type)
        if kind != spec.base.arch:
            ctx.report(
                ("targets", "aws", "instance_type"),
                f"{spec.targets.aws.instance_type} is an {distro.EC2_ARCH[kind]} instance type, "
                f"but the base is {spec.base.arch}",
                "Graviton types (t4g, m7g, c7g …) for arm64, others for amd64; or change base.arch",
            )
        if self.scripts_dir is not None:
            for i, step in enumerate(spec.provision):
                if not (self.scripts_dir / step.script).is_file():
                    ctx.report(
                        ("provision", i, "script"),
                        f"no script {step.script} in packer/scripts/",
                        "add the script or fix its name",
                    )
        ctx.done()
        return spec

    def load_all(self, today: dt.date | None = None) -> list[ImageSpec]:
        return [self.load(n, today) for n in self.names()]
