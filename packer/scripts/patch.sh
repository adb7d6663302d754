#!/bin/sh
# Patch: refresh the package indexes (the security suite included) and install every pending
# update the patch policy asks for. full-upgrade, not upgrade: plain upgrade keeps a kernel with
# a new ABI back and leaves the image unpatched.
set -eu
export DEBIAN_FRONTEND=noninteractive
APT_OPTS="-q -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"

. /etc/os-release
codename="${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}"
# The release's security suite as an apt line, from bakehouse (it knows the distribution):
# e.g. "deb http://security.ubuntu.com/ubuntu noble-security main universe"
security_source="${BAKEHOUSE_SECURITY_SOURCE:-}"
case "$security_source" in
"" | *" ${codename}-security "*) ;;
*)
    echo "patch: BAKEHOUSE_SECURITY_SOURCE is not for ${codename}: $security_source" >&2
    exit 2
    ;;
esac

if ! grep -Rqs -- "${codename}-security" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    if [ -z "$security_source" ]; then
        echo "patch: no ${codename}-security suite in the apt sources, and none given" >&2
        exit 2
    fi
    echo "patch: adding the ${codename}-security suite to the apt sources"
    printf '%s\n' "$security_source" > /etc/apt/sources.list.d/bakehouse-security.list
fi

case "${BAKEHOUSE_PATCH_POLICY:-all}" in
all)
    apt-get -q update
    # shellcheck disable=SC2086
    apt-get $APT_OPTS full-upgrade
    ;;
security)
    # Resolve against the security suite alone, so only security updates are installed.
    # (one-line sources only: deb822 .sources files, as on the vendors' AMIs, need the line
    # bakehouse gives)
    lists=$(mktemp)
    grep -Rhs -- "^deb .* ${codename}-security" /etc/apt/sources.list \
        /etc/apt/sources.list.d/*.list > "$lists" || true
    if [ ! -s "$lists" ]; then
        if [ -z "$security_source" ]; then
            echo "patch: cannot find the ${codename}-security suite as an apt line" >&2
            exit 2
        fi
        printf '%s\n' "$security_source" > "$lists"
    fi
    sec="-o Dir::Etc::SourceList=$lists -o Dir::Etc::SourceParts=/nonexistent"
    # shellcheck disable=SC2086
    apt-get -q $sec update
    # shellcheck disable=SC2086
    apt-get $APT_OPTS $sec full-upgrade
    rm -f "$lists"
    apt-get -q update
    ;;
*)
    echo "patch: unknown BAKEHOUSE_PATCH_POLICY=${BAKEHOUSE_PATCH_POLICY}" >&2
    exit 2
    ;;
esac
apt-get -q -y autoremove --purge
echo "patch: $(dpkg-query -W | wc -l) packages installed"
