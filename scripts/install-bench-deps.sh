#!/usr/bin/env bash
# Packages the benchmark suite (bench/suite.sh) needs beyond the test
# dependencies (scripts/install-test-deps.sh): matplotlib for the plot,
# strace for the sync and write counts, valgrind for the instruction
# counts, qemu-user for the aarch64 ones, a C compiler for the shims.
# Idempotent: installs only what is missing. Debian/Ubuntu, as root.
set -euo pipefail
want=(python3-matplotlib strace valgrind qemu-user gcc libc6-dev openssl)
missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
