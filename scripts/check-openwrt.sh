#!/bin/sh
# Checks the OpenWrt package recipe (packaging/openwrt) as far as this
# machine allows: the SDK cannot be downloaded here, so the feed Makefile is
# evaluated by GNU make against test doubles of rules.mk, package.mk and
# rust-package.mk (packaging/openwrt/test/stub) and its install recipe run
# into a staging tree; the shell scripts pass shellcheck; the UCI
# translation runs against sample /etc/config/tern files with a test double
# of /lib/functions.sh and must print the expected files; the procd init
# script runs with recording procd_* doubles. docs/packaging.md.
#
#   scripts/check-openwrt.sh            (TERN_BIN: a tern binary to stage
#                                        and to load the generated configs;
#                                        default target/debug/tern)
# Literal make syntax in single quotes; A && B || fail is meant.
# shellcheck disable=SC2016,SC2015
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
ow="$here/packaging/openwrt"
bin=${TERN_BIN:-$here/target/debug/tern}
[ -x "$bin" ] || { echo "check-openwrt: no tern binary at $bin (cargo build, or set TERN_BIN)" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tern-openwrt.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
ok() { echo "ok: $*"; }

# ---- 1. the feed format, as written
mk="$ow/Makefile"
code=$(grep -v '^[[:space:]]*#' "$mk" | grep -v '^[[:space:]]*$')
[ "$(echo "$code" | head -n 1)" = 'include $(TOPDIR)/rules.mk' ] ||
    fail "Makefile: the first statement must be include \$(TOPDIR)/rules.mk"
[ "$(echo "$code" | tail -n 1)" = '$(eval $(call BuildPackage,tern))' ] ||
    fail "Makefile: the last statement must be \$(eval \$(call BuildPackage,tern))"
for line in 'include $(INCLUDE_DIR)/package.mk' 'define Package/tern' \
    'define Package/tern/description' 'define Package/tern/conffiles' \
    'define Build/Compile' 'define Package/tern/install'; do
    echo "$code" | grep -qxF "$line" || fail "Makefile: no '$line'"
done
for v in PKG_NAME PKG_VERSION PKG_RELEASE PKG_LICENSE; do
    echo "$code" | grep -q "^$v:=." || fail "Makefile: $v not set"
done
ok "feed format statements"

# ---- 2. the Makefile evaluated by make against the SDK doubles
stub="$ow/test/stub"
mkdir -p "$tmp/ipkg-install/bin"
cp "$bin" "$tmp/ipkg-install/bin/tern"
info=$(make -s -C "$ow" TOPDIR="$stub" info) || fail "make info"
val() { echo "$info" | sed -n "s/^$1=//p"; }
for v in PKG_NAME PKG_VERSION PKG_RELEASE PKG_LICENSE SECTION CATEGORY TITLE DEPENDS USERID DESCRIPTION COMPILE; do
    [ -n "$(val "$v")" ] || fail "Makefile: $v is empty once evaluated"
done
[ "$(val PKG_NAME)" = tern ] || fail "PKG_NAME is $(val PKG_NAME)"
cargo_version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$here/Cargo.toml" | head -n 1)
[ "$(val PKG_VERSION)" = "$cargo_version" ] ||
    fail "PKG_VERSION $(val PKG_VERSION) is not Cargo.toml's $cargo_version"
case "$(val USERID)" in tern=*:tern=*) ;; *) fail "USERID does not create the tern account" ;; esac
case "$(val COMPILE)" in *"cargo install"*) ;; *) fail "Build/Compile does not build with cargo" ;; esac
ok "Makefile evaluates: $(val PKG_NAME) $(val PKG_VERSION)-$(val PKG_RELEASE), $(val SECTION)/$(val CATEGORY)"

for arch in aarch64 arm x86_64; do
    stage="$tmp/stage-$arch"
    if ! make -s -C "$ow" TOPDIR="$stub" ARCH="$arch" PKG_INSTALL_DIR="$tmp/ipkg-install" \
        DEST="$stage" install-to >"$tmp/install.log" 2>&1; then
        fail "Package/tern/install ($arch): $(cat "$tmp/install.log")"
        continue
    fi
    for f in usr/sbin/tern etc/init.d/tern etc/config/tern usr/libexec/tern-uci \
        usr/share/man/man8/tern.8 usr/share/man/man5/tern.conf.5; do
        [ -f "$stage/$f" ] || fail "install ($arch): /$f missing"
    done
    for l in usr/sbin/sendmail usr/bin/mailq usr/bin/newaliases; do
        [ -L "$stage/$l" ] && [ "$(readlink -f "$stage/$l")" = "$(readlink -f "$stage/usr/sbin/tern")" ] ||
            fail "install ($arch): /$l is not a link to /usr/sbin/tern"
    done
    [ -x "$stage/etc/init.d/tern" ] && [ -x "$stage/usr/libexec/tern-uci" ] ||
        fail "install ($arch): scripts not executable"
    for c in $(make -s -C "$ow" TOPDIR="$stub" conffiles); do
        [ -f "$stage$c" ] || fail "conffile $c is not installed"
    done
    case $arch in
        aarch64) cmp -s "$stage/usr/share/tern/board.conf" "$here/boards/openwrt-aarch64.conf" ||
            fail "aarch64: board profile not installed" ;;
        arm) cmp -s "$stage/usr/share/tern/board.conf" "$here/boards/openwrt-armv7.conf" ||
            fail "arm: board profile not installed" ;;
        *) [ ! -e "$stage/usr/share/tern/board.conf" ] || fail "$arch: a board profile installed" ;;
    esac
done
ok "Package/tern/install stages every file (aarch64, arm, x86_64)"

# ---- 3. shellcheck
if shellcheck "$ow/files/tern.init" "$ow/files/tern-uci.sh" "$ow/test/functions.sh" "$0"; then
    ok "shellcheck"
else
    fail "shellcheck"
fi

# ---- 4. the UCI translation against the samples
for dir in "$ow"/test/samples/*/; do
    name=$(basename "$dir")
    board=/nonexistent
    [ ! -f "$dir/board" ] || board="$here/boards/$(cat "$dir/board").conf"
    host=router.lan
    [ ! -f "$dir/hostname" ] || host=$(cat "$dir/hostname")
    translate() {
        UCI_CONFIG_DIR="$dir" TERN_FUNCTIONS="$ow/test/functions.sh" TERN_HOSTNAME="$host" \
            TERN_BOARD_CONF="$board" sh "$ow/files/tern-uci.sh" "$1" >"$tmp/out" 2>"$tmp/err"
    }
    if [ -f "$dir/error" ]; then
        # A sample of a mistake: each "FILE: message" line must fail so.
        while IFS= read -r line; do
            what=${line%%: *}
            want=${line#*: }
            if translate "$what"; then
                fail "$name: $what succeeded, expected: $want"
            elif ! grep -qF "$want" "$tmp/err"; then
                fail "$name: $what said '$(cat "$tmp/err")', expected '$want'"
            fi
        done <"$dir/error"
        continue
    fi
    for what in tern.conf sasl_passwd aliases sender_canonical; do
        if ! translate "$what"; then
            fail "$name: $what failed: $(cat "$tmp/err")"
        elif [ -f "$dir/$what" ]; then
            diff -u "$dir/$what" "$tmp/out" >"$tmp/diff" || fail "$name: $what differs: $(cat "$tmp/diff")"
        elif [ -s "$tmp/out" ]; then
            fail "$name: $what printed $(cat "$tmp/out"), expected nothing"
        fi
    done
    # A generated tern.conf must load in tern itself.
    if [ -f "$dir/tern.conf" ] && ! "$bin" config -n -c "$dir/tern.conf" >"$tmp/cfg" 2>&1; then
        fail "$name: tern rejects the generated tern.conf: $(cat "$tmp/cfg")"
    fi
done
ok "UCI translation: $(find "$ow/test/samples" -mindepth 1 -maxdepth 1 -type d | wc -l) samples"

# ---- 5. the procd init script, with recording doubles
etc="$tmp/etc-tern"
rec="$tmp/procd.log"
mkdir -p "$etc"
cat >"$tmp/helper" <<HELPER
#!/bin/sh
UCI_CONFIG_DIR="$ow/test/samples/relay-587" TERN_FUNCTIONS="$ow/test/functions.sh" \
TERN_HOSTNAME=router.lan TERN_BOARD_CONF=/nonexistent exec sh "$ow/files/tern-uci.sh" "\$@"
HELPER
chmod 755 "$tmp/helper"
# shellcheck disable=SC2016
run_init() {
    UCI_CONFIG_DIR="$ow/test/samples/relay-587" TERN_ETC="$etc" TERN_UCI_HELPER="$tmp/helper" \
        REC="$rec" FUNCS="$ow/test/functions.sh" INIT="$ow/files/tern.init" sh -c '
        . "$FUNCS"
        procd_open_instance() { echo "open" >>"$REC"; }
        procd_set_param() { echo "param $*" >>"$REC"; }
        procd_close_instance() { echo "close" >>"$REC"; }
        procd_send_signal() { echo "signal $*" >>"$REC"; }
        procd_add_reload_trigger() { echo "trigger $*" >>"$REC"; }
        chgrp() { echo "chgrp $*" >>"$REC"; }
        logger() { echo "logger $*" >>"$REC"; }
        . "$INIT"
        '"$1"
}
if run_init start_service; then
    grep -qx "param command /usr/sbin/tern run -f" "$rec" || fail "init: command is not /usr/sbin/tern run -f: $(cat "$rec")"
    grep -q "^param respawn" "$rec" || fail "init: no respawn"
    t=$(sed -n 's/^param term_timeout //p' "$rec")
    # tern drains sessions for up to 10 s on SIGTERM (services.rs shutdown).
    [ -n "$t" ] && [ "$t" -gt 10 ] || fail "init: term_timeout '$t' is not longer than tern's 10 s drain"
    grep -qx "chgrp tern $etc/sasl_passwd" "$rec" || fail "init: sasl_passwd not given to group tern"
    for f in tern.conf sasl_passwd aliases; do
        cmp -s "$etc/$f" "$ow/test/samples/relay-587/$f" || fail "init: $etc/$f is not the translation"
    done
    [ ! -e "$etc/sender_canonical" ] || fail "init: sender_canonical written with no sender set"
    [ "$(stat -c %a "$etc/sasl_passwd")" = 640 ] || fail "init: sasl_passwd mode $(stat -c %a "$etc/sasl_passwd")"
    "$bin" config -n -c "$etc/tern.conf" >/dev/null || fail "init: tern rejects $etc/tern.conf"
    before=$(stat -c %i:%Y "$etc/tern.conf")
    sleep 1
    : >"$rec"
    run_init reload_service || fail "init: reload_service failed"
    grep -qx "signal tern \* HUP" "$rec" || fail "init: reload does not send SIGHUP: $(cat "$rec")"
    [ "$(stat -c %i:%Y "$etc/tern.conf")" = "$before" ] || fail "init: an unchanged tern.conf was rewritten"
    run_init service_triggers && grep -qx "trigger tern" "$rec" || fail "init: no reload trigger on /etc/config/tern"
    ok "procd init script"
else
    fail "init: start_service failed: $(cat "$rec" 2>/dev/null)"
fi

if [ "$failures" -ne 0 ]; then
    echo "check-openwrt: $failures failure(s)"
    exit 1
fi
echo "check-openwrt: all checks passed"
