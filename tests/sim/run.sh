#!/usr/bin/env bash
# The zero-copy consumer C code against the zbpf simulator, on Linux (the
# `sim` stage of `make test`):
#
# 1. the crate as a static library (features hosted: the engine, the
#    simulated machine and its C API, src/hosted/capi.rs);
# 2. tests/sim/abi-drift.sh: zsim.h's FreeBSD numbers and layouts against
#    src/abi;
# 3. sim_kit: the FreeBSD test kit's checks (tests/freebsd/zk_*.c, the same
#    sources as the kit's zbpf-kit) against the simulator; self-test: built
#    with a consumer that acknowledges the wrong generation, its zero-copy
#    capture check must fail;
# 4. pcap_zc: libpcap 1.10.3 with scripts/libpcap/zbpf.patch, and 1.10.5
#    with zbpf-1.10.5.patch (their own pcap-bpf.c and core, compiled for
#    Linux, system calls on the device
#    routed to the simulator by zsim-prelude.h and zsim-glue.c) capturing
#    through the pcap API: zero copy by default, no system call while a
#    completed buffer waits, timeouts, BPF_ZEROCOPY, PCAP_BPF_DEVICE, fork;
#    self-test: with libpcap's unpatched pcap-bpf.c the zero-copy checks
#    must fail.
#
# Environment: CLANG (default clang), CARGO (default cargo).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
CLANG=${CLANG:-clang}
CARGO=${CARGO:-cargo}
out="$root/target/sim"
mkdir -p "$out"
status=0

say() { echo "sim: $*"; }

# 1. The engine as a C library.
say "building the crate as a static library (target/simlib)"
"$CARGO" rustc --quiet --release --lib --crate-type staticlib --features hosted \
    --target-dir target/simlib
lib="$root/target/simlib/release/libzbpf.a"
libs=("$lib" -lpthread -ldl -lm)

# 2. zsim.h against src/abi.
"$CARGO" build --quiet --features hosted --bin zbpf-abigen
bash tests/sim/abi-drift.sh "${CARGO_TARGET_DIR:-$root/target}/debug/zbpf-abigen" "$out/abi"

cflags=(-std=gnu11 -O1 -g -Wall -Wextra -Werror -DZK_SIM -D_GNU_SOURCE -Itests/sim -Itests/freebsd)
kit_src=(tests/sim/sim_kit.c tests/freebsd/zk_common.c tests/freebsd/zk_zbuf.c
    tests/freebsd/zk_checks.c tests/freebsd/zk_filter.c)

# expect_fail LOG CHECK...: each named check must print FAIL in LOG.
expect_fail() {
    local log=$1 c
    shift
    for c in "$@"; do
        if ! grep -q "^FAIL $c" "$log"; then
            cat "$log"
            say "FAILED: self-test: $c did not fail"
            return 1
        fi
    done
}

# 3. The kit's checks.
"$CLANG" "${cflags[@]}" "${kit_src[@]}" "${libs[@]}" -lpcap -o "$out/sim_kit"
"$CLANG" "${cflags[@]}" -DZK_SELFTEST_BAD_ACK "${kit_src[@]}" "${libs[@]}" -lpcap -o "$out/sim_kit_bad"
say "the FreeBSD test kit's checks against the simulator"
"$out/sim_kit" || status=1
if ZK_DEADLINE_PCT=10 "$out/sim_kit_bad" capture-zbuf >"$out/sim_kit_bad.log" 2>&1; then
    cat "$out/sim_kit_bad.log"
    say "FAILED: self-test: a consumer acknowledging the wrong generation passed"
    status=1
else
    expect_fail "$out/sim_kit_bad.log" capture-zbuf || status=1
    say "self-test: with a consumer that acknowledges the wrong generation, capture-zbuf fails ($(grep -m1 'capture-zbuf:' "$out/sim_kit_bad.log" | sed 's/^ *//'))"
fi

# 4. libpcap with the patch, for each version the project patches.
# pcap_version VERSION: builds it for Linux against the simulator, runs
# pcap_zc, then the self-test with the unpatched pcap-bpf.c.
pcap_version() {
    local version=$1 base src pcap f o p pids objs patch
    bash scripts/libpcap/source.sh --quiet "$version"
    base="$root/target/libpcap"
    [[ "$version" == 1.10.3 ]] || base="$root/target/libpcap-$version"
    src="$base/patched"
    pcap="$out/pcap-$version"
    rm -rf "$pcap"
    mkdir -p "$pcap/gen" "$pcap/obj" "$pcap/unpatched"
    sed "s/1\.10\.3/$version/g" tests/sim/pcap-linux-config.h >"$pcap/gen/config.h"
    sed 's/@REENTRANT_PARSER@/%define api.pure/' "$src/grammar.y.in" >"$pcap/gen/grammar.y"
    (cd "$pcap/gen" && bison -p pcap_ -o grammar.c -d grammar.y 2>/dev/null &&
        flex -P pcap_ --header-file=scanner.h --nounput -o scanner.c "$src/scanner.l")
    pflags=(-std=gnu11 -O1 -g -Wall -Werror -DHAVE_CONFIG_H -DBUILDING_PCAP -I"$pcap/gen"
        -Itests/sim/include -Itests/sim -I"$src")
    prelude=(-include tests/sim/zsim-prelude.h)
    patch=zbpf.patch
    [[ "$version" == 1.10.3 ]] || patch="zbpf-$version.patch"
    say "compiling libpcap $version + $patch for Linux against the simulator"
    pids=()
    for f in pcap-bpf.c pcap.c; do
        "$CLANG" "${pflags[@]}" "${prelude[@]}" -c "$src/$f" -o "$pcap/obj/${f%.c}.o" & pids+=($!)
    done
    for f in gencode.c optimize.c nametoaddr.c etherent.c fmtutils.c pcap-util.c savefile.c \
        sf-pcap.c sf-pcapng.c pcap-common.c bpf_image.c bpf_filter.c bpf_dump.c fad-getad.c \
        pcap-usb-linux-common.c missing/strlcpy.c missing/strlcat.c; do
        [[ -f "$src/$f" ]] || continue
        o="$pcap/obj/$(basename "${f%.c}").o"
        "$CLANG" "${pflags[@]}" -c "$src/$f" -o "$o" & pids+=($!)
    done
    for f in grammar.c scanner.c; do
        "$CLANG" "${pflags[@]}" -Wno-error -w -c "$pcap/gen/$f" -o "$pcap/obj/${f%.c}.o" & pids+=($!)
    done
    "$CLANG" "${cflags[@]}" -I"$src" -c tests/sim/zsim-glue.c -o "$pcap/zsim-glue.o" & pids+=($!)
    for p in "${pids[@]}"; do wait "$p"; done
    "$CLANG" "${cflags[@]}" -I"$src" tests/sim/pcap_zc.c tests/freebsd/zk_common.c \
        "$pcap/zsim-glue.o" "$pcap"/obj/*.o "${libs[@]}" -o "$pcap/pcap_zc"
    say "libpcap $version's patched zero-copy code against the simulator"
    "$pcap/pcap_zc" || status=1

    # Self-test: libpcap's own pcap-bpf.c, unpatched.
    "$CLANG" "${pflags[@]}" "${prelude[@]}" -w -c "$base/pristine/pcap-bpf.c" \
        -o "$pcap/unpatched/pcap-bpf.o"
    objs=()
    for o in "$pcap"/obj/*.o; do
        [[ "$(basename "$o")" == pcap-bpf.o ]] || objs+=("$o")
    done
    "$CLANG" "${cflags[@]}" -I"$src" tests/sim/pcap_zc.c tests/freebsd/zk_common.c \
        "$pcap/zsim-glue.o" "${objs[@]}" "$pcap/unpatched/pcap-bpf.o" "${libs[@]}" \
        -o "$pcap/pcap_zc_unpatched"
    if ZK_DEADLINE_PCT=10 "$pcap/pcap_zc_unpatched" pcap-version pcap-zerocopy-default \
        >"$pcap/unpatched.log" 2>&1; then
        cat "$pcap/unpatched.log"
        say "FAILED: self-test: unpatched libpcap $version passed the zero-copy checks"
        status=1
    else
        expect_fail "$pcap/unpatched.log" pcap-version pcap-zerocopy-default || status=1
        say "self-test: with libpcap $version's unpatched pcap-bpf.c, pcap-version and pcap-zerocopy-default fail ($(grep -m1 'pcap-zerocopy-default:' "$pcap/unpatched.log" | sed 's/^ *//'))"
    fi
}
pcap_version 1.10.3
pcap_version 1.10.5

if ((status != 0)); then
    say "FAILED"
    exit 1
fi
say "ok"
