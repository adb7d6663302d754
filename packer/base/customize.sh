#!/bin/sh
# Customize a freshly bootstrapped Debian root filesystem into the local target's base image.
# Called by mmdebstrap as a customize hook with the root folder as $1. Part of the base image's
# content key: any change here rebuilds the base.
#
# The result boots with direct kernel boot (root=/dev/vda, a whole-disk ext4 filesystem),
# gets its network by DHCP, grows its filesystem to the disk, makes its own SSH host keys at first
# boot, and lets in the `admin` user with the public key given on the kernel command line as
# bakehouse.ssh_key=<base64> (the local target's stand-in for cloud metadata). It carries no
# password, no host key and no authorized key of its own.
set -eu
root="$1"
in_root() { chroot "$root" "$@"; }

# The apt sources the image keeps, whatever suites its packages were installed from.
if [ -n "${BAKEHOUSE_APT_SOURCES:-}" ]; then
    printf '%s\n' "$BAKEHOUSE_APT_SOURCES" > "$root/etc/apt/sources.list"
fi

printf 'bakehouse\n' > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tbakehouse\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
    > "$root/etc/hosts"
printf '/dev/vda\t/\text4\terrors=remount-ro\t0\t1\n' > "$root/etc/fstab"

# Network: DHCP on every ethernet interface through systemd-networkd and resolved.
mkdir -p "$root/etc/systemd/network"
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n' > "$root/etc/systemd/network/20-dhcp.network"
in_root systemctl enable systemd-networkd.service systemd-resolved.service
ln -sf /run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"

# Initramfs: only what a virtio machine needs, so rebuilding it (kernel updates) is quick even
# under software emulation; MODULES=list does not depend on the hardware it is built on.
# BAKEHOUSE_INITRAMFS_MODULES=most keeps Debian's default (every storage driver), like a generic
# vendor image.
if [ "${BAKEHOUSE_INITRAMFS_MODULES:-list}" = list ]; then
    printf 'MODULES=list\nCOMPRESS=zstd\n' > "$root/etc/initramfs-tools/conf.d/bakehouse.conf"
    printf 'virtio_pci\nvirtio_blk\nvirtio_net\nvirtio_scsi\next4\n' >> "$root/etc/initramfs-tools/modules"
    in_root update-initramfs -u -k all
fi

# The admin user: sudo without password (as on Debian's cloud images), no password to log in.
in_root useradd --create-home --shell /bin/bash --groups sudo admin
in_root usermod -p '*' admin
printf 'admin ALL=(ALL) NOPASSWD:ALL\n' > "$root/etc/sudoers.d/90-admin"
chmod 0440 "$root/etc/sudoers.d/90-admin"

mkdir -p "$root/usr/local/sbin"
cat > "$root/usr/local/sbin/bakehouse-ssh-key" <<'SCRIPT'
#!/bin/sh
# Install the public key handed over on the kernel command line for the admin user.
set -eu
for word in $(cat /proc/cmdline); do
    case "$word" in
    bakehouse.ssh_key=*)
        key=$(printf '%s' "${word#bakehouse.ssh_key=}" | base64 -d)
        install -d -m 0700 -o admin -g admin /home/admin/.ssh
        printf '%s\n' "$key" > /home/admin/.ssh/authorized_keys
        chown admin:admin /home/admin/.ssh/authorized_keys
        chmod 0600 /home/admin/.ssh/authorized_keys
        ;;
    esac
done
SCRIPT
chmod 0755 "$root/usr/local/sbin/bakehouse-ssh-key"
cat > "$root/etc/systemd/system/bakehouse-ssh-key.service" <<'UNIT'
[Unit]
Description=Authorize the SSH key given on the kernel command line
Before=ssh.service
ConditionKernelCommandLine=bakehouse.ssh_key

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/bakehouse-ssh-key

[Install]
WantedBy=multi-user.target
UNIT
cat > "$root/etc/systemd/system/bakehouse-growfs.service" <<'UNIT'
[Unit]
Description=Grow the root filesystem to the size of its disk
ConditionPathExists=/dev/vda

[Service]
Type=oneshot
ExecStart=/usr/sbin/resize2fs /dev/vda

[Install]
WantedBy=multi-user.target
UNIT
in_root systemctl enable bakehouse-ssh-key.service bakehouse-growfs.service
# The same first-boot host keys as every image (part of the base's content key too).
BAKEHOUSE_ROOT="$root" sh "$(dirname "$0")/../scripts/hostkeys.sh"

# A serial console for logs; no getty on it (nobody logs in there).
in_root systemctl mask serial-getty@ttyS0.service

# Identity and caches: every machine makes its own.
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin
