#!/bin/sh
# shellcheck disable=SC2317 # the checks are functions that check() runs
# zbpf's FreeBSD test kit. On FreeBSD 14 or 15, as root, from the source
# tree: `make test` (or `sh scripts/freebsd/kit.sh`). It builds zbpf.ko and
# the test programs (tests/freebsd, C, base system only), loads the module,
# runs every check on two epair(4) pairs it creates, unloads the module and
# prints one "PASS name" or "FAIL name" line per check, each followed by the
# check's notes, then "N passed, N failed". Exit status 0 if all passed.
#
# Needs what kmod/Makefile needs (kernel sources in /usr/src, Rust with its
# library source, llvm for bindgen) and cc. The tcpdump check needs a
# tcpdump linked with libpcap carrying scripts/libpcap/zbpf.patch (see the
# README); it is looked for in $ZBPF_TCPDUMP, /usr/local/zbpf/sbin/tcpdump,
# /usr/local/sbin/tcpdump and then tcpdump on PATH, and must say
# "zbpf fork-safe buffers" in `tcpdump --version`.
#
# Environment: ZBPF_TCPDUMP, CC (default cc), KEEP=1 to leave the module
# loaded and the interfaces in place at the end. The output of each step is
# kept in target/freebsd-kit/.
#
# The addresses used are 198.18.0.1 and 198.18.0.2 (RFC 2544's benchmarking
# range), on the first pair only; no traffic leaves the machine.
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
out=$root/target/freebsd-kit
mkdir -p "$out"
passed=0
failed=0
kit=$out/zbpf-kit
pair_a=""
pair_b=""
spare_a=""
spare_b=""

# record NAME STATUS LOG: the result line, then the notes.
record() {
    if [ "$2" -eq 0 ]; then
        echo "PASS $1"
        passed=$((passed + 1))
    else
        echo "FAIL $1"
        failed=$((failed + 1))
    fi
    if [ -s "$3" ]; then
        head -n 40 "$3" | sed -e 's/^ *//' -e 's/^/    /'
    fi
}

# check NAME COMMAND...: runs a check, output to target/freebsd-kit/NAME.log.
check() {
    name=$1
    shift
    "$@" >"$out/$name.log" 2>&1
    record "$name" $? "$out/$name.log"
}

# kitcheck NAME: a check of the zbpf-kit program.
kitcheck() {
    check "$1" "$kit" -d "$dev" -t "$pair_a" -r "$pair_b" -s "$spare_a" -S "$spare_b" "$1"
}

finish() {
    if [ "${KEEP:-0}" != 1 ]; then
        for i in "$pair_a" "$spare_a"; do
            [ -n "$i" ] && ifconfig "$i" destroy >/dev/null 2>&1
        done
        arp -d 198.18.0.2 >/dev/null 2>&1
        kldstat -q -n zbpf.ko && kldunload zbpf.ko >/dev/null 2>&1
    fi
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit $?
}

if [ "$(uname -s)" != FreeBSD ] || [ "$(id -u)" != 0 ]; then
    echo "zbpf kit: run this as root on FreeBSD 14 or 15" >"$out/preflight.log"
    record preflight 1 "$out/preflight.log"
    finish
fi

{
    uname -a
    echo "kernel ident $(sysctl -n kern.ident), $(sysctl -n hw.ncpu) CPUs"
} >"$out/system.log"
echo "zbpf kit on $(uname -sr) ($(sysctl -n kern.ident)), $(date)"

# A zbpf left loaded goes first, so that the mode is seen from scratch.
if kldstat -q -n zbpf.ko; then
    kldunload zbpf.ko >"$out/preflight.log" 2>&1 || {
        echo "zbpf.ko is loaded and cannot be unloaded" >>"$out/preflight.log"
        record preflight 1 "$out/preflight.log"
        finish
    }
fi

# The expected mode: side by side (/dev/zbpf, net.zbpf) when the kernel has
# its own bpf, else replace (/dev/bpf, net.bpf); net.zbpf.replace_bpf in
# kenv forces it.
if sysctl -N net.bpf.bufsize >/dev/null 2>&1; then
    mode=side-by-side
else
    mode=replace
fi
case $(kenv -q net.zbpf.replace_bpf 2>/dev/null) in
1) mode=replace ;;
0) mode=side-by-side ;;
esac
if [ "$mode" = replace ]; then
    dev=/dev/bpf
    tree=net.bpf
else
    dev=/dev/zbpf
    tree=net.zbpf
fi
dmesg_before=$(dmesg | wc -l)

# 1. Builds.
check build-module make -C "$root/kmod"
build_kit() {
    # shellcheck disable=SC2086 # CFLAGS may hold several flags
    ${CC:-cc} -std=gnu11 -O2 -g -Wall -Wextra -Werror ${CFLAGS:-} -o "$kit" \
        tests/freebsd/*.c -lpcap -lpthread
}
check build-programs build_kit

# 2. The module loads, in the expected mode.
load() {
    make -C "$root/kmod" load && kldstat -n zbpf.ko
}
check load load
if ! kldstat -q -n zbpf.ko; then
    finish
fi

device_sysctls() {
    echo "mode: $mode (device $dev, sysctls $tree)"
    ok=0
    if [ ! -c "$dev" ]; then
        echo "no character device $dev"
        ok=1
    else
        perms=$(stat -f '%Sp %Su:%Sg' "$dev")
        echo "$dev: $perms"
        [ "$perms" = "crw------- root:wheel" ] || {
            echo "want crw------- root:wheel"
            ok=1
        }
    fi
    if [ "$mode" = side-by-side ] && [ ! -c /dev/bpf ]; then
        echo "side by side, but the kernel's own /dev/bpf is gone"
        ok=1
    fi
    if [ "$mode" = replace ] && [ -e /dev/zbpf ]; then
        echo "replace mode, but /dev/zbpf exists"
        ok=1
    fi
    for kv in bufsize=4096 maxbufsize=524288 maxinsns=512 zerocopy_enable=1 optimize_writers=0; do
        k=${kv%%=*}
        want=${kv#*=}
        got=$(sysctl -n "$tree.$k" 2>&1) || {
            echo "no sysctl $tree.$k"
            ok=1
            continue
        }
        echo "$tree.$k = $got"
        [ "$got" = "$want" ] || {
            echo "  want $want (the default)"
            ok=1
        }
    done
    sysctl -N "$tree.stats" >/dev/null 2>&1 || {
        echo "no sysctl $tree.stats"
        ok=1
    }
    return "$ok"
}
check device-sysctls device_sysctls

# 3. The interfaces: a pair for traffic, a spare pair for the departure.
make_pairs() {
    pair_a=$(ifconfig epair create) || return 1
    pair_b=${pair_a%a}b
    spare_a=$(ifconfig epair create) || return 1
    spare_b=${spare_a%a}b
    for i in "$pair_a" "$pair_b" "$spare_a" "$spare_b"; do
        ifconfig "$i" up || return 1
        ifconfig "$i" -txcsum -rxcsum -txcsum6 -rxcsum6 -tso -lro >/dev/null 2>&1
        ifconfig "$i" inet6 ifdisabled -auto_linklocal >/dev/null 2>&1
    done
    ifconfig "$pair_a" inet 198.18.0.1/24 || return 1
    mac_b=$(ifconfig "$pair_b" ether | awk '/ether/ {print $2}')
    arp -d 198.18.0.2 >/dev/null 2>&1
    arp -s 198.18.0.2 "$mac_b" || return 1
    echo "traffic: $pair_a (198.18.0.1) -> $pair_b ($mac_b, static ARP for 198.18.0.2)"
    echo "spare: $spare_a, $spare_b"
}
make_pairs >"$out/interfaces.log" 2>&1
st=$?
if [ $st -ne 0 ] || [ -z "$pair_a" ] || [ ! -x "$kit" ]; then
    [ ! -x "$kit" ] && echo "no test program (build-programs failed)" >>"$out/interfaces.log"
    record interfaces 1 "$out/interfaces.log"
    finish
fi

# 4. The checks.
kitcheck device
kitcheck zerocopy-sysctl
check epair-traffic "$kit" -d "$dev" -t "$pair_a" -r "$pair_b" traffic
kitcheck capture-buffer
kitcheck capture-zbuf
kitcheck filter-libpcap
kitcheck timing
kitcheck write
kitcheck fork-parent-shared
kitcheck fork-child-shared
kitcheck fork-parent-private
kitcheck fork-child-private
kitcheck hostile
kitcheck depart
ifconfig "$spare_a" >/dev/null 2>&1 || spare_a=""

# tcpdump, through the patched libpcap, in zero-copy mode.
tcpdump_zerocopy() {
    td=""
    for c in "${ZBPF_TCPDUMP:-}" /usr/local/zbpf/sbin/tcpdump /usr/local/sbin/tcpdump \
        "$(command -v tcpdump)"; do
        if [ -n "$c" ] && [ -x "$c" ] && "$c" --version 2>&1 | grep -q "zbpf fork-safe"; then
            td=$c
            break
        fi
    done
    if [ -z "$td" ]; then
        echo "no tcpdump linked with the patched libpcap (\`tcpdump --version\` must say"
        echo "\"zbpf fork-safe buffers\"); build one (README) and set ZBPF_TCPDUMP"
        return 1
    fi
    "$td" --version 2>&1 | head -n 3
    pcapf=$out/tcpdump.pcap
    rm -f "$pcapf"
    BPF_ZEROCOPY=1 "$td" -i "$pair_b" -n -p -U -c 50 -w "$pcapf" 'udp dst port 47030' \
        >"$out/tcpdump.out" 2>&1 &
    tdpid=$!
    n=0
    while ! grep -q "listening on" "$out/tcpdump.out" && [ "$n" -lt 100 ]; do
        sleep 0.1
        n=$((n + 1))
    done
    cat "$out/tcpdump.out"
    ok=0
    "$kit" -d "$dev" -t "$pair_a" -r "$pair_b" zcopy "$tdpid" || ok=1
    "$kit" -d "$dev" -t "$pair_a" -r "$pair_b" send 50 47030 || ok=1
    n=0
    while kill -0 "$tdpid" 2>/dev/null && [ "$n" -lt 100 ]; do
        sleep 0.1
        n=$((n + 1))
    done
    if kill -0 "$tdpid" 2>/dev/null; then
        echo "tcpdump did not see its 50 packets within 10 s"
        kill "$tdpid"
        ok=1
    fi
    wait "$tdpid" || ok=1
    tail -n 3 "$out/tcpdump.out"
    "$kit" -d "$dev" -t "$pair_a" -r "$pair_b" pcapcheck "$pcapf" 50 47030 || ok=1
    return "$ok"
}
check tcpdump-zerocopy tcpdump_zerocopy

# 5. kldunload is refused while a descriptor is open, then succeeds.
unload_refused() {
    fifo=$out/hold.fifo
    rm -f "$fifo"
    mkfifo "$fifo" || return 1
    "$kit" -d "$dev" -t "$pair_a" -r "$pair_b" hold "$pair_b" <"$fifo" >"$out/hold.out" 2>&1 &
    holder=$!
    exec 3>"$fifo"
    n=0
    while ! grep -q ready "$out/hold.out" && [ "$n" -lt 50 ]; do
        sleep 0.1
        n=$((n + 1))
    done
    ok=0
    if ! grep -q ready "$out/hold.out"; then
        cat "$out/hold.out"
        ok=1
    elif kldunload zbpf.ko; then
        echo "kldunload succeeded with a descriptor open"
        ok=1
    else
        echo "kldunload refused while a descriptor is open, as it should be"
        kldstat -q -n zbpf.ko || ok=1
    fi
    exec 3>&-
    wait "$holder"
    rm -f "$fifo"
    return "$ok"
}
check unload-refused-while-open unload_refused

ifconfig "$pair_a" destroy >/dev/null 2>&1
pair_a=""
unload() {
    kldunload zbpf.ko || return 1
    if kldstat -q -n zbpf.ko; then
        echo "still loaded"
        return 1
    fi
    if [ "$mode" = side-by-side ] && [ -e /dev/zbpf ]; then
        echo "/dev/zbpf still exists"
        return 1
    fi
    echo "unloaded; $dev $( [ -e "$dev" ] && echo "is the kernel's own again" || echo "is gone")"
}
if kldstat -q -n zbpf.ko; then
    check unload unload
fi

# The kernel said nothing alarming meanwhile.
kernel_messages() {
    dmesg | tail -n "+$((dmesg_before + 1))" >"$out/dmesg.txt"
    if grep -Ei "panic|lock order reversal|witness|sleeping thread|page fault|zbpf.*(error|warn)" \
        "$out/dmesg.txt"; then
        return 1
    fi
    echo "$(wc -l <"$out/dmesg.txt" | tr -d ' ') new kernel message lines, none alarming"
}
check kernel-messages kernel_messages
finish
