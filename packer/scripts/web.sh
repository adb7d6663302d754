#!/bin/sh
# Role: nginx web front end. Hide the version, serve a static health page, start at boot.
set -eu
install -d -m 0755 /etc/nginx/conf.d
if grep -Eq '^[[:space:]]*server_tokens[[:space:]]' /etc/nginx/nginx.conf; then
    # the distribution's nginx.conf sets it (Debian 13 turns it off): a second one is an error
    sed -i -E 's/^([[:space:]]*)server_tokens[[:space:]]+[a-z]+;/\1server_tokens off;/' \
        /etc/nginx/nginx.conf
    rm -f /etc/nginx/conf.d/bakehouse-hardening.conf
else
    printf 'server_tokens off;\n' > /etc/nginx/conf.d/bakehouse-hardening.conf
fi
install -d -m 0755 /var/www/html
printf 'ok\n' > /var/www/html/healthz
chmod 0644 /var/www/html/healthz
nginx -t
systemctl is-enabled --quiet nginx.service || systemctl enable nginx.service
# the host firewall lets HTTP in (harden.sh includes /etc/nftables.d/*.nft)
install -d -m 0755 /etc/nftables.d
printf 'add rule inet filter input tcp dport 80 accept\n' > /etc/nftables.d/web.nft
chmod 0600 /etc/nftables.d/web.nft
