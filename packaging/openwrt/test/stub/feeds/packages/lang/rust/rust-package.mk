# Test double of the packages feed's rust-package.mk.
RUST_ARCH_DEPENDS:=@(aarch64||arm||i386||i686||mips||mipsel||mips64||mips64el||powerpc||powerpc64||riscv64||x86_64)
define Build/Compile/Cargo
	cargo install --root $(PKG_INSTALL_DIR) --path $(PKG_BUILD_DIR)/$(1) $(2)
endef
