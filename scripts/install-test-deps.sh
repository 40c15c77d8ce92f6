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
#   python3-venv     the venv below
#   util-linux mount unshare -m / mount --bind (mtasts_plugin)
#   python3-dkim     dkimverify: checks the DKIM signature of TLSRPT reports
#   testssl.sh       scans tern's TLS listeners (tls_testssl); Debian 12: 3.0.8
#   ShellCheck       lints the OpenWrt init script and UCI translation
#                    (package shellcheck; check-openwrt.sh)
#   g++              libFuzzer's C++ sources (libfuzzer-sys, scripts/fuzz-ci.sh)
#   systemd groff man-db dpkg-dev   systemd-analyze verify of the .deb's unit, man page
#                    rendering, dpkg-shlibdeps (build-deb.sh; package_deb, package_docs)
#
# And from PyPI, where Debian has no package, into a venv at
# $TERN_TEST_VENV (default /opt/tern-test-venv), every version pinned:
#   postfix-mta-sts-resolver   the MTA-STS socketmap plug-in (mtasts_plugin)
#   tlsrpt-reporter            sys4's TLSRPT collector (tlsrpt-collectd), the
#                              report generator Postfix 3.10 feeds; its
#                              sqlite tables are read with Python's sqlite3
#                              (tlsrpt_events); no dependencies
set -eu

VENV="${TERN_TEST_VENV:-/opt/tern-test-venv}"
# postfix-mta-sts-resolver and its dependency closure, as resolved on
# Debian 12's Python 3.11 (2026-12); bump together.
PYPI_PINS="postfix-mta-sts-resolver==1.5.1
tlsrpt-reporter==0.6.0
aiodns==4.0.4
aiohappyeyeballs==2.7.1
aiohttp==3.14.5
aiosignal==1.4.0
attrs==26.1.0
cffi==2.1.1
frozenlist==1.8.0
idna==3.21
multidict==7.2.1
propcache==0.5.4
pycares==5.2.1
pycparser==3.12
PyYAML==6.0.4
typing_extensions==4.16.0
yarl==1.25.1"

PACKAGES="postfix sasl2-bin libsasl2-modules swaks libnet-ssleay-perl socat
openssl pflogsumm nsd unbound ldnsutils bind9-dnsutils nginx-light rsyslog
iproute2 strace python3-venv util-linux mount python3-dkim testssl.sh shellcheck systemd groff man-db dpkg-dev g++"

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
# The venv is current when its stamp holds exactly these pins.
venv_current() {
    [ -x "$VENV/bin/mta-sts-daemon" ] && [ -x "$VENV/bin/tlsrpt-collectd" ] &&
        [ "$(cat "$VENV/.tern-pins" 2>/dev/null)" = "$PYPI_PINS" ]
}

if [ -z "$missing" ] && venv_current; then
    echo "install-test-deps: all installed"
    exit 0
fi

# Root for the system steps: ourselves, or sudo.
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
    echo "install-test-deps: not root: using sudo for apt-get, dpkg, debconf and $VENV"
else
    echo "install-test-deps: installing needs root, and sudo is not installed: run this script as root, or install as root:$missing $VENV" >&2
    exit 1
fi

if [ -n "$missing" ]; then
    echo "install-test-deps: installing$missing"
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
fi

if ! venv_current; then
    echo "install-test-deps: installing postfix-mta-sts-resolver and tlsrpt-reporter into $VENV"
    # Debian's python3, which python3-venv belongs to (a pyenv python3
    # may come first in PATH).
    $SUDO rm -rf "$VENV"
    $SUDO /usr/bin/python3 -m venv "$VENV"
    pins=$(mktemp)
    echo "$PYPI_PINS" >"$pins"
    $SUDO "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -r "$pins"
    rm -f "$pins"
    echo "$PYPI_PINS" | $SUDO tee "$VENV/.tern-pins" >/dev/null
fi

echo "install-test-deps: done"
