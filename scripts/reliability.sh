#!/usr/bin/env bash
# Runs the whole reliability suite (issue 16 item 6) at its long size and
# renders docs/reliability.md from what the tests measured: every part
# appends JSON lines to $TERN_RELIABILITY_OUT, scripts/render-reliability.py
# turns them into the page. Nothing in the page is typed by hand.
#
#   scripts/reliability.sh            long run, writes docs/reliability.md
#   TERN_RELIABILITY_KILLS=20 ...     any knob (see below) overrides
#   RELIABILITY_DOC=/tmp/r.md ...     render elsewhere
#
# The same tests run in CI at their small default size as part of
# `cargo test --tests` (scripts/test.sh); this script raises the knobs.
# Needs root for the full-flash part (tmpfs in a private mount namespace)
# and the peers of scripts/install-test-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

# Long-run sizes (CI defaults in brackets).
export TERN_RELIABILITY_KILLS=${TERN_RELIABILITY_KILLS:-60}            # [20] SIGKILLs per crash test
export TERN_RELIABILITY_CLIENTS=${TERN_RELIABILITY_CLIENTS:-12}        # [8] parallel SMTP clients
export TERN_RELIABILITY_BATCH=${TERN_RELIABILITY_BATCH:-60}            # [40] queued per refill (outbound kills)
export TERN_RELIABILITY_HANDSHAKES=${TERN_RELIABILITY_HANDSHAKES:-2000} # [2000] TLS handshakes
export TERN_RELIABILITY_RCPTS=${TERN_RELIABILITY_RCPTS:-10000}         # [10000] RCPT TO in one session

# Kept after the run: the page can be rendered again from it
# (python3 scripts/render-reliability.py FILE > docs/reliability.md).
out=${RELIABILITY_JSONL:-/tmp/tern-reliability.jsonl}
: >"$out"
export TERN_RELIABILITY_OUT="$out"

# Every suite part: tests/reliability_*.rs, and the power-cut replay of
# the spool's commit (tests/spool_powercut.rs, harness in tests/powercut/);
# both emit the format.
tests=()
for f in tests/reliability_*.rs tests/spool_powercut.rs; do
    [ -e "$f" ] || continue
    case "$f" in
    */main.rs) name=$(basename "$(dirname "$f")") ;;
    *) name=$(basename "$f" .rs) ;;
    esac
    tests+=(--test "$name")
done
started=$(date +%s)
# One test binary after the other, each test's own threads in parallel
# except where a part serialises itself (floods).
# The whole output is kept for a failure's post-mortem; the summary lines
# are shown as they come. Every part runs even when one fails.
log=${RELIABILITY_LOG:-/tmp/tern-reliability.log}
if ! cargo test --no-fail-fast "${tests[@]}" -- --nocapture >"$log" 2>&1; then
    grep -E '^(test |reliability:|test result)|panicked' -A8 "$log" | tail -80 >&2
    echo "reliability: a suite part failed (whole output: $log; rerun: cargo test ${tests[*]})" >&2
    exit 1
fi
grep -E '^(test |test result)' "$log" || true
took=$(( $(date +%s) - started ))

doc=${RELIABILITY_DOC:-docs/reliability.md}
python3 scripts/render-reliability.py "$out" \
    --commit "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src tests || echo +changes)" \
    --machine "$(nproc) cores $(uname -m), $(date -u +%Y-%m-%d)" \
    --took "$took" >"$doc"
echo "reliability: wrote $doc ($(wc -l <"$out") results, ${took} s)"
