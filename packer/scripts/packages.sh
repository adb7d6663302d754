#!/bin/sh
# Install the image's packages (BAKEHOUSE_PACKAGES, space-separated), without recommends.
set -eu
export DEBIAN_FRONTEND=noninteractive
if [ -z "${BAKEHOUSE_PACKAGES:-}" ]; then
    echo "packages: none to install"
    exit 0
fi
# shellcheck disable=SC2086
apt-get -q -y --no-install-recommends -o Dpkg::Options::=--force-confold install $BAKEHOUSE_PACKAGES
