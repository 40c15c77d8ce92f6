#!/usr/bin/env bash
# Checks the sans-I/O rule of the protocol cores (src/smtp/, src/policy/,
# src/dns/wire.rs and its tests): no async runtime, no files, no sockets, no
# clock, and no logging in the hop planner (policy/plan.rs), which reports
# events instead. Drivers own all of that; a core that reaches for it can no
# longer be tested byte by byte or fuzzed.
#
# Usage: scripts/check-sans-io.sh [PATH...]
# Without arguments it checks the cores from the repository root; with
# arguments it checks those files and directories (*.rs below them), which is
# how the check itself is tried on a file with a violation. Prints
# file:line for each violation and exits 1 if there is any.
#
# Address types (IpAddr, SocketAddr, ...) are allowed: they are data. Lines
# that are comments (// , ///, //!) are ignored; a word in a string literal
# is not told apart from code, so say it another way there.
set -euo pipefail

if [ $# -eq 0 ]; then
    cd "$(dirname "$0")/.."
    set -- src/smtp src/policy src/dns/wire.rs src/dns/wire_tests.rs \
        src/mtasts/http.rs src/mtasts/policy.rs src/mtasts/record.rs \
        src/tlsrpt/event.rs src/tlsrpt/record.rs src/tlsrpt/counters.rs src/tlsrpt/report.rs \
        src/tlsrpt/gzip.rs src/tlsrpt/mail.rs src/tlsrpt/dkim.rs src/smtpd/anvil.rs
fi

# rule name, then an extended regex (GNU grep: \b is a word boundary).
rules=(
    "async runtime (smol)" '\bsmol\b'
    "async I/O crate" '\basync_(io|net)\b'
    "file system (std::fs)" '\bstd::fs\b|\buse std::\{[^}]*\bfs\b'
    "socket type" '\b(TcpStream|TcpListener|UdpSocket|UnixStream|UnixDatagram|UnixListener)\b'
    "clock" '\b(Instant|SystemTime)::now\b'
)
# Only in the hop planner: it returns events and never logs.
plan_rules=(
    "logging (log::) in the planner" '\blog::'
)

files=()
for p in "$@"; do
    if [ -d "$p" ]; then
        while IFS= read -r f; do files+=("$f"); done < <(find "$p" -type f -name '*.rs' | sort)
    elif [ -f "$p" ]; then
        files+=("$p")
    else
        # A misspelt path must not make the check pass by checking nothing.
        echo "check-sans-io: $p: no such file or directory" >&2
        exit 2
    fi
done

found=0
check() {
    local file=$1 what=$2 re=$3 hit
    while IFS= read -r hit; do
        [ -n "$hit" ] || continue
        echo "$file:${hit%%:*}: $what: ${hit#*:}"
        found=1
    done < <(grep -nE "$re" "$file" | grep -vE '^[0-9]+:[[:space:]]*//' || true)
}

for f in "${files[@]}"; do
    for ((i = 0; i < ${#rules[@]}; i += 2)); do
        check "$f" "${rules[i]}" "${rules[i + 1]}"
    done
    case "$f" in
    policy/plan.rs | */policy/plan.rs)
        for ((i = 0; i < ${#plan_rules[@]}; i += 2)); do
            check "$f" "${plan_rules[i]}" "${plan_rules[i + 1]}"
        done
        ;;
    esac
done

if [ "$found" -ne 0 ]; then
    echo "check-sans-io: the cores above must leave I/O, time and logging to their drivers" >&2
    exit 1
fi
