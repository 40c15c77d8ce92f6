#!/usr/bin/env bash
# Build tern's release binary for one board profile, here, without a
# container engine, then smoke-test it under qemu-user.
#
#   scripts/cross-build.sh BOARD [--test] [--strict] [--no-smoke] [--example NAME] [-- TESTARGS]
#
# BOARD is a name in boards/ (openwrt-aarch64) or a path to a .conf file.
# The profile's "# target:", "# rustflags:", "# toolchain:", "# build-std:"
# and "# qemu-cpu:" header lines drive the build. Output goes to
# target/cross (CARGO_TARGET_DIR overrides); the stripped binary is copied to
# target/cross/BOARD/tern (or target/cross/BOARD/NAME for --example).
#   --test      also run `cargo test --lib [TESTARGS]` for the target under qemu-user
#   --strict    smoke test fails when a documented sub-command is missing
#   --no-smoke  skip scripts/qemu-smoke.sh
#   --example   build examples/NAME.rs instead of the tern binary (size probes)
# Missing tools: scripts/install-cross-deps.sh.
set -euo pipefail

die() { echo "cross-build: $*" >&2; exit 1; }

root=$(cd "$(dirname "$0")/.." && pwd)
test_args=()
board='' test=0 smoke=1 strict='' example=''
while [ $# -gt 0 ]; do
    case "$1" in
        --test) test=1 ;;
        --strict) strict=--strict ;;
        --no-smoke) smoke=0 ;;
        --example) shift; example=${1:?--example needs a name} ;;
        -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
        --) shift; test_args=("$@"); break ;;
        -*) die "unknown option $1" ;;
        *) [ -z "$board" ] || die "one board at a time"; board=$1 ;;
    esac
    shift
done
[ -n "$board" ] || die "usage: $0 BOARD [--test] [--strict] [--no-smoke] [--example NAME]"
case "$board" in
    */* | *.conf) conf=$board ;;
    *) conf=$root/boards/$board.conf ;;
esac
[ -f "$conf" ] || die "no board profile $conf (have: $(cd "$root/boards" && echo ./*.conf))"
conf=$(cd "$(dirname "$conf")" && pwd)/$(basename "$conf")
name=$(basename "$conf" .conf)

# "# key: value" header lines of the profile.
header() { sed -n "s/^# $1:[[:space:]]*//p" "$conf" | head -n1; }
target=$(header target)
rustflags=$(header rustflags)
toolchain=$(header toolchain)
build_std=$(header build-std)
qemu_cpu=$(header qemu-cpu)
[ -n "$target" ] || die "$conf has no '# target:' line"
toolchain=${toolchain:-stable}

# Per-target linker, C compiler and archiver. Cargo and cc-rs read these
# variables; TARGET is the triple upper-cased with '_' for '-'.
T=$(echo "$target" | tr 'a-z-' 'A-Z_')
t=$(echo "$target" | tr '-' '_')
case "$target" in
    aarch64-unknown-linux-musl)
        export TERN_MUSL_GNU=aarch64-linux-gnu TERN_MUSL=aarch64-linux-musl
        strip_tool=aarch64-linux-gnu-strip qemu=qemu-aarch64 ;;
    armv7-unknown-linux-musleabihf)
        export TERN_MUSL_GNU=arm-linux-gnueabihf TERN_MUSL=arm-linux-musleabihf
        strip_tool=arm-linux-gnueabihf-strip qemu=qemu-arm ;;
    *) die "no linker set-up for $target in $0" ;;
esac
if [ -n "$build_std" ] && [ "$build_std" != no ]; then
    # std built from source: no rustup std and so no self-contained crt;
    # link against Debian's musl-dev:<arch> (scripts/musl-link.sh).
    export "CARGO_TARGET_${T}_LINKER=$root/scripts/musl-link.sh"
    export "CC_${t}=$root/scripts/musl-cc.sh" "AR_${t}=$TERN_MUSL_GNU-ar"
    rustflags="$rustflags -C link-self-contained=no"
else
    # rustc links with rustup's self-contained musl crt and libc.a; gcc
    # only drives ld. C code (aws-lc) sees glibc's headers, which is
    # harmless on aarch64 up to glibc 2.37 (Debian 12 has 2.36).
    export "CARGO_TARGET_${T}_LINKER=$TERN_MUSL_GNU-gcc"
    export "CC_${t}=$TERN_MUSL_GNU-gcc" "AR_${t}=$TERN_MUSL_GNU-ar"
fi
export "CARGO_TARGET_${T}_RUNNER=$qemu${qemu_cpu:+ -cpu $qemu_cpu}"
for tool in "$strip_tool" "$qemu" cargo rustup; do
    command -v "$tool" >/dev/null || die "$tool not found: run scripts/install-cross-deps.sh"
done

# RUSTFLAGS rather than target.rustflags: cargo ignores the latter whenever
# RUSTFLAGS is set (CI often sets -D warnings), so merge instead. With
# --target, RUSTFLAGS does not reach build scripts, which run on the host.
[ -z "${CARGO_ENCODED_RUSTFLAGS:-}" ] || die "unset CARGO_ENCODED_RUSTFLAGS (it would replace the board's flags)"
export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }$rustflags"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/cross}

cargo_args=(+"$toolchain")
std_args=()
if [ -n "$build_std" ] && [ "$build_std" != no ]; then
    std_args=(-Zbuild-std="$build_std")
fi
what=(--bin tern)
[ -z "$example" ] || what=(--example "$example")

cd "$root"
echo "cross-build: $name: $target, toolchain $toolchain${build_std:+, build-std $build_std}"
echo "cross-build: RUSTFLAGS=$RUSTFLAGS"
start=$(date +%s.%N)
cargo "${cargo_args[@]}" build --release --target "$target" "${std_args[@]}" "${what[@]}"
end=$(date +%s.%N)
awk -v a="$start" -v b="$end" 'BEGIN { printf "cross-build: build took %.1f s\n", b - a }'

if [ -n "$example" ]; then
    built=$CARGO_TARGET_DIR/$target/release/examples/$example
else
    built=$CARGO_TARGET_DIR/$target/release/tern
fi
out_dir=$CARGO_TARGET_DIR/$name
mkdir -p "$out_dir"
out=$out_dir/$(basename "$built")
"$strip_tool" -o "$out" "$built"
size=$(stat -c %s "$out")
awk -v s="$size" -v f="$out" 'BEGIN { printf "cross-build: %s: %d bytes (%.2f MiB) stripped\n", f, s, s / 1048576 }'

if [ "$smoke" = 1 ] && [ -z "$example" ]; then
    "$root/scripts/qemu-smoke.sh" "$out" --board "$conf" ${qemu_cpu:+--cpu "$qemu_cpu"} $strict
fi

if [ "$test" = 1 ]; then
    # Debug profile (panic=unwind); for build-std targets cargo adds the
    # `test` crate to the std it builds.
    test_std=()
    [ ${#std_args[@]} -eq 0 ] || test_std=(-Zbuild-std="${build_std/panic_abort/panic_unwind}")
    cargo "${cargo_args[@]}" test --target "$target" "${test_std[@]}" --lib "${test_args[@]}"
fi
