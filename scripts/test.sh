#!/usr/bin/env bash
# Installs the peer programs the tests run against (apt-get), then runs
# every check: formatting, clippy, unit and integration tests, and the
# aarch64 cross build with its smoke test under qemu. `.ci/run` calls this.
# Run it as root or as yourself with sudo (the install scripts use sudo for
# apt when not root); not through sudo, which would lose your toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh
bash scripts/install-cross-deps.sh aarch64

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
bash scripts/check-sans-io.sh
cargo test --lib --bins --tests
# Every fuzz target, 10 s each from its checked-in corpus, built on stable
# (docs/fuzzing.md; budget in docs/reliability.md: about 13 minutes cold,
# 6 with the instrumented build cached).
bash scripts/fuzz-ci.sh
bash scripts/cross-build.sh openwrt-aarch64 --strict
