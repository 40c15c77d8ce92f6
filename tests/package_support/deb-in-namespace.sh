#!/bin/sh
# Installs tern's .deb with dpkg into this machine's own file system as seen
# from a private mount namespace, then runs the unit's commands; used by
# tests/package_deb.rs as
#
#   unshare -m --propagation private sh deb-in-namespace.sh \
#       SCRATCH DEB OVERRIDES ALIASES 'EXECSTARTPRE' 'EXECSTART'
#
# /etc, /usr and /var become overlays whose writes land in SCRATCH/*.up, so
# dpkg, adduser and the daemon work on the real system as a packager's
# would, while the host (its Postfix, its dpkg database, its accounts) is
# untouched and everything vanishes with the namespace's last process.
# Postfix is removed inside (tern conflicts with it as every Debian MTA
# does), with a policy-rc.d that forbids its init script to stop anything.
# OVERRIDES is appended to the packaged /etc/tern/tern.conf (the test's
# ports), ALIASES to /etc/tern/aliases. The namespace's pid is the
# daemon's: the test enters it with nsenter -t PID -m.
set -eu

scratch=$1 deb=$2 overrides=$3 aliases=$4 pre=$5 start=$6

for d in etc usr var; do
    mkdir -p "$scratch/$d.up" "$scratch/$d.work"
    mount -t overlay overlay \
        -o "lowerdir=/$d,upperdir=$scratch/$d.up,workdir=$scratch/$d.work" "/$d"
done
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
if dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q 'ok installed'; then
    dpkg --remove --force-depends postfix
fi
dpkg -i "$deb"
echo "deb-in-namespace: installed"

out=$(systemd-analyze verify /lib/systemd/system/tern.service 2>&1) || {
    echo "deb-in-namespace: systemd-analyze verify failed: $out"
    exit 1
}
[ -z "$out" ] || { echo "deb-in-namespace: systemd-analyze verify: $out"; exit 1; }
echo "deb-in-namespace: systemd-analyze verify: ok"

cat "$overrides" >>/etc/tern/tern.conf
cat "$aliases" >>/etc/tern/aliases

# The unit's sandbox, as far as it can be had without systemd: its
# ReadWritePaths stay writable (a "-" path only if it exists) and so does
# the test's log directory, everything else in /, /etc, /usr and /var is
# read-only (ProtectSystem=strict), /tmp is private (PrivateTmp), and the
# commands run with no_new_privs and the unit's CapabilityBoundingSet.
unit=/lib/systemd/system/tern.service
setting() { sed -n "s/^$1=//p" "$unit" | tail -n 1; }
[ "$(setting ProtectSystem)" = strict ] || { echo "deb-in-namespace: ProtectSystem is not strict"; exit 1; }
[ "$(setting NoNewPrivileges)" = yes ] || { echo "deb-in-namespace: NoNewPrivileges is not yes"; exit 1; }
[ "$(setting PrivateTmp)" = yes ] || { echo "deb-in-namespace: PrivateTmp is not yes"; exit 1; }
mkdir -p /var/log/tern-test
for p in $(setting ReadWritePaths) /var/log/tern-test; do
    case "$p" in
        -*) p=${p#-}; [ -e "$p" ] || continue ;;
    esac
    mount --bind "$p" "$p"
done
for d in / /etc /usr /var; do
    mount -o remount,bind,ro "$d"
done
mount -t tmpfs -o mode=1777 tern-private-tmp /tmp
caps=$(setting CapabilityBoundingSet | tr '[:upper:]' '[:lower:]' | sed 's/cap_/+/g; s/ /,/g')
sandbox="setpriv --no-new-privs --bounding-set=-all,$caps --"
echo "deb-in-namespace: sandbox: $sandbox"

# The unit's command lines, as systemd would split them (they hold no
# quotes); ExecStartPre first, as the unit orders them.
# shellcheck disable=SC2086
$sandbox $pre
echo "deb-in-namespace: ExecStartPre ok; exec $start"
# shellcheck disable=SC2086
exec $sandbox $start
