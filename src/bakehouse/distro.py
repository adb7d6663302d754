"""Distribution families: everything bakehouse needs to know of a distribution, behind one
interface, so that the lifecycle and the targets never name one.

A :class:`Family` says where its archive is (per architecture), which suites make a release
and which of them carries security updates, which key signs its indexes (pinned by
fingerprint), what a local base needs (kernel, core packages, keyring for the bootstrap), how
its images are found on AWS (the publisher's public parameter and account) and who logs in.
A :class:`Release` is one version of a family, named by its codename in a definition
(``base.local.suite``). ``FAMILIES`` is the registry; adding a family is a class and an entry.

Version comparison is dpkg's for every family here (Debian and Ubuntu both ship .deb); an rpm
family would bring its own (see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bakehouse.errors import SpecError

ARCHES = ("amd64", "arm64")
# EC2's name for each architecture (DescribeImages' architecture, filters)
EC2_ARCH = {"amd64": "x86_64", "arm64": "arm64"}
KEYRINGS = Path(__file__).resolve().parent / "keyrings"
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")  # debian-archive-keyring


@dataclass(frozen=True)
class Suite:
    """One signed index: a suite of a mirror, with the components and architecture read."""

    mirror: str
    name: str  # trixie, trixie-updates, trixie-security, noble-security …
    components: tuple[str, ...]
    arch: str = "amd64"
    keyring: Path = DEBIAN_KEYRING  # whose keys sign it
    signers: tuple[str, ...] = ()  # pinned primary key fingerprints; () = any key of the keyring

    @property
    def security(self) -> bool:
        """The suite that carries security updates (Debian's and Ubuntu's -security)."""
        return self.name.endswith("-security")

    def url(self, path: str) -> str:
        return f"{self.mirror.rstrip('/')}/dists/{self.name}/{path}"


@dataclass(frozen=True)
class Release:
    family: str
    codename: str
    version: str  # "13", "24.04"
    kernel: str  # the local target's kernel package (amd64)
    status: str = "supported"
    # core packages this release has no package of, because another one ships them (22.04's
    # systemd carries systemd-resolved; 24.04 split it out)
    built_in: tuple[str, ...] = ()
    # what the release's base needs besides the core (22.04's aide-common depends on a mail
    # program, and that on a mail transport: msmtp-mta is one with no daemon running and no
    # set-id program, where the default would be postfix with its snakeoil TLS key)
    extra: tuple[str, ...] = ()
    # the bootstrap merges /usr itself: 22.04 predates the usr-is-merged package that makes
    # later releases merged whatever bootstraps them
    merge_usr: bool = False

    @property
    def id(self) -> str:
        """``debian-13``, ``ubuntu-24.04``: the release in SBOMs and the suite's context."""
        return f"{self.family}-{self.version}"

    @property
    def title(self) -> str:
        return f"{FAMILIES[self.family].title} {self.version} ({self.codename})"

    @property
    def distro(self) -> Family:
        return FAMILIES[self.family]


class Family:
    name = ""
    title = ""
    components: tuple[str, ...] = ("main",)  # the default
    allowed_components: tuple[str, ...] = ("main",)
    keyring = Path()
    signers: tuple[str, ...] = ()  # primary key fingerprints allowed to sign; () = the keyring
    ssh_username = ""
    ami_owner = ""  # the publisher's AWS account
    releases: tuple[Release, ...] = ()

    def mirror(self, arch: str) -> str:
        raise NotImplementedError

    def security_mirror(self, arch: str) -> str:
        raise NotImplementedError

    def suites(
        self,
        release: Release,
        mirror: str,
        security_mirror: str,
        components: tuple[str, ...],
        arch: str,
    ) -> list[Suite]:
        """The release, its updates and its security suite — every index a patch level is read
        from; only the security one counts as security updates."""
        keys = (self.keyring, self.signers)
        return [
            Suite(mirror, release.codename, components, arch, *keys),
            Suite(mirror, f"{release.codename}-updates", components, arch, *keys),
            Suite(security_mirror, f"{release.codename}-security", components, arch, *keys),
        ]

    def ssm_parameter(self, release: Release, arch: str) -> str:
        """The publisher's public SSM parameter naming its current AMI."""
        raise NotImplementedError

    def sbom_id(self, release: Release) -> str:
        return release.id


class Debian(Family):
    name = "debian"
    title = "Debian"
    allowed_components = ("main", "contrib", "non-free", "non-free-firmware")
    keyring = DEBIAN_KEYRING
    ssh_username = "admin"
    ami_owner = "136693071363"
    releases = (
        Release("debian", "bookworm", "12", "linux-image-cloud-amd64", "lts"),
        Release("debian", "trixie", "13", "linux-image-cloud-amd64"),
    )

    def mirror(self, arch: str) -> str:
        return "http://deb.debian.org/debian"

    def security_mirror(self, arch: str) -> str:
        return "http://deb.debian.org/debian-security"

    def ssm_parameter(self, release: Release, arch: str) -> str:
        return f"/aws/service/debian/release/{release.version}/latest/{arch}"


class Ubuntu(Family):
    name = "ubuntu"
    title = "Ubuntu"
    components = ("main", "universe")
    allowed_components = ("main", "restricted", "universe", "multiverse")
    # Ubuntu Archive Automatic Signing Key (2018), from ubuntu-keyring 2023.11.28.1-0.2 in
    # Debian 13's signed main archive (README: "Ubuntu's archive key")
    keyring = KEYRINGS / "ubuntu-archive-2018.gpg"
    signers = ("F6ECB3762474EDA9D21B7022871920D1991BC93C",)
    ssh_username = "ubuntu"
    ami_owner = "099720109477"  # Canonical
    releases = (
        # 22.04's kvm kernel has neither process accounting nor SysRq control: the generic one
        Release(
            "ubuntu",
            "jammy",
            "22.04",
            "linux-image-virtual",
            built_in=("systemd-resolved",),
            extra=("msmtp-mta",),
            merge_usr=True,
        ),
        Release("ubuntu", "noble", "24.04", "linux-image-kvm"),
    )

    def mirror(self, arch: str) -> str:
        # amd64 (and i386) are on the archive; every other architecture on ports
        return (
            "http://archive.ubuntu.com/ubuntu"
            if arch == "amd64"
            else "http://ports.ubuntu.com/ubuntu-ports"
        )

    def security_mirror(self, arch: str) -> str:
        return (
            "http://security.ubuntu.com/ubuntu"
            if arch == "amd64"
            else "http://ports.ubuntu.com/ubuntu-ports"
        )

    def ssm_parameter(self, release: Release, arch: str) -> str:
        volume = "ebs-gp3" if release.version >= "24.04" else "ebs-gp2"
        return (
            f"/aws/service/canonical/ubuntu/server/{release.version}/stable/current/{arch}/hvm/"
            f"{volume}/ami-id"
        )


FAMILIES: dict[str, Family] = {f.name: f for f in (Debian(), Ubuntu())}
RELEASES: dict[str, Release] = {r.codename: r for f in FAMILIES.values() for r in f.releases}


def release(codename: str) -> Release:
    try:
        return RELEASES[codename]
    except KeyError:
        raise SpecError(
            f"unknown release {codename!r}", f"known: {', '.join(sorted(RELEASES))}"
        ) from None


def instance_arch(instance_type: str) -> str:
    """The architecture of an EC2 instance type: Graviton families carry a ``g`` among the
    letters after the generation (t4g, m7gd, c6gn, x2gd, im4gn, g5g), and a1 is Graviton 1;
    everything else here is x86-64 (g4dn: the family is g, its attributes dn)."""
    family = instance_type.split(".", 1)[0]
    letters, digits, attributes = "", "", ""
    for ch in family:
        if not digits and ch.isalpha():
            letters += ch
        elif ch.isdigit() and not attributes:
            digits += ch
        else:
            attributes += ch
    if family == "a1" or "g" in attributes.split("-", 1)[0]:
        return "arm64"
    return "amd64"
