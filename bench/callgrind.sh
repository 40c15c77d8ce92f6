#!/usr/bin/env bash
# Instructions per relayed message (and per TLS handshake), counted by
# valgrind's callgrind for a native build, or by a qemu-user plugin for a
# cross build: figures that do not move with the load of a shared machine,
# for paired before/after comparisons (bench/throughput's rates do move)
# and for the cost on a router's ARM core (issue 15 item 6).
#
#   bench/callgrind.sh [-n MESSAGES] [-H HANDSHAKES -g LOADGEN] [-q PLUGIN] BIN...
#
# For each tern binary: smtp-source (1 session, 1024-byte messages) ->
# tern under the counter -> smtp-sink, relay without TLS, as
# bench/throughput does. Each binary runs with 0, 1 and 1+N messages; the
# difference divided by N is the cost of one message (accept, queue, fsync,
# deliver), free of start-up and shutdown. The cost of the first message,
# and of the first handshake, includes one-time work (tern initialises
# some things on first use): each count is taken over runs with 1 and
# with 1+N, and the first's extra is printed apart. With -H, more runs make
# HANDSHAKES TLS handshakes with LOADGEN (the tls_load bench binary:
# connect, EHLO, STARTTLS, handshake, QUIT), giving the cost of one
# handshake, once with an RSA-2048 and once with an ECDSA P-256
# certificate (made here with openssl, signed by a CA made here). Each has
# its own baseline run with the same certificate.
#
# -q PLUGIN: count with qemu-aarch64 and PLUGIN (bench/qemu_insn.c, built)
# instead of valgrind; BIN is then an aarch64 build (QEMU_CPU, default
# cortex-a53, picks the core). Guest instructions, not host ones.
#
# Needs root (tern runs as nobody from the start: a daemon that drops root
# could not write the profile the counter opened as root), valgrind or
# qemu-user, openssl and Postfix's smtp-source/smtp-sink. Every wait is
# bounded.
set -euo pipefail
n=200 hs=0 loadgen='' plugin=''
while [ $# -gt 0 ]; do
    case "$1" in
        -n) n=$2; shift 2 ;;
        -H) hs=$2; shift 2 ;;
        -g) loadgen=$2; shift 2 ;;
        -q) plugin=$2; shift 2 ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "usage: $0 [-n MESSAGES] [-H HANDSHAKES -g LOADGEN] [-q PLUGIN] BIN..." >&2; exit 2; }
[ "$hs" -eq 0 ] || [ -x "$loadgen" ] || { echo "$0: -H needs -g LOADGEN" >&2; exit 2; }
counter=valgrind
[ -z "$plugin" ] || counter=qemu-aarch64
for t in "$counter" smtp-source smtp-sink openssl; do
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
    for ((i = 0; i < 1200; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$0: nothing listens on $1 after 120 s" >&2
    return 1
}

# A CA and a leaf for mta.example.test, readable by nobody.
pki=$(mktemp -d)
trap 'rm -rf "$pki"' EXIT
(
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
        -subj /CN=bench-ca 2>/dev/null
    printf 'subjectAltName=DNS:mta.example.test\nbasicConstraints=CA:FALSE\n' >ext
    for k in rsa ec; do
        case $k in
            rsa) newkey=(-newkey rsa:2048) ;;
            ec) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
        esac
        openssl req "${newkey[@]}" -nodes -keyout "$k.key" -out "$k.csr" \
            -subj /CN=mta.example.test 2>/dev/null
        openssl x509 -req -in "$k.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile ext -out "$k.pem" 2>/dev/null
        cat "$k.pem" ca.pem >"$k.chain"
        chmod 644 "$k.key"
    done
)
chmod 755 "$pki"

# run BIN MESSAGES HANDSHAKES KEY: prints the instructions of tern's main
# process; KEY (rsa or ec) picks the server certificate.
run() {
    local bin=$1 msgs=$2 shakes=$3 key=${4:-rsa} dir sink port sinkport i
    dir=$(mktemp -d)
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
smtpd_tls_cert_file = $pki/$key.chain
smtpd_tls_key_file = $pki/$key.key
CONF
    if [ -n "$plugin" ]; then
        runuser -u nobody -- qemu-aarch64 -cpu "${QEMU_CPU:-cortex-a53}" \
            -plugin "$plugin,out=$dir/cg" "$bin" run -f -c "$dir/tern.conf" >"$dir/tern.out" 2>&1 &
    else
        runuser -u nobody -- valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" \
            "$bin" run -f -c "$dir/tern.conf" >"$dir/tern.out" 2>&1 &
    fi
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
    if [ "$shakes" -gt 0 ]; then
        timeout 600 "$loadgen" --handshakes --tls "$pki/ca.pem" mta.example.test \
            -s 1 -m "$shakes" --limit 590 "$port" >/dev/null
    fi
    kill -TERM "$vg"
    wait "$vg" || true
    kill "$sink" 2>/dev/null || true
    wait "$sink" 2>/dev/null || true
    # The daemon and its root helper (forked) write a file each; the
    # daemon does the work, so its count is the larger one.
    cat "$dir"/cg.* | awk '/^summary:/ { v = $2 } /^[0-9]+$/ { v = $1 }
        v > max { max = v } END { print max + 0 }'
    [ -n "${KEEP:-}" ] && echo "kept $dir" >&2 || rm -rf "$dir"
}

# per FULL BASE N: (FULL - BASE) / N, and FIRST = BASE - ZERO - that: the
# one-time cost of the first one (lazy initialisation).
per() { awk -v f="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.0f", (f - b) / n }'; }

for bin in "$@"; do
    zero=$(run "$bin" 0 0)
    one=$(run "$bin" 1 0)
    full=$(run "$bin" $((n + 1)) 0)
    p=$(per "$full" "$one" "$n")
    echo "$bin: $zero instructions at start and stop, $p per message ($n messages after a first; the first costs $((one - zero - p)) more; $counter)"
    if [ "$hs" -gt 0 ]; then
        for key in rsa ec; do
            [ "$key" = rsa ] && z=$zero || z=$(run "$bin" 0 0 "$key")
            h1=$(run "$bin" 0 1 "$key")
            hn=$(run "$bin" 0 $((hs + 1)) "$key")
            p=$(per "$hn" "$h1" "$hs")
            [ "$key" = rsa ] && k=RSA-2048 || k=ECDSA-P256
            echo "$bin: $p per TLS handshake $k ($hs handshakes after a first; the first costs $((h1 - z - p)) more; $counter)"
        done
    fi
done
