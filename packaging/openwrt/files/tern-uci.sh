#!/bin/sh
# Turns UCI's /etc/config/tern into tern's files; installed as
# /usr/libexec/tern-uci and run by /etc/init.d/tern.
#
#   tern-uci tern.conf|sasl_passwd|aliases|sender_canonical
#
# prints that file on standard output, or a message on standard error and
# exit 1 when the UCI values are unusable. UCI is read with config_load and
# config_get from /lib/functions.sh ($TERN_FUNCTIONS instead, off-router);
# UCI_CONFIG_DIR and TERN_HOSTNAME (else /proc/sys/kernel/hostname) are
# honoured so that scripts/check-openwrt.sh can run it here.

# shellcheck source=/dev/null
. "${TERN_FUNCTIONS:-/lib/functions.sh}"

fail() {
    echo "tern-uci: $*" >&2
    exit 1
}

# Rejects values that would end a line or start a comment in tern.conf.
plain() {
    case "$2" in
        *"
"* | *"#"*) fail "$1: newline or # not allowed: $2" ;;
    esac
}

# Set by config_get below (through eval, which shellcheck cannot follow).
listen="" lan_address="" lan_network="" relayhost="" relayport="" username=""
password="" tls="" root_alias="" sender=""
config_load tern
config_get listen main listen loopback
config_get lan_address main lan_address ""
config_get lan_network main lan_network ""
config_get relayhost main relayhost ""
config_get relayport main relayport 587
config_get username main username ""
config_get password main password ""
config_get tls main tls ""
config_get root_alias main root_alias ""
config_get sender main sender ""
for v in listen lan_address lan_network relayhost relayport username root_alias sender tls; do
    eval "plain $v \"\$$v\""
done
case "$password" in
    *"
"*) fail "password: newline not allowed" ;;
esac

# The key delivery looks up in sasl_passwd: exactly as relayhost is written.
nexthop="[$relayhost]:$relayport"

# myhostname as tern computes it: the system's name, .localdomain added
# when it has no dot.
myhostname() {
    h=${TERN_HOSTNAME:-$(cat /proc/sys/kernel/hostname)}
    case "$h" in
        *.*) echo "$h" ;;
        *) echo "$h.localdomain" ;;
    esac
}

conf() {
    echo "# Generated from /etc/config/tern by /etc/init.d/tern; edit that file"
    echo "# (or set option manual '1' there and write this one yourself)."
    # The board profile (boards/*.conf), when the package installed one.
    board=${TERN_BOARD_CONF:-/usr/share/tern/board.conf}
    if [ -f "$board" ]; then
        echo
        echo "# ---- board profile (boards/*.conf of the tern source)"
        grep -v '^#' "$board" | grep -v '^[[:space:]]*$'
        echo "# ---- /etc/config/tern"
    fi
    # /var is RAM on OpenWrt: the spool lives on flash.
    echo "queue_directory = /etc/tern/spool"
    echo "mail_owner = tern"
    case "$listen" in
        loopback)
            echo "inet_interfaces = loopback-only"
            ;;
        lan)
            [ -n "$lan_address" ] || fail "listen 'lan' needs option lan_address (the router's LAN address)"
            [ -n "$lan_network" ] || fail "listen 'lan' needs option lan_network (e.g. 192.168.1.0/24)"
            echo "inet_interfaces = 127.0.0.1, $lan_address"
            echo "mynetworks = 127.0.0.0/8 [::1]/128 $lan_network"
            ;;
        *) fail "listen: loopback or lan, not '$listen'" ;;
    esac
    if [ -n "$relayhost" ]; then
        case "$relayport" in
            '' | *[!0-9]*) fail "relayport: a number, not '$relayport'" ;;
        esac
        echo "relayhost = $nexthop"
    fi
    if [ -n "$username" ]; then
        [ -n "$relayhost" ] || fail "username without relayhost"
        echo "smtp_sasl_auth_enable = yes"
        echo "smtp_sasl_password_maps = texthash:/etc/tern/sasl_passwd"
    fi
    case "$tls" in
        '') ;;
        none | may | encrypt | verify | secure | dane | dane-only)
            echo "smtp_tls_security_level = $tls"
            ;;
        *) fail "tls: none, may, encrypt, verify, secure, dane or dane-only, not '$tls'" ;;
    esac
    [ -z "$sender" ] || echo "sender_canonical_maps = texthash:/etc/tern/sender_canonical"
}

sasl_passwd() {
    [ -n "$username" ] || return 0
    case "$username" in
        *:* | *" "* | *"	"*) fail "username: no colon or white space: $username" ;;
    esac
    [ -n "$password" ] || fail "username '$username' has no password"
    echo "$nexthop $username:$password"
}

aliases() {
    echo "# Generated from /etc/config/tern (root_alias) by /etc/init.d/tern."
    [ -z "$root_alias" ] || echo "root: $root_alias"
    echo "postmaster: root"
}

sender_canonical() {
    [ -n "$sender" ] || return 0
    echo "# Generated from /etc/config/tern (sender) by /etc/init.d/tern."
    echo "@$(myhostname) $sender"
}

case "${1:-}" in
    tern.conf) conf ;;
    sasl_passwd) sasl_passwd ;;
    aliases) aliases ;;
    sender_canonical) sender_canonical ;;
    *) fail "usage: tern-uci tern.conf|sasl_passwd|aliases|sender_canonical" ;;
esac
