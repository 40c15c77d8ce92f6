#!/bin/sh
# Builds tern's .deb with dpkg-deb from a staging tree (no cargo-deb, no
# debhelper: docs/packaging.md).
#
#   scripts/build-deb.sh [OUTDIR]       -> OUTDIR/tern_VERSION-1_ARCH.deb
#
# OUTDIR defaults to target/deb. The binary is target/release/tern, built
# with `cargo build --release` unless TERN_BIN names one already built
# (e.g. TERN_BIN=target/cross/openwrt-aarch64/tern DEB_ARCH=arm64 for a
# static musl binary from scripts/cross-build.sh). DEB_ARCH defaults to
# this machine's dpkg architecture. Prints the .deb's path on the last line.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
out=${1:-target/deb}
arch=${DEB_ARCH:-$(dpkg --print-architecture)}
version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || { echo "build-deb: no version in Cargo.toml" >&2; exit 1; }
debversion="$version-1"

if [ -z "${TERN_BIN:-}" ]; then
    cargo build --release --bin tern
    TERN_BIN=target/release/tern
fi
[ -x "$TERN_BIN" ] || { echo "build-deb: $TERN_BIN: no executable" >&2; exit 1; }

stage=$(mktemp -d "${TMPDIR:-/tmp}/tern-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT INT TERM
root="$stage/root"

install -d "$root/DEBIAN" "$root/usr/sbin" "$root/usr/bin" "$root/usr/lib" \
    "$root/etc/tern" "$root/lib/systemd/system" "$root/usr/share/doc/tern" \
    "$root/usr/share/man/man8" "$root/usr/share/man/man5"

install -m 0755 "$TERN_BIN" "$root/usr/sbin/tern"
# Strip what this machine's strip understands (a cross binary from
# scripts/cross-build.sh is stripped already).
if [ "$arch" = "$(dpkg --print-architecture)" ]; then
    strip --strip-unneeded "$root/usr/sbin/tern"
fi
# The names cron, smartd, mdadm and friends call, as Debian's MTAs ship
# them: plain links (Provides/Conflicts/Replaces: mail-transport-agent).
ln -s tern "$root/usr/sbin/sendmail"
ln -s ../sbin/tern "$root/usr/bin/mailq"
ln -s ../sbin/tern "$root/usr/bin/newaliases"
ln -s ../sbin/sendmail "$root/usr/lib/sendmail"

# The packaged configuration: the documented example with every default,
# but listening on loopback only (a send-only box until the admin opts in).
conf="$root/etc/tern/tern.conf"
sed 's/^#inet_interfaces = all$/# packaged default: port 25 on 127.0.0.1 and ::1 only\ninet_interfaces = loopback-only/' \
    config/tern.conf >"$conf"
grep -qx 'inet_interfaces = loopback-only' "$conf" ||
    { echo "build-deb: config/tern.conf has no '#inet_interfaces = all' line to change" >&2; exit 1; }
install -m 0644 packaging/debian/aliases "$root/etc/tern/aliases"
chmod 0644 "$conf"

install -m 0644 packaging/debian/tern.service "$root/lib/systemd/system/tern.service"
gzip -9n <packaging/man/tern.8 >"$root/usr/share/man/man8/tern.8.gz"
gzip -9n <packaging/man/tern.conf.5 >"$root/usr/share/man/man5/tern.conf.5.gz"
install -m 0644 packaging/debian/copyright "$root/usr/share/doc/tern/copyright"
gzip -9n <README.md >"$root/usr/share/doc/tern/README.md.gz"

for s in postinst prerm postrm; do
    install -m 0755 "packaging/debian/$s" "$root/DEBIAN/$s"
done
printf '/etc/tern/tern.conf\n/etc/tern/aliases\n' >"$root/DEBIAN/conffiles"

# Shared-library dependencies as dpkg-shlibdeps finds them (it wants a
# debian/control in the current directory); a static binary has none.
depends=""
if [ "$arch" = "$(dpkg --print-architecture)" ] && ldd "$root/usr/sbin/tern" >/dev/null 2>&1; then
    mkdir -p "$stage/src/debian"
    printf 'Source: tern\n\nPackage: tern\nArchitecture: any\n' >"$stage/src/debian/control"
    depends=$(cd "$stage/src" && dpkg-shlibdeps -O "$root/usr/sbin/tern" 2>/dev/null |
        sed -n 's/^shlibs:Depends=//p')
    [ -n "$depends" ] || { echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
fi
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$debversion/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
    -e "s/, @DEPENDS@/${depends:+, $depends}/" \
    packaging/debian/control.in >"$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort |
    xargs md5sum) >"$root/DEBIAN/md5sums"

mkdir -p "$out"
deb="$out/tern_${debversion}_$arch.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
