# Test double of OpenWrt's rules.mk for scripts/check-openwrt.sh: just the
# variables tern's recipe uses, with the values the SDK gives them.
INCLUDE_DIR:=$(TOPDIR)/include
ARCH ?= aarch64
CP:=cp -fpR
LN:=ln -sf
INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_DATA:=install -m0644
INSTALL_CONF:=install -m0600
PKG_BUILD_DIR ?= $(TOPDIR)/build
PKG_INSTALL_DIR ?= $(TOPDIR)/ipkg-install
