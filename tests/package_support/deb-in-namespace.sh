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
# The unit's command lines, as systemd would split them (they hold no
# quotes); ExecStartPre first, as the unit orders them.
# shellcheck disable=SC2086
$pre
echo "deb-in-namespace: ExecStartPre ok; exec $start"
# shellcheck disable=SC2086
exec $start
