# Stand-in for the ports framework's Mk/Uses/kmod.mk (port-check.sh): where
# kernel modules go, the plist substitution and the build environment.
KMODDIR?=	/boot/modules
PLIST_SUB+=	KMODDIR="${KMODDIR:C,^/,,}"
MAKE_ENV+=	KMODDIR="${KMODDIR}" SYSDIR="${SRC_BASE}/sys"
