#!/bin/sh
# C compiler for armv7-unknown-linux-musleabihf built from Debian's glibc
# cross gcc and Debian's musl-dev:armhf (no musl cross toolchain is packaged).
# Header order matters: gcc's own headers, then musl's, and only after them
# (-idirafter) the glibc cross dir, which is there for the kernel headers
# (linux/, asm/) musl does not ship. musl's headers must win so that C code
# sees musl's struct layouts and its 64-bit time_t with the __*_time64
# symbol redirects, not glibc 2.36's 32-bit time_t.
# Used by scripts/cross-build.sh as CC_armv7_unknown_linux_musleabihf.
set -e
gcc=arm-linux-gnueabihf-gcc
musl_inc=/usr/include/arm-linux-musleabihf
[ -d "$musl_inc" ] || {
    echo "armv7-musl-cc: $musl_inc missing: run scripts/install-cross-deps.sh" >&2
    exit 1
}
exec "$gcc" -nostdinc \
    -isystem "$("$gcc" -print-file-name=include)" \
    -isystem "$musl_inc" \
    -idirafter /usr/arm-linux-gnueabihf/include \
    "$@"
