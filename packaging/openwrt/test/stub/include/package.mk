# Test double of OpenWrt's package.mk: BuildPackage evaluates the
# package's definition and makes targets that print it (info, conffiles)
# and run its install recipe into DEST (install-to).
define BuildPackage
$(eval $(Package/$(1)))
$(eval $(call StubTargets,$(1)))
endef

define StubTargets
.PHONY: info conffiles install-to
info:
	@:$$(info PKG_NAME=$(PKG_NAME))
	@:$$(info PKG_VERSION=$(PKG_VERSION))
	@:$$(info PKG_RELEASE=$(PKG_RELEASE))
	@:$$(info PKG_LICENSE=$(PKG_LICENSE))
	@:$$(info SECTION=$(SECTION))
	@:$$(info CATEGORY=$(CATEGORY))
	@:$$(info TITLE=$(TITLE))
	@:$$(info DEPENDS=$(DEPENDS))
	@:$$(info USERID=$(USERID))
	@:$$(info DESCRIPTION=$(strip $(Package/$(1)/description)))
	@:$$(info COMPILE=$(strip $(Build/Compile)))
conffiles:
	@printf '%s\n' $(Package/$(1)/conffiles)
install-to:
	$(call Package/$(1)/install,$(DEST))
endef
