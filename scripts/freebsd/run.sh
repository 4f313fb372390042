#!/bin/sh
# `make run` on FreeBSD: builds zbpf.ko (kmod/Makefile, bsd.kmod.mk), loads
# it (unloading a zbpf already loaded), and shows what it created: the
# device, its sysctls and the mode. Run as root. `kldunload zbpf` (or
# `make -C kmod unload`) removes it again; `make test` runs the test kit.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

if [ "$(uname -s)" != FreeBSD ]; then
    echo "run.sh: this is FreeBSD's \`make run\`" >&2
    exit 2
fi
if [ "$(id -u)" != 0 ]; then
    echo "run.sh: loading a kernel module needs root" >&2
    exit 2
fi

echo "==> building zbpf.ko (make -C kmod)"
make -C kmod
if kldstat -q -n zbpf.ko; then
    echo "==> unloading the zbpf already loaded"
    kldunload zbpf.ko
fi
echo "==> loading"
make -C kmod load
kldstat -v -n zbpf.ko | head -n 1

if [ -c /dev/zbpf ]; then
    dev=/dev/zbpf
    tree=net.zbpf
    echo "==> side-by-side mode: the kernel has its own bpf; zbpf is $dev and $tree"
    echo "    (tcpdump and libpcap with scripts/libpcap/zbpf.patch prefer /dev/zbpf)"
else
    dev=/dev/bpf
    tree=net.bpf
    echo "==> replace mode: zbpf is $dev and $tree, for every bpf(4) program"
fi
ls -l "$dev"
echo "==> sysctls"
for k in bufsize maxbufsize maxinsns zerocopy_enable optimize_writers; do
    printf '%s.%s = %s\t(%s)\n' "$tree" "$k" "$(sysctl -n "$tree.$k")" \
        "$(sysctl -nd "$tree.$k" 2>/dev/null || true)"
done
printf '%s.stats: %s bytes (one struct xbpf_d per descriptor)\n' "$tree" \
    "$(sysctl -b "$tree.stats" 2>/dev/null | wc -c | tr -d ' ')"
echo "==> done; the test kit: make test"
