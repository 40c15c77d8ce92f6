#!/bin/sh
# Linker for armv7-unknown-linux-musleabihf (rustc runs it with
# -C link-self-contained=no): a fully static link against Debian's
# musl-dev:armhf with gcc's libgcc/libgcc_eh from the glibc cross gcc.
# Rust's std asks for -lunwind; gcc's libgcc_eh provides the same _Unwind_*
# ABI, so -lunwind is dropped and libgcc_eh linked instead.
# rustc's musl targets default to static-pie; musl's rcrt1.o would then be
# needed, but crt1.o + crtbeginT.o (plain static) is what gcc supports here,
# so -static-pie/-pie become -static -no-pie (the code is PIC either way).
# The name must not end in "-ld": rustc would guess the ld linker flavour.
set -e
gcc=arm-linux-gnueabihf-gcc
musl_lib=/usr/lib/arm-linux-musleabihf
[ -f "$musl_lib/crt1.o" ] || {
    echo "armv7-musl-link: $musl_lib/crt1.o missing: run scripts/install-cross-deps.sh" >&2
    exit 1
}
gcc_dir=$(dirname "$("$gcc" -print-libgcc-file-name)")
[ -n "$TERN_LINK_LOG" ] && printf '%s\n' "$*" >>"$TERN_LINK_LOG"
args=
for a in "$@"; do
    case "$a" in
        -lunwind | -static-pie | -pie | -nodefaultlibs | -nostartfiles) continue ;;
    esac
    args="$args $(printf "'%s'" "$(printf '%s' "$a" | sed "s/'/'\\\\''/g")")"
done
eval "set -- $args"
exec "$gcc" -nostdlib -static -no-pie \
    "$musl_lib/crt1.o" "$musl_lib/crti.o" "$gcc_dir/crtbeginT.o" \
    "$@" \
    -L"$musl_lib" -L"$gcc_dir" \
    -Wl,-Bstatic -Wl,--start-group -lc -lgcc -lgcc_eh -Wl,--end-group \
    "$gcc_dir/crtend.o" "$musl_lib/crtn.o"
