#!/bin/sh
# C compiler for the -Zbuild-std musl targets (see musl-link.sh), built
# from Debian's glibc cross gcc and Debian's musl-dev:<arch> (no musl cross
# toolchain is packaged). TERN_MUSL_GNU and TERN_MUSL as in musl-link.sh.
# Header order matters: gcc's own headers, then musl's, and only after them
# (-idirafter) the glibc cross dir, which is there for the kernel headers
# (linux/, asm/) musl does not ship. musl's headers must win so that C code
# sees musl's struct layouts and its 64-bit time_t with the __*_time64
# symbol redirects, not glibc 2.36's 32-bit time_t.
# Used by scripts/cross-build.sh as CC_<target>.
set -e
gcc=${TERN_MUSL_GNU:?set by scripts/cross-build.sh}-gcc
musl_inc=/usr/include/${TERN_MUSL:?set by scripts/cross-build.sh}
[ -d "$musl_inc" ] || {
    echo "musl-cc: $musl_inc missing: run scripts/install-cross-deps.sh" >&2
    exit 1
}
exec "$gcc" -nostdinc \
    -isystem "$("$gcc" -print-file-name=include)" \
    -isystem "$musl_inc" \
    -idirafter "/usr/$TERN_MUSL_GNU/include" \
    "$@"
