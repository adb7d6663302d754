#!/bin/sh
# Filesystems: /var, /var/tmp, /var/log, /var/log/audit and /home on their own partitions of the
# image's data disk, mounted nodev and nosuid (and noexec where nothing runs from them), so that
# full logs or a user's files cannot fill the root filesystem or carry a device node or a set-id
# program (CIS 1.1.2.3-1.1.2.7). Runs last, so what it copies is what ships. The data disk is
# the one whole disk that holds neither the root filesystem nor anything yet (/dev/vdb on the
# local target, the second EBS volume on aws).
set -eu
# label, mount point, share of the disk (%), mount options, one entry per filesystem separated
# by ";"; the last takes what is left. bakehouse hands the table over (bakehouse/layout.py).
if [ -z "${BAKEHOUSE_FILESYSTEMS:-}" ]; then
    echo "filesystems: BAKEHOUSE_FILESYSTEMS is not set: no layout to make" >&2
    exit 2
fi
layout=$(printf '%s\n' "$BAKEHOUSE_FILESYSTEMS" | tr ';' '\n')

root_source=$(findmnt -no SOURCE /)
root_disk=$(lsblk -ndo PKNAME "$root_source")
[ -n "$root_disk" ] || root_disk=$(basename "$root_source")
disk=""
# (fixed disks only: Ubuntu's generic kernel also lists the emulated floppy, removable, empty)
for name in $(lsblk -bndo NAME,TYPE,RM,SIZE | awk '$2 == "disk" && $3 == 0 && $4 > 0 { print $1 }'); do
    [ "$name" = "$root_disk" ] && continue
    [ "$(lsblk -no NAME "/dev/$name" | wc -l)" -eq 1 ] || continue
    # blkid says 2 when it finds no signature at all; anything else (a filesystem, a partition
    # table, an ambiguous probe, an error) means the disk is not ours to wipe
    status=0
    blkid -p "/dev/$name" >/dev/null 2>&1 || status=$?
    if [ "$status" -eq 2 ]; then
        disk="/dev/$name"
        break
    fi
done
if [ -z "$disk" ]; then
    echo "filesystems: no empty data disk beside the root disk ($root_disk)" >&2
    lsblk >&2
    exit 1
fi


bytes=$(blockdev --getsize64 "$disk")  # a failure stops here (set -e), not in the arithmetic
mib=$(( bytes / 1048576 - 2 ))
echo "filesystems: data disk $disk, $mib MiB"
table=$(printf '%s\n' "$layout" | awk -v mib="$mib" '
    { n++; label[n] = $1; share[n] = $3 }
    END {
        print "label: gpt"
        for (i = 1; i <= n; i++) {
            if (i < n) printf "size=%dMiB, name=%s\n", mib * share[i] / 100, label[i]
            else printf "name=%s\n", label[i]
        }
    }')
printf '%s\n' "$table" | sfdisk --quiet --wipe always "$disk"
udevadm settle

# a filesystem on each partition, mounted in a staging tree the shape of the final one
stage=/run/bakehouse-filesystems
printf '%s\n' "$layout" | while read -r label target _ _; do
    dev=$(lsblk -lnpo NAME,PARTLABEL "$disk" | awk -v l="$label" '$2 == l { print $1 }')
    if [ -z "$dev" ]; then
        echo "filesystems: no partition $label on $disk" >&2
        exit 1
    fi
    mkfs.ext4 -q -L "$label" "$dev"
    mkdir -p "$stage$target"
    mount "$dev" "$stage$target"
done

# owners, modes, ACLs and extended attributes come along
cp -a /var/. "$stage/var/"
cp -a /home/. "$stage/home/"
chmod 1777 "$stage/var/tmp"
for target in /var/log/audit /var/log /var/tmp /var /home; do
    umount "$stage$target"
done
rm -rf "$stage"

# mounted at every boot by label, with their options; from now on for this boot too
printf '%s\n' "$layout" | while read -r label target _ options; do
    printf 'LABEL=%s %s ext4 defaults,%s 0 2\n' "$label" "$target" "$options" >> /etc/fstab
done
for target in /var /var/tmp /var/log /var/log/audit /home; do
    mount "$target"
done

# the root filesystem keeps empty mount points only: nothing stays hidden underneath
rootview=/run/bakehouse-rootfs
mkdir -p "$rootview"
mount --bind / "$rootview"
find "$rootview/var" "$rootview/home" -mindepth 1 -delete
umount "$rootview"
rmdir "$rootview"
for target in /var /var/tmp /var/log /var/log/audit /home; do
    findmnt -n -o TARGET,SOURCE,OPTIONS "$target"
done
echo "filesystems: done"
