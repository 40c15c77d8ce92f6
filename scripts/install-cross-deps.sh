#!/usr/bin/env bash
# Install what scripts/cross-build.sh needs, on Debian 12. The apt and dpkg
# steps need root: run as root, or as a user with sudo (they go through
# sudo then); rustup always runs as the calling user.
#   scripts/install-cross-deps.sh [all|aarch64|armv7]     (default: all)
# Idempotent: installs only what is missing, so a second run is quick and
# touches neither apt's lists nor rustup's network.
#   aarch64-unknown-linux-musl:     nightly + rust-src (std built with -Zbuild-std and
#                                   panic=immediate-abort), Debian's aarch64 gcc and
#                                   musl-dev:arm64; stable's prebuilt std too, for
#                                   `cross-build.sh --test` and profiles without build-std
#   armv7-unknown-linux-musleabihf: nightly + rust-src (std built with -Zbuild-std),
#                                   Debian's armhf gcc and musl-dev:armhf
#   both:                           qemu-user for the smoke test and `cargo test`
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

say() { echo "install-cross-deps: $*"; }

which=${1:-all}
a64=0 arm=0
case "$which" in
    all) a64=1 arm=1 ;;
    aarch64) a64=1 ;;
    armv7) arm=1 ;;
    *) echo "usage: $0 [all|aarch64|armv7]" >&2; exit 2 ;;
esac
apt_pkgs=(qemu-user musl-tools)
[ $a64 = 0 ] || apt_pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu
    musl-dev:arm64)
[ $arm = 0 ] || apt_pkgs+=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
    binutils-arm-linux-gnueabihf musl-dev:armhf)

# Root for the system steps, asked for only when something is missing.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo env DEBIAN_FRONTEND=noninteractive "$@"
    else
        echo "install-cross-deps: '$*' needs root, and sudo is not installed: run this script as root" >&2
        exit 1
    fi
}

for arch in $([ $arm = 0 ] || echo armhf) $([ $a64 = 0 ] || echo arm64); do
    if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
        say "adding dpkg architecture $arch"
        as_root dpkg --add-architecture "$arch"
        need_update=1
    fi
done
missing=()
for p in "${apt_pkgs[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "apt-get install ${missing[*]}"
    # Lists must be fresh: a foreign architecture's were never fetched before it was added.
    as_root apt-get update -qq || say "apt-get update reported errors; trying the install anyway"
    as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
elif [ -n "${need_update:-}" ]; then
    as_root apt-get update -qq || true
fi

# Rust: the default (stable) toolchain gets aarch64-musl's prebuilt std.
if [ $a64 = 1 ] && ! rustup target list --installed --toolchain stable | grep -qx aarch64-unknown-linux-musl; then
    say "rustup target add aarch64-unknown-linux-musl"
    rustup target add --toolchain stable aarch64-unknown-linux-musl
fi
# Both board profiles build std from rust-src with nightly (armv7 has no
# std shipped for this set-up; aarch64 for panic=immediate-abort's size).
if ! rustup toolchain list | grep -q '^nightly-'; then
    say "rustup toolchain install nightly"
    rustup toolchain install nightly --profile minimal --component rust-src
fi
if ! rustup component list --installed --toolchain nightly | grep -q '^rust-src'; then
    say "rustup component add rust-src (nightly)"
    rustup component add --toolchain nightly rust-src
fi
say "ok ($which): $(qemu-aarch64 --version | head -n1)"
