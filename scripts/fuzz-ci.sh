#!/usr/bin/env bash
# Runs every fuzz target in fuzz/fuzz_targets/ for FUZZ_SECONDS (default
# 10) from its checked-in seed corpus (fuzz/corpus/TARGET/, made by
# fuzz/seeds.py). Part of scripts/test.sh; docs/fuzzing.md has the longer
# run and docs/reliability.md the CI budget.
#
# Stable toolchain, no cargo-fuzz: the targets are built with the flags
# cargo-fuzz passes to rustc for libFuzzer's coverage (SanitizerCoverage
# with inline 8-bit counters, PC table and comparison tracing; `--cfg
# fuzzing`), plus debug assertions and overflow checks, minus the address
# sanitizer (which needs nightly; tern's own code is safe Rust). A fresh
# CI machine needs nothing more than the toolchain the build already has.
#
# New inputs libFuzzer finds go to a scratch directory, never into the
# checked-in corpus. A crash, leak, timeout or out-of-memory fails the
# run; its input is kept in fuzz/artifacts/TARGET/ and printed as hex, to
# become a unit test (docs/fuzzing.md).
#
#   scripts/fuzz-ci.sh                      all targets, 10 s each
#   FUZZ_SECONDS=300 scripts/fuzz-ci.sh smtp_command dns_reply
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-10}
export CARGO_INCREMENTAL=0
host=$(rustc -vV | sed -n 's/^host: //p')
# --target makes RUSTFLAGS skip build scripts and proc macros, as with
# cargo-fuzz (instrumented build scripts do not link).
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cdebug-assertions -Coverflow-checks"
t0=$(date +%s)
cargo build --manifest-path fuzz/Cargo.toml --release --target "$host" \
    --target-dir target/fuzz-ci --bins
bin=target/fuzz-ci/$host/release
built=$(date +%s)
echo "fuzz-ci: built in $((built - t0)) s"

if [ $# -gt 0 ]; then
    targets="$*"
else
    targets=$(ls fuzz/fuzz_targets/ | sed -n 's/\.rs$//p' | sort)
fi
scratch=$(mktemp -d /tmp/tern-fuzz-ci.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
failed=""
for t in $targets; do
    seeds=fuzz/corpus/$t
    if [ ! -d "$seeds" ] || [ -z "$(ls -A "$seeds")" ]; then
        echo "fuzz-ci: $t has no seed corpus in $seeds (python3 fuzz/seeds.py)" >&2
        failed="$failed $t"
        continue
    fi
    mkdir -p "$scratch/$t" "fuzz/artifacts/$t"
    log=$scratch/$t.log
    # -timeout: one input may take 10 s (PBKDF2 in smtpd_passwd is the
    # slowest); -rss_limit_mb: the default, stated.
    if "$bin/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" \
        "$scratch/$t" "$seeds" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
        echo "fuzz-ci: $t ok: ${runs:-?} runs, ${cov:-cov: ?}"
    else
        echo "fuzz-ci: $t FAILED:" >&2
        tail -40 "$log" >&2
        for a in "fuzz/artifacts/$t"/*; do
            [ -f "$a" ] || continue
            echo "fuzz-ci: $t input $a (hex): $(od -An -tx1 -v "$a" | tr -d ' \n' | head -c 4096)" >&2
        done
        failed="$failed $t"
    fi
done
echo "fuzz-ci: $(echo $targets | wc -w) targets x ${secs} s in $(( $(date +%s) - built )) s (build $((built - t0)) s)"
if [ -n "$failed" ]; then
    echo "fuzz-ci: failed:$failed" >&2
    exit 1
fi
