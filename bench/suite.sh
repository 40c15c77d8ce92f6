#!/usr/bin/env bash
# The benchmark suite, one command: tern beside Debian's Postfix, written to
# docs/benchmarks.md and docs/benchmarks.png from one run (issue 15).
#
#   bench/suite.sh                 full run (3 repetitions, ~25 minutes)
#   BENCH_QUICK=1 bench/suite.sh   quick run (1 repetition, fewer messages)
#   BENCH_CROSS=1 bench/suite.sh   also cross-build every board first (slow)
#
# BENCH_REPS=N overrides the repetitions. Run as root from anywhere; not
# part of the tests. Steps: bench dependencies (scripts/install-bench-deps.sh),
# the slow-flash shim (bench/slowsync.c) and the qemu instruction counter
# (bench/qemu_insn.c), the release build and the bench binaries, binary
# sizes per board, instructions per message and per TLS handshake
# (bench/callgrind.sh: valgrind natively, the qemu plugin for the aarch64
# build if one exists), the measurements (bench/suite.rs), the plot
# (bench/plot.py).
set -euo pipefail
BENCH_T0=$(date +%s)
export BENCH_T0
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
quick=${BENCH_QUICK:-}
[ "$quick" = 0 ] && quick=
out=$root/target/bench
mkdir -p "$out"
[ "$(id -u)" -eq 0 ] || { echo "bench/suite.sh: run as root" >&2; exit 2; }

"$root/scripts/install-bench-deps.sh"

cc -Wall -Wextra -O2 -shared -fPIC -o "$out/slowsync.so" bench/slowsync.c -ldl
cc -Wall -Wextra -O2 -shared -fPIC -o "$out/qemu_insn.so" bench/qemu_insn.c
chmod 755 "$out/slowsync.so" "$out/qemu_insn.so"

cargo build --release
cargo bench --no-run --bench suite --bench tls_load
loadgen=$(ls -t target/release/deps/tls_load-* | grep -v '\.d$' | head -n1)

# Binary sizes: the native release build and every board's cross build.
limit=2621440
{
    echo "Stripped release binaries (\`ls -l\`); the board limit is $limit bytes."
    echo
    echo "| build | bytes | of the limit |"
    echo "|---|---|---|"
    s=$(stat -c %s target/release/tern)
    echo "| native x86_64 glibc (this machine) | $s | – |"
    for conf in boards/*.conf; do
        b=$(basename "$conf" .conf)
        if [ -n "${BENCH_CROSS:-}" ]; then
            scripts/cross-build.sh "$b" --no-smoke >"$out/cross-$b.log" 2>&1 ||
                echo "cross-build of $b failed, see $out/cross-$b.log" >&2
        fi
        bin=target/cross/$b/tern
        if [ -f "$bin" ]; then
            s=$(stat -c %s "$bin")
            echo "| $b ($(sed -n 's/^# target:[[:space:]]*//p' "$conf"), built $(date -u -r "$bin" '+%F %H:%M UTC')) | $s | $(awk -v s="$s" -v l="$limit" 'BEGIN { printf "%.1f %%", 100 * s / l }') |"
        else
            echo "| $b | not built (\`BENCH_CROSS=1\` or \`scripts/cross-build.sh $b\`) | – |"
        fi
    done
} >"$out/sizes.md"

# Instructions per message and per handshake.
if [ -n "$quick" ]; then msgs=50 shakes=20; else msgs=200 shakes=50; fi
{
    echo "Instructions executed by tern's daemon per relayed message (accept, queue, sync, deliver, remove; 1 session, plain, 1024-byte payload) and per full TLS handshake (connect, EHLO, STARTTLS, handshake, QUIT; with an RSA-2048 and with an ECDSA P-256 server certificate): the difference between a run with 1+N of them and a run with 1, divided by N (\`bench/callgrind.sh\`). The first message and the first handshake after start cost more (one-time initialisation); that extra is in its own column."
    echo
    echo "| build | counted with | per message | first message, extra | per handshake, RSA-2048 | first, extra | per handshake, ECDSA P-256 | first, extra | start + stop, no traffic |"
    echo "|---|---|---|---|---|---|---|---|---|"
    row() { # label counter output-of-callgrind.sh
        local per fm rsa frsa ec fec base
        per=$(sed -n 's/.* \([0-9]*\) per message .*/\1/p' <<<"$3")
        fm=$(sed -n 's/.* per message .*the first costs \(-*[0-9]*\) more.*/\1/p' <<<"$3")
        rsa=$(sed -n 's/.* \([0-9]*\) per TLS handshake RSA-2048 .*/\1/p' <<<"$3")
        frsa=$(sed -n 's/.* per TLS handshake RSA-2048 .*the first costs \(-*[0-9]*\) more.*/\1/p' <<<"$3")
        ec=$(sed -n 's/.* \([0-9]*\) per TLS handshake ECDSA-P256 .*/\1/p' <<<"$3")
        fec=$(sed -n 's/.* per TLS handshake ECDSA-P256 .*the first costs \(-*[0-9]*\) more.*/\1/p' <<<"$3")
        base=$(sed -n 's/.*: \([0-9]*\) instructions at start and stop.*/\1/p' <<<"$3")
        echo "| $1 | $2 | ${per:-failed} | ${fm:-failed} | ${rsa:-failed} | ${frsa:-failed} | ${ec:-failed} | ${fec:-failed} | ${base:-failed} |"
    }
    r=$(bench/callgrind.sh -n "$msgs" -H "$shakes" -g "$loadgen" target/release/tern 2>&1 || true)
    echo "$r" >"$out/callgrind-native.log"
    row "native x86_64 glibc" "valgrind --tool=callgrind ($msgs messages, $shakes handshakes)" "$r"
    arm=target/cross/openwrt-aarch64/tern
    if [ -f "$arm" ]; then
        r=$(QEMU_CPU=cortex-a53 bench/callgrind.sh -q "$out/qemu_insn.so" -n "$msgs" -H "$shakes" -g "$loadgen" "$arm" 2>&1 || true)
        echo "$r" >"$out/callgrind-aarch64.log"
        row "openwrt-aarch64 (musl, cortex-a53)" "qemu-aarch64 $(qemu-aarch64 --version | sed -n '1s/.*version \([^ ]*\).*/\1/p') + bench/qemu_insn.c plugin ($msgs messages, $shakes handshakes)" "$r"
    else
        echo "| openwrt-aarch64 | not built (\`BENCH_CROSS=1\`) | – | – | – | – | – | – | – |"
    fi
    echo
    echo "aarch64: Debian's qemu-user is built with TCG plugin support but ships no plugin; \`bench/qemu_insn.c\` is a 60-line plugin (QEMU plugin API v1) that adds each translated block's instruction count to a counter when the block runs, so the figure is guest (AArch64) instructions retired, the same quantity callgrind's Ir counts on x86_64. Instruction counts say nothing of cache misses or the crypto extensions' speed; time on a board ≈ instructions / (clock × IPC; Cortex-A53 IPC is roughly 0.7–1 on such code)."
} >"$out/insn.md"

BENCH_OUT=$out BENCH_DOC=$root/docs/benchmarks.md BENCH_SHIM=$out/slowsync.so \
    BENCH_INSN=$out/insn.md BENCH_SIZES=$out/sizes.md BENCH_QUICK=$quick \
    cargo bench --bench suite

/usr/bin/python3 bench/plot.py "$out/results.csv" "$root/docs/benchmarks.png"
echo "bench/suite.sh: wrote docs/benchmarks.md and docs/benchmarks.png"
