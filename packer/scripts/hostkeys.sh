#!/bin/sh
# SSH host keys: none ship in an image; each machine generates its own at first boot, before
# sshd starts. Runs in the guest as a Packer step (before cleanup.sh), and on the host for the
# local base, from packer/base/customize.sh, with BAKEHOUSE_ROOT set to the new root filesystem.
set -eu
root="${BAKEHOUSE_ROOT:-}"

cat > "$root/etc/systemd/system/bakehouse-ssh-hostkeys.service" <<'UNIT'
[Unit]
Description=Generate this instance's SSH host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
if [ -n "$root" ]; then
    chroot "$root" systemctl enable bakehouse-ssh-hostkeys.service
else
    systemctl enable bakehouse-ssh-hostkeys.service
fi
rm -f "$root"/etc/ssh/ssh_host_*
echo "hostkeys: first-boot generation enabled, none shipped"
