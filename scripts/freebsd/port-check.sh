#!/usr/bin/env bash
# CI check of the ports-style skeleton (scripts/freebsd/port): Debian has no
# portlint, so Debian's bmake reads the port against a minimal stub of the
# ports framework (scripts/freebsd/port-stub) and `bmake -n` must show the
# module built by kmod/Makefile with the packaged Rust (RUSTC_BOOTSTRAP=1),
# then zbpf.ko installed into /boot/modules and zbpf.4 into man4; the plist
# must expand to exactly those two files.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
port="$root/scripts/freebsd/port"
stub="$root/scripts/freebsd/port-stub"
status=0

dry=$(bmake -n -m "$stub" -C "$port" install)
plist=$(bmake -m "$stub" -C "$port" plist)

need() {
    if ! grep -qE "$2" <<<"$dry"; then
        echo "port: FAILED: $1" >&2
        status=1
    fi
}
need "the module is built by kmod/Makefile" '/kmod && .*RUSTC_BOOTSTRAP=1 .*make'
need "the build gets the kernel sources" 'SYSDIR="?/usr/src/sys'
need "zbpf.ko goes into /boot/modules" 'install -m 555 .*/kmod/zbpf\.ko .*/stage/boot/modules$'
need "zbpf.4 goes into man4" 'install -m 444 .*/kmod/zbpf\.4 .*/share/man/man4$'
if [[ "$plist" != $'boot/modules/zbpf.ko\nshare/man/man4/zbpf.4.gz' ]]; then
    echo "port: FAILED: the plist expands to: $plist" >&2
    status=1
fi
((status == 0)) && echo "port: bmake -n against the ports stub: builds with the packaged Rust," \
    "installs zbpf.ko into /boot/modules and zbpf.4; plist: $(tr '\n' ' ' <<<"$plist")"
exit "$status"
