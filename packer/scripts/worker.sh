#!/bin/sh
# Role: queue worker. A locked system account and a place for the application to run from.
set -eu
user="${WORKER_USER:-worker}"
if ! getent passwd "$user" >/dev/null; then
    useradd --system --home-dir /srv/worker --create-home --shell /usr/sbin/nologin "$user"
fi
passwd -l "$user" >/dev/null
chmod 0750 /srv/worker
