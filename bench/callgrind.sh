#!/usr/bin/env bash
# Instructions per relayed message, counted by valgrind's callgrind: a
# figure that does not move with the load of a shared machine, for paired
# before/after comparisons (bench/throughput's rates do move).
#
#   bench/callgrind.sh [-n MESSAGES] BIN...
#
# For each tern binary: smtp-source (1 session, 1024-byte messages) ->
# tern under callgrind -> smtp-sink, relay without TLS, as bench/throughput
# does. Each binary runs twice, with 0 and with N messages; the difference
# divided by N is the cost of one message (accept, queue, fsync, deliver),
# free of start-up and shutdown. Needs root (tern drops to nobody), valgrind
# and Postfix's smtp-source/smtp-sink; tern runs as nobody under valgrind.
# Every wait is bounded.
set -euo pipefail
n=200
if [ "${1:-}" = -n ]; then n=$2; shift 2; fi
[ $# -gt 0 ] || { echo "usage: $0 [-n MESSAGES] BIN..." >&2; exit 2; }
for t in valgrind smtp-source smtp-sink; do
    command -v "$t" >/dev/null || { echo "$0: $t not found" >&2; exit 1; }
done

free_port() {
    local p i
    for ((i = 0; i < 50; i++)); do
        p=$((20000 + RANDOM % 30000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
    done
    return 1
}
wait_port() {
    local i
    for ((i = 0; i < 600; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$0: nothing listens on $1 after 60 s" >&2
    return 1
}

# run BIN MESSAGES: prints the instructions (Ir) of tern's main process.
run() {
    local bin=$1 msgs=$2 dir sink port sinkport i
    dir=$(mktemp -d)
    # tern runs as nobody from the start: a daemon that drops root could
    # not write the profile valgrind opened as root.
    chown nobody "$dir"
    port=$(free_port) && sinkport=$(free_port)
    (cd "$dir" && exec smtp-sink -c -u nobody "127.0.0.1:$sinkport" 256 >"$dir/sink.out" 2>&1) &
    sink=$!
    wait_port "$sinkport"
    cat >"$dir/tern.conf" <<CONF
myhostname = tern.example.org
mydestination =
mynetworks = 127.0.0.0/8
smtp_listen = 127.0.0.1:$port
queue_directory = $dir/spool
maillog_file = $dir/maillog
syslog_socket =
mail_owner = nobody
dns_resolvers = 127.0.0.1:9
relayhost = [127.0.0.1]:$sinkport
smtp_tls_security_level = none
default_destination_concurrency_limit = 4
max_connections = 16
CONF
    runuser -u nobody -- valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" \
        "$bin" run -f -c "$dir/tern.conf" >"$dir/tern.out" 2>&1 &
    local vg=$!
    wait_port "$port"
    if [ "$msgs" -gt 0 ]; then
        timeout 600 smtp-source -c -l 1024 -m "$msgs" -s 1 -f bench@example.org \
            -t sink@example.net "127.0.0.1:$port" >/dev/null
        for ((i = 0; i < 6000; i++)); do
            [ "$(grep -c 'status=sent' "$dir/maillog" 2>/dev/null || true)" -ge "$msgs" ] && break
            sleep 0.1
        done
    fi
    kill -TERM "$vg"
    wait "$vg" || true
    kill "$sink" 2>/dev/null || true
    wait "$sink" 2>/dev/null || true
    # The daemon and its root helper (forked) write a file each; the
    # daemon does the work, so its count is the larger one.
    cat "$dir"/cg.* | awk '/^summary:/ && $2 > max { max = $2 } END { print max + 0 }'
    [ -n "${KEEP:-}" ] && echo "kept $dir" >&2 || rm -rf "$dir"
}

for bin in "$@"; do
    zero=$(run "$bin" 0)
    full=$(run "$bin" "$n")
    awk -v b="$bin" -v z="$zero" -v f="$full" -v n="$n" \
        'BEGIN { printf "%s: %d instructions at start and stop, %.0f per message (%d messages)\n", b, z, (f - z) / n, n }'
done
