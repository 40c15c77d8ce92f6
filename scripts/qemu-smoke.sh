#!/usr/bin/env bash
# End-to-end smoke test of a (cross-built) tern binary under qemu-user.
#
#   scripts/qemu-smoke.sh BINARY [--board CONF] [--cpu CPU] [--arch ARCH] [--strict]
#
# ARCH (aarch64, arm, native) defaults to the ELF header's machine field;
# CPU is qemu's -cpu model (cortex-a53, cortex-a7) so that an instruction the
# board lacks faults here too. CONF is a boards/*.conf profile: its settings
# are checked with its queue_directory moved to a temporary directory.
#
# Each step is a function step_NAME listed in STEPS. A step that needs a
# sub-command the binary does not list in `tern --help`/`tern help` is
# skipped, or fails with --strict; a listed sub-command that misbehaves
# always fails. Extend by adding a function and its name to STEPS.
set -uo pipefail

STEPS=(version check_config sendmail mailq daemon_start daemon_sendmail daemon_stop)

die() { echo "qemu-smoke: $*" >&2; exit 2; }

bin='' conf='' cpu='' arch='' strict=0
while [ $# -gt 0 ]; do
    case "$1" in
        --board) shift; conf=${1:?} ;;
        --cpu) shift; cpu=${1:?} ;;
        --arch) shift; arch=${1:?} ;;
        --strict) strict=1 ;;
        -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
        -*) die "unknown option $1" ;;
        *) bin=$1 ;;
    esac
    shift
done
[ -f "$bin" ] || die "usage: $0 BINARY [--board CONF] [--cpu CPU] [--arch ARCH] [--strict]"
[ -z "$conf" ] || [ -f "$conf" ] || die "no board profile $conf"

if [ -z "$arch" ]; then
    # e_machine, little-endian u16 at offset 18 of the ELF header.
    case $(od -An -tu2 -j18 -N2 "$bin" | tr -d ' ') in
        183) arch=aarch64 ;;
        40) arch=arm ;;
        62) arch=native ;;
        *) die "$bin: not an aarch64, arm or x86-64 ELF file; pass --arch" ;;
    esac
fi
case "$arch" in
    native) runner=() ;;
    aarch64 | arm) runner=("qemu-$arch" ${cpu:+-cpu "$cpu"}) ;;
    *) die "unknown --arch $arch" ;;
esac
[ ${#runner[@]} -eq 0 ] || command -v "${runner[0]}" >/dev/null ||
    die "${runner[0]} not found: run scripts/install-cross-deps.sh"

tmp=$(mktemp -d)
daemon_pid=''
cleanup() {
    [ -z "$daemon_pid" ] || kill -KILL "$daemon_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
# The daemon drops to nobody when run as root: it must reach the spool.
chmod 755 "$tmp"
out=$tmp/out
# Every run is bounded in time; stdin is empty unless a step redirects it.
tern() { timeout 30 "${runner[@]}" "$bin" "$@"; }

# The test config: the board's settings, queue in the temp dir.
mkdir -p "$tmp/spool"
if [ -n "$conf" ]; then
    sed '/^[[:space:]]*queue_directory[[:space:]]*=/d' "$conf" >"$tmp/tern.conf"
else
    : >"$tmp/tern.conf"
fi
echo "queue_directory = $tmp/spool" >>"$tmp/tern.conf"
# As root, check-config and the daemon need the mail_owner account, which a
# package creates on the board; a build machine may not have it.
if [ "$(id -u)" = 0 ] && ! id "$(sed -n 's/^[[:space:]]*mail_owner[[:space:]]*=[[:space:]]*//p' "$tmp/tern.conf" | tail -n1)" >/dev/null 2>&1; then
    sed -i '/^[[:space:]]*mail_owner[[:space:]]*=/d' "$tmp/tern.conf"
    echo "mail_owner = nobody" >>"$tmp/tern.conf"
fi
export TERN_CONFIG=$tmp/tern.conf

# Sub-commands the binary lists in its help text.
help=$( (tern --help; tern help) 2>&1 </dev/null)
has() { grep -Eq "(^|[[:space:]|,])$1([[:space:]|,:]|$)" <<<"$help"; }

# needs SUBCOMMAND: return 0 to run the step, else skip (3) or fail (1).
needs() {
    has "$1" && return 0
    if [ "$strict" = 1 ]; then echo "'$1' not in tern's help"; return 1; fi
    return 3
}

show() { sed 's/^/    | /' "$out" | head -n 20; }

step_version() {
    tern --version >"$out" 2>&1 </dev/null || { show; return 1; }
    [ "$strict" = 0 ] || grep -q tern "$out" || { echo "no 'tern' in --version output"; return 1; }
}

step_check_config() {
    needs check-config || return
    tern check-config -c "$TERN_CONFIG" >"$out" 2>&1 </dev/null || { show; return 1; }
}

sent=0
step_sendmail() {
    needs sendmail || return
    printf '%s\r\n' "From: root@smoke.test" "To: smoke@example.test" \
        "Subject: tern smoke test" "" "queued by qemu-smoke.sh" >"$tmp/msg"
    tern sendmail -t -i <"$tmp/msg" >"$out" 2>&1 || { show; return 1; }
    [ -n "$(find "$tmp/spool" -type f | head -n1)" ] || { echo "sendmail exited 0 but the queue is empty"; return 1; }
    sent=1
}

step_mailq() {
    needs mailq || return
    [ "$sent" = 1 ] || return 3
    tern mailq >"$out" 2>&1 </dev/null || { show; return 1; }
    grep -q 'smoke@example.test' "$out" || { echo "mailq does not list smoke@example.test"; show; return 1; }
}

# The daemon steps: a loopback listener on a free port, a relay host where
# nothing listens (every attempt defers, no DNS needed), log to a file.
# wait_for FILE TEXT SECONDS: poll until FILE contains TEXT (fixed string).
wait_for() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -qF -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "no '$2' in $1 after $3 s"
    return 1
}
# A loopback TCP port nothing listens on (bash's /dev/tcp connects).
free_port() {
    local p i
    for ((i = 0; i < 50; i++)); do
        p=$((20000 + RANDOM % 30000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
    done
    return 1
}

step_daemon_start() {
    needs run || return
    local port dead
    port=$(free_port) && dead=$(free_port) || { echo "no free port"; return 1; }
    [ "$port" != "$dead" ] || dead=$((port + 1))
    sed -E '/^[[:space:]]*(smtp_listen|submissions?_listen|relayhost|maillog_file|syslog_socket|syslog_server|mail_owner|queue_run_delay)[[:space:]]*=/d' \
        "$TERN_CONFIG" >"$tmp/daemon.conf"
    cat >>"$tmp/daemon.conf" <<EOF
smtp_listen = 127.0.0.1:$port
relayhost = [127.0.0.1]:$dead
maillog_file = $tmp/maillog
syslog_socket =
mail_owner = $([ "$(id -u)" = 0 ] && echo nobody)
queue_run_delay = 1h
EOF
    # Bounded even if SIGTERM never arrives; timeout passes signals on.
    timeout 120 "${runner[@]}" "$bin" run -f -c "$tmp/daemon.conf" >"$tmp/daemon.out" 2>&1 </dev/null &
    daemon_pid=$!
    wait_for "$tmp/maillog" "listening on 127.0.0.1:$port" 60 || { cp "$tmp/daemon.out" "$out"; show; return 1; }
    grep -q "daemon started -- version" "$tmp/maillog" || { echo "no start-up line"; return 1; }
    # The message step_sendmail queued (no daemon then) is tried at once.
    if [ "$sent" = 1 ]; then
        wait_for "$tmp/maillog" "to=<smoke@example.test>" 30 || return 1
    fi
}

step_daemon_sendmail() {
    [ -n "$daemon_pid" ] || return 3
    printf '%s\n' "Subject: tern smoke test 2" "" "queued while the daemon runs" >"$tmp/msg2"
    # queue_run_delay is 1h: only the wake-up from sendmail explains an attempt.
    tern sendmail -c "$tmp/daemon.conf" -i daemon@example.test <"$tmp/msg2" >"$out" 2>&1 || { show; return 1; }
    wait_for "$tmp/maillog" "to=<daemon@example.test>" 30 || return 1
    grep -F "to=<daemon@example.test>" "$tmp/maillog" | grep -q "status=deferred" ||
        { echo "no deferral logged"; tail -n 5 "$tmp/maillog"; return 1; }
    tern mailq -c "$tmp/daemon.conf" >"$out" 2>&1 </dev/null || { show; return 1; }
    grep -q 'daemon@example.test' "$out" && grep -q '^(connect to 127.0.0.1' "$out" ||
        { echo "mailq lacks the message or its last error"; show; return 1; }
}

step_daemon_stop() {
    [ -n "$daemon_pid" ] || return 3
    kill -TERM "$daemon_pid"
    wait "$daemon_pid"
    local rc=$?
    daemon_pid=''
    [ "$rc" = 0 ] || { echo "exit status $rc after SIGTERM"; cp "$tmp/daemon.out" "$out"; show; return 1; }
    grep -q "stopped" "$tmp/maillog" || { echo "no 'stopped' line"; return 1; }
}

pass=0 fail=0 skip=0
echo "qemu-smoke: $bin (${runner[*]:-native})"
for s in "${STEPS[@]}"; do
    "step_$s" >"$tmp/why" 2>&1
    rc=$?
    case $rc in
        0) pass=$((pass + 1)); echo "  ok    $s" ;;
        3) skip=$((skip + 1)); echo "  skip  $s (sub-command not in help)" ;;
        *) fail=$((fail + 1)); echo "  FAIL  $s"; cat "$tmp/why" ;;
    esac
done
echo "qemu-smoke: $pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
