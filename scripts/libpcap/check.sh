#!/usr/bin/env bash
# CI check of the zbpf libpcap patches, for each of libpcap 1.10.3
# (scripts/libpcap/zbpf.patch, from Debian bookworm's source) and 1.10.5
# (zbpf-1.10.5.patch, from Debian trixie's):
#
# 1. source.sh fetches the source and applies the patch: exactly (no fuzz,
#    no offset) to the upstream tarball, without fuzz to Debian's tree;
# 2. the patched libpcap is compiled for FreeBSD: every file of a FreeBSD
#    build (pcap-bpf.c and the core: pcap.c, gencode.c, optimize.c, the
#    bison/flex grammar and scanner, savefiles, ...) with
#    clang -target x86_64-unknown-freebsd15.0 against FreeBSD 15.0's headers
#    (scripts/freebsd-sysroot.sh), a config.h written for FreeBSD
#    (freebsd-config.h; it does not set HAVE_ZEROCOPY_BPF), and archived into
#    libpcap.a. Every file compiles without a warning under
#    -Wall -Wextra -Werror (bison's and flex's output under -w);
# 3. proof that the zero-copy code is in: pcap-bpf.o (built at -O0, so that
#    static functions keep their symbols) must define pcap_next_zbuf,
#    pcap_next_zbuf_shm, pcap_ack_zbuf, bpf_zbuf_map and bpf_open_dev, and
#    reference mmap, minherit, poll and sysctlbyname; the optimised object
#    must carry the version string "with zerocopy support";
# 4. self-test: the unpatched pcap-bpf.c, built the same way, must fail the
#    proof (libpcap 1.10.3 compiles zero copy out on FreeBSD), so the proof
#    can fail.
#
# Outputs under target/libpcap*/freebsd/. Environment: CLANG (default clang),
# LLVM_NM, LLVM_AR (default llvm-nm, llvm-ar, else their -19 versions).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
CLANG=${CLANG:-clang}
# llvm-nm and llvm-ar, unversioned (Debian's llvm) or from llvm-19.
tool() {
    if command -v "$1" >/dev/null; then echo "$1"; else echo "$1-19"; fi
}
LLVM_NM=${LLVM_NM:-$(tool llvm-nm)}
LLVM_AR=${LLVM_AR:-$(tool llvm-ar)}

scripts/freebsd-sysroot.sh --quiet
# shellcheck source=/dev/null
. target/freebsd-sysroot/env.sh
read -r -a fbsd <<<"$FREEBSD_CFLAGS"

# proof OBJ_O0 OBJ_O2: the zero-copy path is compiled in.
proof() {
    local o0=$1 o2=$2 ok=0 syms s
    syms=$("$LLVM_NM" "$o0")
    for s in pcap_next_zbuf pcap_next_zbuf_shm pcap_ack_zbuf bpf_zbuf_map bpf_open_dev; do
        if ! grep -Eq "^[0-9a-f]+ [tT] $s\$" <<<"$syms"; then
            echo "libpcap-check:   missing function $s" >&2
            ok=1
        fi
    done
    for s in mmap minherit poll sysctlbyname; do
        if ! grep -Eq "^ +U $s\$" <<<"$syms"; then
            echo "libpcap-check:   no call to $s" >&2
            ok=1
        fi
    done
    if ! grep -aq "with zerocopy support" "$o2"; then
        echo "libpcap-check:   no \"with zerocopy support\" version string" >&2
        ok=1
    fi
    return "$ok"
}

check_version() {
    version=$1
    bash scripts/libpcap/source.sh "$version"
    base="$root/target/libpcap"
    [[ "$version" == 1.10.3 ]] || base="$root/target/libpcap-$version"
    src="$base/patched"
    pristine="$base/pristine"
    out="$base/freebsd"
    rm -rf "$out"
    mkdir -p "$out/gen" "$out/obj" "$out/obj-O0" "$out/unpatched"

    # The generated sources, as libpcap's Makefile makes them (the reentrant
    # parser as configure selects it for bison).
    sed "s/1\.10\.3/$version/g" scripts/libpcap/freebsd-config.h >"$out/gen/config.h"
    sed 's/@REENTRANT_PARSER@/%define api.pure/' "$src/grammar.y.in" >"$out/gen/grammar.y"
    (cd "$out/gen" && bison -p pcap_ -o grammar.c -d grammar.y) 2>"$out/bison.log" ||
        { cat "$out/bison.log" >&2; exit 1; }
    (cd "$out/gen" && flex -P pcap_ --header-file=scanner.h --nounput -o scanner.c "$src/scanner.l")

    sources=(pcap.c pcap-bpf.c gencode.c optimize.c nametoaddr.c etherent.c fmtutils.c
        pcap-util.c savefile.c sf-pcap.c sf-pcapng.c pcap-common.c bpf_image.c bpf_filter.c
        bpf_dump.c fad-getad.c)
    common=("${fbsd[@]}" -std=gnu11 -fPIC -DHAVE_CONFIG_H -DBUILDING_PCAP -Dpcap_EXPORTS
        -I"$out/gen" -I"$src" -fvisibility=hidden)
    strict=(-Wall -Wextra -Werror)

    echo "libpcap-check: $version: compiling libpcap for FreeBSD (clang -target $FREEBSD_TARGET)"
    objs=()
    for f in "${sources[@]}"; do
        [[ -f "$src/$f" ]] || continue
        o="$out/obj/${f%.c}.o"
        "$CLANG" "${common[@]}" -O2 "${strict[@]}" -c "$src/$f" -o "$o" 2>"$o.log" ||
            { cat "$o.log" >&2; echo "libpcap-check: FAILED: $f does not compile for FreeBSD" >&2; exit 1; }
        objs+=("$o")
    done
    for f in grammar.c scanner.c; do
        o="$out/obj/${f%.c}.o"
        "$CLANG" "${common[@]}" -O2 -w -c "$out/gen/$f" -o "$o" 2>"$o.log" ||
            { cat "$o.log" >&2; echo "libpcap-check: FAILED: $f does not compile for FreeBSD" >&2; exit 1; }
        objs+=("$o")
    done
    "$LLVM_AR" rcs "$out/libpcap.a" "${objs[@]}"
    echo "libpcap-check: $version: libpcap.a for FreeBSD: ${#objs[@]} objects (bison's and flex's included), $(du -k "$out/libpcap.a" | cut -f1) KiB, no warning under -Wall -Wextra"

    "$CLANG" "${common[@]}" -O0 -w -c "$src/pcap-bpf.c" -o "$out/obj-O0/pcap-bpf.o"
    if ! proof "$out/obj-O0/pcap-bpf.o" "$out/obj/pcap-bpf.o"; then
        echo "libpcap-check: FAILED: the zero-copy code is not compiled into pcap-bpf.o" >&2
        exit 1
    fi
    echo "libpcap-check: $version: zero copy compiled in: pcap-bpf.o defines pcap_next_zbuf, pcap_next_zbuf_shm, pcap_ack_zbuf, bpf_zbuf_map, bpf_open_dev and calls mmap, minherit, poll, sysctlbyname"
    "$LLVM_NM" "$out/obj-O0/pcap-bpf.o" | grep -E ' [tT] (pcap_next_zbuf|pcap_ack_zbuf)' | sed 's/^/libpcap-check:   /'

    # Self-test: the same proof on the unpatched file must fail.
    "$CLANG" "${common[@]}" -O0 -w -c "$pristine/pcap-bpf.c" -o "$out/unpatched/pcap-bpf-O0.o"
    "$CLANG" "${common[@]}" -O2 -w -c "$pristine/pcap-bpf.c" -o "$out/unpatched/pcap-bpf.o"
    if proof "$out/unpatched/pcap-bpf-O0.o" "$out/unpatched/pcap-bpf.o" 2>"$out/unpatched/proof.log"; then
        echo "libpcap-check: FAILED: self-test: the proof also passes on unpatched libpcap" >&2
        exit 1
    fi
    echo "libpcap-check: $version: self-test: unpatched libpcap $version fails the proof, as it should ($(wc -l <"$out/unpatched/proof.log") items missing)"
}

check_version 1.10.3
check_version 1.10.5
echo "libpcap-check: ok"
