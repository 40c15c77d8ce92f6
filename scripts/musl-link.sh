#!/bin/sh
# Linker for the musl targets whose std is built with -Zbuild-std
# (armv7-unknown-linux-musleabihf, aarch64-unknown-linux-musl on nightly;
# rustc runs it with -C link-self-contained=no): a fully static link
# against Debian's musl-dev:<arch> with gcc's libgcc/libgcc_eh from the
# glibc cross gcc. scripts/cross-build.sh sets TERN_MUSL_GNU (the cross
# gcc's triple, e.g. arm-linux-gnueabihf) and TERN_MUSL (Debian's musl
# multiarch name, e.g. arm-linux-musleabihf).
# Rust's std asks for -lunwind; gcc's libgcc_eh provides the same _Unwind_*
# ABI, so -lunwind is dropped and libgcc_eh linked instead.
# rustc's musl targets default to static-pie; musl's rcrt1.o would then be
# needed, but crt1.o + crtbeginT.o (plain static) is what gcc supports here,
# so -static-pie/-pie become -static -no-pie (the code is PIC either way).
# The name must not end in "-ld": rustc would guess the ld linker flavour.
set -e
gcc=${TERN_MUSL_GNU:?set by scripts/cross-build.sh}-gcc
musl_lib=/usr/lib/${TERN_MUSL:?set by scripts/cross-build.sh}
[ -f "$musl_lib/crt1.o" ] || {
    echo "musl-link: $musl_lib/crt1.o missing: run scripts/install-cross-deps.sh" >&2
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
extra=
if [ "$TERN_MUSL_GNU" = aarch64-linux-gnu ]; then
    # aarch64's libgcc_eh (built for glibc 2.35+) finds unwind tables with
    # glibc's _dl_find_object, which musl lacks. Our aarch64 build-std
    # profile aborts on panic without unwinding (panic=immediate-abort), so
    # the unwinder never runs: a stand-in that reports "no object" (the
    # unwinder then finds no frame info) only satisfies the linker.
    shim=$(mktemp -d)
    trap 'rm -rf "$shim"' EXIT
    printf 'int _dl_find_object(void *pc, void *result) { (void)pc; (void)result; return -1; }\n' |
        "$gcc" -x c -O2 -fPIC -c -o "$shim/dl_find_object.o" -
    extra="$shim/dl_find_object.o"
fi
"$gcc" -nostdlib -static -no-pie \
    "$musl_lib/crt1.o" "$musl_lib/crti.o" "$gcc_dir/crtbeginT.o" \
    "$@" \
    -L"$musl_lib" -L"$gcc_dir" \
    -Wl,-Bstatic -Wl,--start-group -lc -lgcc -lgcc_eh -Wl,--end-group \
    $extra "$gcc_dir/crtend.o" "$musl_lib/crtn.o"
