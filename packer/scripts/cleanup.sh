#!/bin/sh
# Cleanup: nothing from the build may ship. No keys or password for the build user, an empty
# machine-id, no apt lists, logs, shell history or temporary files. (SSH host keys: hostkeys.sh,
# the step before this one.)
set -eu
export DEBIAN_FRONTEND=noninteractive

# Build user and root: no authorized keys, no password, no cloud credentials, no history.
for home in /root /home/*; do
    [ -d "$home" ] || continue
    rm -f "$home/.ssh/authorized_keys" "$home/.ssh/authorized_keys2" \
          "$home/.bash_history" "$home/.python_history" "$home/.lesshst" "$home/.viminfo" \
          "$home/.wget-hsts"
    rm -rf "$home/.aws" "$home/.cache"
done
for user in root ${BAKEHOUSE_BUILD_USER:-admin}; do
    if getent passwd "$user" >/dev/null; then
        usermod -p '*' "$user"
    fi
done

# The kernel and initrd copies the local bake downloaded (manifest.sh)
rm -rf /var/lib/bakehouse/boot

# Packages: caches and indexes are rebuilt by whoever needs them.
apt-get -q -y autoremove --purge
apt-get -q clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old

# Identity: every instance gets its own machine-id at first boot.
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id /var/lib/systemd/random-seed /var/lib/systemd/credential.secret

# Logs and temporary files.
find /var/log -type f \( -name '*.gz' -o -name '*.[0-9]' -o -name '*.old' \) -delete
find /var/log -type f -exec truncate -s 0 {} +
# journald keeps writing (and recreates its machine-id folder) until power-off: send it to the
# volatile /run/log/journal for the rest of this boot first, or the build's journal ships
if [ -d /run/systemd/system ]; then  # a booted machine, not the local chroot build
    journalctl --relinquish-var
fi
rm -rf /var/log/journal/*
find /tmp /var/tmp -mindepth 1 -delete 2>/dev/null || true

# File integrity: AIDE's baseline describes the image as it ships, so it is made last.
if command -v aide >/dev/null; then
    aide --config=/etc/aide/aide.conf --init >/dev/null
    mv /var/lib/aide/aide.db.new /var/lib/aide/aide.db
    chmod 0600 /var/lib/aide/aide.db
    rm -rf /var/log/aide/*
fi

sync
if [ -d /run/systemd/system ]; then  # (in a chroot it would trim this machine's disks)
    fstrim -a 2>/dev/null || true
fi
echo "cleanup: done"
