#!/bin/sh
# Manifest: every installed package (name, version, architecture, source package) as JSON,
# plus the kernel that the image boots, for the SBOM and patch-aware rebuilds.
set -eu
out="${BAKEHOUSE_MANIFEST:-/var/lib/bakehouse/manifest.json}"
install -d -m 0755 "$(dirname "$out")"
kernel=$(ls -1 /boot/vmlinuz-* 2>/dev/null | sed 's|^/boot/vmlinuz-||' | sort -V | tail -n 1)
{
    printf '{"kernel": "%s", "packages": [\n' "$kernel"
    dpkg-query -W -f='${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\t${source:Package}\t${source:Version}\n' |
        awk -F '\t' 'BEGIN { sep = "" } $1 ~ /^ii/ {
            printf "%s{\"name\": \"%s\", \"version\": \"%s\", \"architecture\": \"%s\", \"source\": \"%s\", \"source_version\": \"%s\"}",
                   sep, $2, $3, $4, $5, $6; sep = ",\n" }'
    printf '\n]}\n'
} > "$out.tmp"
mv "$out.tmp" "$out"
chmod 0644 "$out"
# Direct kernel boot (local target) reads the newest kernel through these links.
if [ -n "$kernel" ]; then
    ln -sfn "boot/vmlinuz-$kernel" /vmlinuz
    ln -sfn "boot/initrd.img-$kernel" /initrd.img
fi
# ...and the bake downloads both as the login user: copies it may read (Ubuntu's kernels are
# readable by root only), removed again by cleanup.sh
if [ "${BAKEHOUSE_TARGET:-}" = local ] && [ -n "$kernel" ]; then
    install -d -m 0755 /var/lib/bakehouse/boot
    install -m 0644 "/boot/vmlinuz-$kernel" /var/lib/bakehouse/boot/vmlinuz
    install -m 0644 "/boot/initrd.img-$kernel" /var/lib/bakehouse/boot/initrd.img
fi
echo "manifest: $(grep -c '"name"' "$out") packages, kernel $kernel"
