#!/bin/sh
# Run one provisioning script in a chroot of an image's root filesystem, as a step of the local
# target's chroot build (Packer's shell-local provisioner calls it through unshare, so this runs
# in mount, PID, IPC and UTS namespaces of its own: every mount below vanishes with it, whatever
# happens, and nothing on this machine is mounted or left behind).
#
#   in-root.sh ROOT SCRIPT [NAME=VALUE ...]
#
# The script sees the environment it would see as a Packer step in a VM: the NAME=VALUE pairs
# given and nothing of this machine's. It gets its own /proc, a read-only /sys, a /dev of the
# few harmless devices, empty /run and /tmp (memory only: nothing there ships), and this
# machine's resolver for apt. Services never start: bakehouse puts a policy-rc.d in the root
# for the build and removes it after. This machine's kernel settings (/proc/sys) are read-only.
# Only the package steps share this machine's network; the template runs every later step with
# unshare --net (a network namespace with nothing in it). The step runs pivoted into the root
# (this machine's root unmounted from its view, not merely chrooted away from) and without the
# capabilities to mount, chroot, load modules, make device nodes or change this machine's
# network.
set -eu
if [ "$#" -lt 2 ]; then
    echo "usage: in-root.sh ROOT SCRIPT [NAME=VALUE ...]" >&2
    exit 2
fi
root=$1
script=$2
name=$(basename "$script")
shift 2
if [ "$$" -ne 1 ]; then
    echo "in-root: not in a PID namespace of its own (run it through unshare --pid --fork)" >&2
    exit 2
fi
if [ ! -x "$root/bin/sh" ] || [ ! -d "$root/etc" ] || [ ! -x "$root/usr/sbin/policy-rc.d" ]; then
    echo "in-root: $root is not a root filesystem prepared for a build (sh, etc, policy-rc.d)" >&2
    exit 2
fi

# the step gets only these capabilities: none to mount, chroot, load modules, make device nodes,
# trace or reboot; on this machine's network (the package steps) none to change it either
caps=-all,+chown,+dac_override,+dac_read_search,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap
caps=$caps,+setfcap,+net_bind_service,+audit_write,+ipc_owner,+sys_nice,+sys_resource,+lease
if [ "$(readlink /proc/self/ns/net)" != "$(readlink /proc/1/ns/net)" ]; then
    caps=$caps,+net_admin,+net_raw,+net_broadcast  # a network namespace of its own: harmless
fi

mount --make-rprivate /
# the root becomes a mount of its own, so that it can be pivoted into and this machine's root
# unmounted from the step's view altogether (a chroot alone leaves it reachable)
mount --bind "$root" "$root"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
# this machine's kernel settings are not the image's to change (a `sysctl --system` in a step)
mount --bind "$root/proc/sys" "$root/proc/sys"
mount -o remount,bind,ro "$root/proc/sys"
if [ -e "$root/proc/sysrq-trigger" ]; then
    mount --bind /dev/null "$root/proc/sysrq-trigger"
fi
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
mount -t tmpfs -o mode=0755,nosuid,size=16m tmpfs "$root/dev"
for node in null zero full random urandom tty; do
    : > "$root/dev/$node"
    mount --bind "/dev/$node" "$root/dev/$node"
done
mkdir "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
ln -s /proc/self/fd "$root/dev/fd"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$root/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/tmp"
# apt's resolver: the image's resolv.conf points into /run (systemd-resolved's stub), which is
# this step's own; a plain file is covered for the step, never changed
if [ -L "$root/etc/resolv.conf" ]; then
    mkdir -p "$root/run/systemd/resolve"
    cp /etc/resolv.conf "$root/run/systemd/resolve/stub-resolv.conf"
    cp /etc/resolv.conf "$root/run/systemd/resolve/resolv.conf"
elif [ -f "$root/etc/resolv.conf" ]; then
    mount --bind /etc/resolv.conf "$root/etc/resolv.conf"
fi
# run as Packer would run it in a VM: by its own #! line; a failure without a network says so
install -m 0700 "$script" "$root/run/bakehouse-step"
cat > "$root/run/bakehouse-run" <<'RUN'
#!/bin/sh
status=0
/run/bakehouse-step || status=$?
if [ "$status" -ne 0 ] && [ "$(ls /sys/class/net)" = lo ]; then
    echo "in-root: $1 failed without a network: in the chroot build only patch.sh and" \
        "packages.sh reach it (list what a step needs under packages:, or set" \
        "targets.local.build: vm)" >&2
fi
exit "$status"
RUN
chmod 0700 "$root/run/bakehouse-run"
mkdir "$root/run/bakehouse-host"
cd "$root"
pivot_root . run/bakehouse-host
# from here on the image's own programs: this machine's root is gone from the step's view
cd /
umount -l /run/bakehouse-host
rmdir /run/bakehouse-host
exec setpriv --bounding-set "$caps" -- /usr/bin/env -i \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
    "$@" /run/bakehouse-run "$name"
