# shellcheck shell=bash
# The flags of the module's C side (FreeBSD's kmod.mk and kern.mk), for one
# release's headers: source a target/freebsd-sysroot*/env.sh first, then
# this file, which sets the array `kflags`. Used by scripts/build-ko.sh and
# by the bad modules of the kld harness (tests/ukld/selftest).
# shellcheck disable=SC2034,SC2206
kflags=(
    -target "$FREEBSD_TARGET" -D__FreeBSD_version="$FREEBSD_VERSION"
    -D__SSP_FORTIFY_LEVEL=0 -O2 -pipe -fno-strict-aliasing -fno-pic -fno-pie
    -D_KERNEL -DKLD_MODULE -nostdinc -Ikmod/linux-check
    -include kmod/linux-check/opt_global.h -Iffi $FREEBSD_INCLUDE_FLAGS
    -isystem target/freebsd-sysroot/ck/usr/include
    -fno-common -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer
    -mcmodel=kernel -mno-red-zone -mno-mmx -mno-sse -msoft-float
    -fno-asynchronous-unwind-tables -ffreestanding -fwrapv -fstack-protector
    -std=gnu17 -Wall -Wredundant-decls -Wnested-externs -Wstrict-prototypes
    -Wmissing-prototypes -Wpointer-arith -Wcast-qual -Wundef -Wno-pointer-sign
    -D__printf__=__freebsd_kprintf__ -Wmissing-include-dirs -Werror
)
