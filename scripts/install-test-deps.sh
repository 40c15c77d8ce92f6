#!/bin/sh
# Installs the peer programs tern's integration tests start on loopback
# (tests/common). Debian/Ubuntu. Idempotent and non-interactive; returns in
# well under a second when all is installed (no root needed then).
# Installing needs root: run as root, or as a user with sudo (the apt-get,
# dpkg and debconf steps then go through sudo).
#
#   postfix          private instances, smtp-sink, smtp-source, posttls-finger
#   sasl2-bin        saslpasswd2 (SASL users for Postfix's submission port)
#   libsasl2-modules PLAIN/LOGIN mechanisms for Postfix smtpd and smtp
#   swaks socat      SMTP clients (scripted, raw); swaks needs
#                    libnet-ssleay-perl for --tls
#   openssl          test CA and certificates
#   pflogsumm        log summaries (tern's logs must satisfy it)
#   nsd unbound ldnsutils bind9-dnsutils   signed zones, validating resolver
#   nginx-light      MTA-STS policy host
#   rsyslog          syslog capture
#   iproute2         `ip`, for the IPv6-less network namespace (ground_listen)
#   strace           counts the maildrop path's syncs (spool_maildrop_cost)
set -eu

PACKAGES="postfix sasl2-bin libsasl2-modules swaks libnet-ssleay-perl socat
openssl pflogsumm nsd unbound ldnsutils bind9-dnsutils nginx-light rsyslog
iproute2 strace"

# One dpkg-query for all; packages it does not know print nothing.
# shellcheck disable=SC2086
installed=$(dpkg-query -W -f='${Package} ${Status}\n' $PACKAGES 2>/dev/null |
    awk '/ install ok installed$/ { sub(/:.*/, "", $1); print $1 }')
missing=""
for p in $PACKAGES; do
    if ! echo "$installed" | grep -qx "$p"; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    echo "install-test-deps: all installed"
    exit 0
fi
echo "install-test-deps: installing$missing"

# Root for the system steps: ourselves, or sudo.
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
    echo "install-test-deps: not root: using sudo for apt-get, dpkg and debconf"
else
    echo "install-test-deps: installing needs root, and sudo is not installed: run this script as root, or install as root:$missing" >&2
    exit 1
fi

# Keep postinst scripts from starting daemons on their default ports, for
# this run only: a policy-rc.d left behind would stop every later package
# install on a developer's machine from starting its service. One that was
# there before (a container's own) is left alone.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    # The trap is set before the file exists, so no exit path (error,
    # Ctrl-C, kill) can leave it behind.
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
fi

# Postfix without a system configuration: every test writes its own.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections

# env: sudo does not pass the environment on.
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing

echo "install-test-deps: done"
