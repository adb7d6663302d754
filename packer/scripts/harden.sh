#!/bin/sh
# Harden: the baseline every image ships with, on both targets. Each block names the controls it
# satisfies (dev-sec ssh-baseline / linux-baseline ids, CIS Debian Linux 12 sections); the
# testinfra suite in tests/hardening proves them on the booted image.
set -eu
export DEBIAN_FRONTEND=noninteractive

# enable only what is not enabled yet: for a unit with a SysV script `systemctl enable` runs
# update-rc.d, which takes seconds under emulation even when there is nothing to do
enable() {
    for unit in "$@"; do
        systemctl is-enabled --quiet "$unit" 2>/dev/null || systemctl enable --quiet "$unit"
    done
}

# -- packages: audit, MAC, time sync, password quality, a host firewall and file integrity in;
#    network services an image does not need and legacy clear-text clients out (CIS 2.1.x, 2.2.x,
#    2.3.1.1, 3.1.3, 4.1.1, 5.3.1.x, 6.1.1.4, 6.3.1). A role's own server (nginx for web) is kept.
# (one package listing and one comparison, not a command per package: each costs a fraction
# of a second under emulation)
installed=/run/bakehouse-installed
# the lines of stdin that are (-x) or are not (-xv) installed packages; no line is an answer,
# a grep that failed (status 2) is not
pick() { grep -F "$1" -f "$installed" || [ $? -eq 1 ]; }
dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' | awk '$1 == "ii" { print $2 }' > "$installed"
need=$(printf '%s\n' auditd apparmor systemd-timesyncd libpam-pwquality nftables aide aide-common \
           acct fdisk | pick -xv)
if [ -n "$need" ]; then
    # shellcheck disable=SC2086
    apt-get -q -y --no-install-recommends install $need
fi
purge=$(printf '%s\n' telnet telnetd inetutils-telnet inetutils-telnetd rsh-client rsh-server \
           rsh-redone-client nis ypserv tftp tftpd tftpd-hpa atftpd tftp-hpa inetutils-inetd \
           openbsd-inetd xinetd talk talkd ldap-utils rpcbind autofs isc-dhcp-server \
           kea-dhcp4-server bind9 dnsmasq vsftpd ftp tnftp inetutils-ftp slapd dovecot-imapd \
           dovecot-pop3d nfs-kernel-server cups samba snmpd squid bluez chrony ntp ntpsec ufw \
           iptables-persistent rsyslog | pick -x)
rm -f "$installed"
if [ -n "$purge" ]; then
    # shellcheck disable=SC2086
    apt-get -q -y purge $purge
fi
enable auditd.service apparmor.service systemd-timesyncd.service nftables.service acct.service
# sshd as a service, not socket-activated (Ubuntu 22.10 and later): only then do Port and
# ListenAddress in sshd_config apply as written, and sshd runs from boot
if systemctl is-enabled --quiet ssh.socket 2>/dev/null; then
    systemctl disable ssh.socket
fi
enable ssh.service

# -- AppArmor: every profile loaded enforces or complains (CIS 1.3.1.3). AppArmor 4 (Debian 13)
#    ships profiles in "unconfined" mode for desktop programs that use user namespaces; none of
#    them is on a server image, so they are disabled: the image never loads them.
install -d -m 0755 /etc/apparmor.d/disable
for profile in /etc/apparmor.d/*; do
    [ -f "$profile" ] || continue
    if grep -Eq 'flags=\([^)]*\bunconfined\b' "$profile"; then
        ln -sf "$profile" "/etc/apparmor.d/disable/$(basename "$profile")"
    fi
done

# -- sshd (dev-sec ssh-baseline sshd-*, CIS 5.2.x). Debian reads sshd_config.d first: first value wins.
install -d -m 0755 /etc/ssh/sshd_config.d
cat > /etc/ssh/sshd_config.d/10-bakehouse.conf <<'CONF'
Protocol 2
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_rsa_key
PermitRootLogin no
PasswordAuthentication no
PermitEmptyPasswords no
KbdInteractiveAuthentication no
HostbasedAuthentication no
IgnoreRhosts yes
IgnoreUserKnownHosts yes
KerberosAuthentication no
GSSAPIAuthentication no
TCPKeepAlive no
X11UseLocalhost yes
PrintMotd no
PrintLastLog no
DebianBanner no
PubkeyAuthentication yes
X11Forwarding no
AllowAgentForwarding no
AllowTcpForwarding no
PermitTunnel no
GatewayPorts no
PermitUserEnvironment no
MaxAuthTries 3
MaxSessions 10
MaxStartups 10:30:100
LoginGraceTime 30
ClientAliveInterval 300
ClientAliveCountMax 3
StrictModes yes
UseDNS no
UsePAM yes
Compression no
LogLevel VERBOSE
SyslogFacility AUTH
Banner /etc/issue.net
Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr
MACs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com
KexAlgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512
HostKeyAlgorithms ssh-ed25519,rsa-sha2-512,rsa-sha2-256
CONF
chmod 0600 /etc/ssh/sshd_config /etc/ssh/sshd_config.d/10-bakehouse.conf
# Diffie-Hellman group exchange: only moduli of 2048 bits and more (dev-sec sshd-48)
awk '$5 >= 2047' /etc/ssh/moduli > /etc/ssh/moduli.strong
mv /etc/ssh/moduli.strong /etc/ssh/moduli
chmod 0644 /etc/ssh/moduli
# host-based authentication is off: ssh-keysign needs no set-uid bit (dev-sec os-06)
if [ -e /usr/lib/openssh/ssh-keysign ] && ! dpkg-statoverride --list /usr/lib/openssh/ssh-keysign >/dev/null; then
    dpkg-statoverride --update --add root root 0755 /usr/lib/openssh/ssh-keysign
fi
# Ubuntu 22.04's aide-common needs a mail transport (msmtp-mta, in its base): msmtp is set-gid
# to read a system-wide relay password, and the image configures no relay (os-06)
if [ -e /usr/bin/msmtp ] && ! dpkg-statoverride --list /usr/bin/msmtp >/dev/null; then
    dpkg-statoverride --update --add root root 0755 /usr/bin/msmtp
fi
# a root filesystem that never booted (the local chroot build) has no host keys yet: throwaway
# ones for the test, removed at once (none ship: hostkeys.sh)
throwaway=""
if ! ls /etc/ssh/ssh_host_*_key >/dev/null 2>&1; then
    ssh-keygen -A >/dev/null
    throwaway=yes
fi
install -d -m 0755 /run/sshd
sshd -t
if [ -n "$throwaway" ]; then
    rm -f /etc/ssh/ssh_host_*
fi
printf 'Authorized use only. Activity is logged.\n' > /etc/issue.net
printf 'Authorized use only. Activity is logged.\n' > /etc/issue
chmod 0644 /etc/issue /etc/issue.net
rm -f /etc/motd

# -- kernel and network (dev-sec sysctl-*, CIS 3.3.x and 1.5.x)
cat > /etc/sysctl.d/90-bakehouse.conf <<'CONF'
net.ipv4.ip_forward = 0
net.ipv4.conf.all.send_redirects = 0
net.ipv4.conf.default.send_redirects = 0
net.ipv4.conf.all.accept_redirects = 0
net.ipv4.conf.default.accept_redirects = 0
net.ipv4.conf.all.secure_redirects = 0
net.ipv4.conf.default.secure_redirects = 0
net.ipv6.conf.all.accept_redirects = 0
net.ipv6.conf.default.accept_redirects = 0
net.ipv4.conf.all.accept_source_route = 0
net.ipv4.conf.default.accept_source_route = 0
net.ipv6.conf.all.accept_source_route = 0
net.ipv6.conf.default.accept_source_route = 0
net.ipv4.conf.all.rp_filter = 1
net.ipv4.conf.default.rp_filter = 1
net.ipv4.conf.all.log_martians = 1
net.ipv4.conf.default.log_martians = 1
net.ipv4.icmp_echo_ignore_broadcasts = 1
net.ipv4.icmp_ignore_bogus_error_responses = 1
net.ipv4.tcp_syncookies = 1
net.ipv4.tcp_rfc1337 = 1
net.ipv4.icmp_ratelimit = 100
net.ipv4.icmp_ratemask = 88089
net.ipv4.conf.all.arp_ignore = 1
net.ipv4.conf.all.arp_announce = 2
net.ipv4.conf.all.forwarding = 0
net.ipv6.conf.all.accept_ra = 0
net.ipv6.conf.default.accept_ra = 0
net.ipv6.conf.all.forwarding = 0
kernel.randomize_va_space = 2
kernel.yama.ptrace_scope = 1
kernel.dmesg_restrict = 1
kernel.kptr_restrict = 2
kernel.sysrq = 0
kernel.core_uses_pid = 1
kernel.unprivileged_bpf_disabled = 1
net.core.bpf_jit_harden = 2
fs.suid_dumpable = 0
fs.protected_hardlinks = 1
fs.protected_symlinks = 1
fs.protected_fifos = 2
fs.protected_regular = 2
CONF
chmod 0644 /etc/sysctl.d/90-bakehouse.conf

# -- core dumps off (dev-sec os-10, CIS 1.5.x)
install -d -m 0755 /etc/security/limits.d /etc/systemd/coredump.conf.d
printf '* hard core 0\n* soft core 0\n' > /etc/security/limits.d/90-bakehouse.conf
printf '[Coredump]\nStorage=none\nProcessSizeMax=0\n' > /etc/systemd/coredump.conf.d/90-bakehouse.conf

# -- unused filesystems and protocols cannot be loaded (dev-sec os-10, CIS 1.1.1.x, 3.4.x)
: > /etc/modprobe.d/bakehouse-disabled.conf
for mod in cramfs freevxfs hfs hfsplus jffs2 udf squashfs usb-storage dccp sctp rds tipc firewire-core; do
    printf 'install %s /bin/false\nblacklist %s\n' "$mod" "$mod" >> /etc/modprobe.d/bakehouse-disabled.conf
done
chmod 0644 /etc/modprobe.d/bakehouse-disabled.conf

# -- /tmp and /dev/shm: nodev, nosuid, noexec (CIS 1.1.2.x, 1.1.8.x)
install -d -m 0755 /etc/systemd/system/tmp.mount.d
if [ -f /usr/share/systemd/tmp.mount ] && [ ! -e /etc/systemd/system/tmp.mount ]; then
    cp /usr/share/systemd/tmp.mount /etc/systemd/system/tmp.mount
fi
printf '[Mount]\nOptions=mode=1777,strictatime,nosuid,nodev,noexec,size=50%%%%,nr_inodes=1m\n' \
    > /etc/systemd/system/tmp.mount.d/90-bakehouse.conf
enable tmp.mount
if ! grep -qs '^[^#].*[[:space:]]/dev/shm[[:space:]]' /etc/fstab; then
    printf 'tmpfs /dev/shm tmpfs defaults,nodev,nosuid,noexec 0 0\n' >> /etc/fstab
fi

# -- host firewall: nftables, every base chain dropping by default; loopback, replies, SSH, DHCP
#    and ICMP in; a role opens its own ports in /etc/nftables.d/*.nft (CIS 4.1.1, 4.3.x)
install -d -m 0755 /etc/nftables.d
cat > /etc/nftables.conf <<'NFT'
#!/usr/sbin/nft -f
# bakehouse: default deny in and through; out is allowed (and tracked)
flush ruleset
table inet filter {
    chain input {
        type filter hook input priority 0; policy drop;
        iif "lo" accept
        ip saddr 127.0.0.0/8 counter drop
        ip6 saddr ::1 counter drop
        ct state established,related accept
        ct state invalid drop
        meta l4proto icmp accept
        meta l4proto icmpv6 accept
        udp dport 68 accept
        udp dport 546 accept
        tcp dport 22 accept
    }
    chain forward {
        type filter hook forward priority 0; policy drop;
    }
    chain output {
        type filter hook output priority 0; policy drop;
        oif "lo" accept
        ct state established,related,new accept
    }
}
include "/etc/nftables.d/*.nft"
NFT
chmod 0700 /etc/nftables.conf
nft -c -f /etc/nftables.conf
# name resolution answers only this machine: no LLMNR or multicast DNS listening on the network
install -d -m 0755 /etc/systemd/resolved.conf.d
printf '[Resolve]\nLLMNR=no\nMulticastDNS=no\n' > /etc/systemd/resolved.conf.d/90-bakehouse.conf
chmod 0644 /etc/systemd/resolved.conf.d/90-bakehouse.conf

# -- accounts and login (dev-sec os-05, os-05b, CIS 5.4.x)
set_def() {
    if grep -Eq "^[#[:space:]]*$1[[:space:]]" /etc/login.defs; then
        sed -i -E "s|^[#[:space:]]*$1[[:space:]].*|$1\t$2|" /etc/login.defs
    else
        printf '%s\t%s\n' "$1" "$2" >> /etc/login.defs
    fi
}
set_def PASS_MAX_DAYS 365
set_def PASS_MIN_DAYS 1
set_def PASS_WARN_AGE 7
set_def UMASK 027
set_def ENCRYPT_METHOD YESCRYPT
set_def LOGIN_RETRIES 5
set_def LOGIN_TIMEOUT 60
set_def HOME_MODE 0750
# accounts lock 45 days after their password expires (CIS 5.4.1.5)
useradd -D -f 45
for home in /home/*; do
    [ -d "$home" ] && chmod 0750 "$home"
done
# login shells: a 15-minute idle timeout and umask 027 (CIS 5.4.3.2, 5.4.3.3)
cat > /etc/profile.d/90-bakehouse.sh <<'PROFILE'
umask 027
TMOUT=900
readonly TMOUT
export TMOUT
PROFILE
chmod 0644 /etc/profile.d/90-bakehouse.sh
# su only for members of an empty group: nobody (CIS 5.2.7)
getent group sugroup >/dev/null || groupadd sugroup
if ! grep -Eq '^[[:space:]]*auth[[:space:]]+required[[:space:]]+pam_wheel\.so.*group=sugroup' /etc/pam.d/su; then
    sed -i '/^auth[[:space:]]*sufficient[[:space:]]*pam_rootok\.so/a auth       required   pam_wheel.so use_uid group=sugroup' /etc/pam.d/su
fi

# -- passwords: quality, history, lockout, no empty passwords (CIS 5.3.x)
install -d -m 0755 /etc/security/pwquality.conf.d
cat > /etc/security/pwquality.conf.d/90-bakehouse.conf <<'CONF'
minlen = 14
difok = 2
maxrepeat = 3
maxsequence = 3
dictcheck = 1
enforcing = 1
enforce_for_root
CONF
printf 'deny = 5\nunlock_time = 900\n' > /etc/security/faillock.conf
cat > /usr/share/pam-configs/bakehouse-faillock <<'PAM'
Name: bakehouse: lock an account after failed logins (pam_faillock)
Default: yes
Priority: 0
Auth-Type: Primary
Auth:
	[default=die] pam_faillock.so authfail
PAM
cat > /usr/share/pam-configs/bakehouse-faillock-notify <<'PAM'
Name: bakehouse: count failed logins, reset on success (pam_faillock)
Default: yes
Priority: 1024
Auth-Type: Primary
Auth:
	requisite pam_faillock.so preauth
Account-Type: Primary
Account:
	required pam_faillock.so
PAM
cat > /usr/share/pam-configs/bakehouse-pwhistory <<'PAM'
Name: bakehouse: remember the last 24 passwords (pam_pwhistory)
Default: yes
Priority: 1024
Password-Type: Primary
Password:
	requisite pam_pwhistory.so remember=24 enforce_for_root try_first_pass use_authtok
PAM
sed -i 's/[[:space:]]nullok\b//' /usr/share/pam-configs/unix
pam-auth-update --package --enable bakehouse-faillock bakehouse-faillock-notify bakehouse-pwhistory
touch /etc/security/opasswd
chown root:root /etc/security/opasswd
chmod 0600 /etc/security/opasswd

# -- journald is the one logging system: kept on disk, compressed, not forwarded to a syslog
#    daemon (CIS 6.1.1.x, 6.1.2.2-6.1.2.4)
install -d -m 0755 /etc/systemd/journald.conf.d
printf '[Journal]\nStorage=persistent\nCompress=yes\nForwardToSyslog=no\n' \
    > /etc/systemd/journald.conf.d/90-bakehouse.conf
chmod 0644 /etc/systemd/journald.conf.d/90-bakehouse.conf
# A vendor drop-in read after ours would turn forwarding back on (Debian 13 ships
# /usr/lib/systemd/journald.conf.d/syslog.conf with ForwardToSyslog=yes): a /dev/null link of
# the same name in /etc masks it.
for vendor in /usr/lib/systemd/journald.conf.d/*.conf; do
    [ -e "$vendor" ] || continue
    if grep -Eq '^[[:space:]]*ForwardToSyslog[[:space:]]*=' "$vendor"; then
        ln -sf /dev/null "/etc/systemd/journald.conf.d/$(basename "$vendor")"
    fi
done

# -- system accounts cannot log in
awk -F: '($3 < 1000 && $1 != "root" && $1 != "sync" && $1 != "shutdown" && $1 != "halt") {print $1":"$7}' /etc/passwd |
    while IFS=: read -r user shell; do
        case "$shell" in
        /usr/sbin/nologin|/sbin/nologin|/bin/false|/usr/bin/false) ;;
        *) usermod -s /usr/sbin/nologin "$user" ;;
        esac
    done

# -- file permissions (dev-sec os-03, os-04, CIS 6.1.x)
chown root:root /etc/passwd /etc/group /etc/passwd- /etc/group- 2>/dev/null || true
chmod 0644 /etc/passwd /etc/group
chmod 0600 /etc/passwd- /etc/group- 2>/dev/null || true
chown root:shadow /etc/shadow /etc/gshadow
chmod 0640 /etc/shadow /etc/gshadow
chown root:shadow /etc/shadow- /etc/gshadow- 2>/dev/null || true
chmod 0640 /etc/shadow- /etc/gshadow- 2>/dev/null || true
for path in /etc/crontab /etc/cron.hourly /etc/cron.daily /etc/cron.weekly /etc/cron.monthly /etc/cron.d; do
    [ -e "$path" ] || continue
    chown root:root "$path"
    if [ -d "$path" ]; then chmod 0700 "$path"; else chmod 0600 "$path"; fi
done
chown root:root /etc/shells
chmod 0644 /etc/shells
# log files: readable by their owner and group only (CIS 6.1.4.1)
find /var/log -type f -perm /0137 ! -name wtmp ! -name btmp ! -name lastlog \
    -exec chmod g-wx,o-rwx {} +
rm -f /etc/cron.deny /etc/at.deny
printf 'root\n' > /etc/cron.allow
printf 'root\n' > /etc/at.allow
chmod 0640 /etc/cron.allow /etc/at.allow

# -- audit rules (CIS 4.1.x): identity, privilege use, time, modules, mounts; immutable last
install -d -m 0750 /etc/audit/rules.d
cat > /etc/audit/rules.d/90-bakehouse.rules <<'RULES'
-w /etc/passwd -p wa -k identity
-w /etc/group -p wa -k identity
-w /etc/shadow -p wa -k identity
-w /etc/gshadow -p wa -k identity
-w /etc/sudoers -p wa -k scope
-w /etc/sudoers.d -p wa -k scope
-w /etc/ssh/sshd_config -p wa -k sshd
-w /var/log/sudo.log -p wa -k actions
-a always,exit -F arch=b64 -S adjtimex,settimeofday,clock_settime -k time-change
-a always,exit -F arch=b64 -S sethostname,setdomainname -k system-locale
-a always,exit -F arch=b64 -S init_module,finit_module,delete_module -k modules
-a always,exit -F arch=b64 -S mount -F auid>=1000 -F auid!=unset -k mounts
-a always,exit -F arch=b64 -C euid!=uid -F euid=0 -F auid>=1000 -F auid!=unset -S execve -k privileged
-e 2
RULES
chmod 0640 /etc/audit/rules.d/90-bakehouse.rules

# -- sudo logs every command (CIS 5.2.2, 5.2.3)
printf 'Defaults use_pty\nDefaults logfile="/var/log/sudo.log"\n' > /etc/sudoers.d/10-bakehouse
chmod 0440 /etc/sudoers.d/10-bakehouse
visudo -cq

# -- file integrity: AIDE's baseline of this image, checked daily (CIS 6.3.1, 6.3.2). The
#    database is made last (cleanup.sh) so that it describes the image that ships. Its scope is
#    what an immutable image must never change: boot files, configuration, programs and
#    libraries (Debian's default set of 1,300 rules takes minutes to apply under emulation);
#    what every instance makes at first boot is left out.
install -d -m 0755 /etc/aide
cat > /etc/aide/aide.conf <<'CONF'
# bakehouse: the image's file-integrity baseline (made at bake time, checked daily)
database_in=file:/var/lib/aide/aide.db
database_out=file:/var/lib/aide/aide.db.new
database_new=file:/var/lib/aide/aide.db.new
gzip_dbout=yes
report_ignore_e2fsattrs=VNIE
num_workers=100%
Image = p+u+g+ftype+n+i+s+b+l+m+c+sha256
/boot Image
/etc Image
/usr/bin Image
/usr/sbin Image
/usr/lib Image
/usr/libexec Image
!/etc/machine-id$
!/etc/ssh/ssh_host_
!/etc/resolv\.conf$
!/etc/adjtime$
!/etc/\.pwd\.lock$
!/etc/mtab$
CONF
# parallel hashing came with AIDE 0.18 (Ubuntu 22.04 has 0.17, which rejects the key)
if dpkg --compare-versions "$(dpkg-query -W -f='${Version}' aide)" lt 0.18~; then
    sed -i '/^num_workers=/d' /etc/aide/aide.conf
fi
chmod 0644 /etc/aide/aide.conf
aide --config=/etc/aide/aide.conf --config-check
# AIDE 0.18's package runs the daily check from a systemd timer; 0.17's only from cron, which
# the image does not have: the same timer, made here
if [ ! -e /lib/systemd/system/dailyaidecheck.timer ] && [ ! -e /usr/lib/systemd/system/dailyaidecheck.timer ]; then
    cat > /etc/systemd/system/dailyaidecheck.service <<'UNIT'
[Unit]
Description=Daily AIDE check of the image's file-integrity baseline
ConditionPathExists=/var/lib/aide/aide.db

[Service]
Type=oneshot
Nice=19
IOSchedulingClass=idle
ExecStart=/usr/bin/aide --config=/etc/aide/aide.conf --check
UNIT
    cat > /etc/systemd/system/dailyaidecheck.timer <<'UNIT'
[Unit]
Description=Daily AIDE check

[Timer]
OnCalendar=daily
RandomizedDelaySec=1h
Persistent=true

[Install]
WantedBy=timers.target
UNIT
    chmod 0644 /etc/systemd/system/dailyaidecheck.service /etc/systemd/system/dailyaidecheck.timer
fi
enable dailyaidecheck.timer

echo "harden: done"
