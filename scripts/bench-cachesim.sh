#!/usr/bin/env bash
# Explains the consumer and scale benchmarks with counters where the
# machine has no hardware ones (perf stat is not supported here): runs a
# small run of each consumer (walk the headers, checksum every byte) in each
# mode (BUFFER, ZBUF, the memcpy baseline), and of 1, 8 and 64 descriptors
# on one interface, under callgrind's cache simulation, collecting only the
# measured rounds (--toggle-collect on cachesim_measured and
# scale_measured), and writes one line per run: packets, instructions, data
# reads and writes, D1 and LL data misses, I1 and LL instruction misses.
#
#   scripts/bench-cachesim.sh BENCH_BINARY OUT_TSV
#
# The simulated caches are this CPU's first two levels, read from sysfs:
# D1 is the L1 data cache, "LL" is the per-core L2 (the records of one
# round, 768 KiB, fit the 32 MiB L3 of a typical server whole, so L2 is the
# level that tells). Needs valgrind (Debian's package).
set -euo pipefail

bin=${1:?usage: bench-cachesim.sh BENCH_BINARY OUT_TSV}
out=${2:?usage: bench-cachesim.sh BENCH_BINARY OUT_TSV}

if ! command -v valgrind >/dev/null; then
    echo "bench-cachesim: valgrind not found (apt-get install valgrind)" >&2
    exit 1
fi

# cache LEVEL TYPE DEFAULT: "size,assoc,line" of a cache level from sysfs.
cache() {
    local d
    for d in /sys/devices/system/cpu/cpu0/cache/index*; do
        [[ -r $d/level && -r $d/type ]] || continue
        if [[ $(cat "$d/level") == "$1" && $(cat "$d/type") == "$2" ]]; then
            local size ways line
            size=$(cat "$d/size")
            size=${size%K}
            ways=$(cat "$d/ways_of_associativity")
            line=$(cat "$d/coherency_line_size")
            echo "$((size * 1024)),$ways,$line"
            return
        fi
    done
    echo "$3"
}
i1=$(cache 1 Instruction 32768,8,64)
d1=$(cache 1 Data 32768,8,64)
ll=$(cache 2 Unified 1048576,8,64)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# run NAME MODE TOGGLE ARGS...: one callgrind run, one line of the table.
run() {
    local name=$1 mode=$2 toggle=$3
    shift 3
    local cg=$work/callgrind.$name.$mode
    valgrind --tool=callgrind --cache-sim=yes --I1="$i1" --D1="$d1" --LL="$ll" \
        --toggle-collect="*$toggle*" --callgrind-out-file="$cg" "$bin" "$@" \
        >"$work/stdout" 2>"$work/stderr" || {
        echo "bench-cachesim: $name/$mode failed:" >&2
        cat "$work/stderr" >&2
        exit 1
    }
    local packets
    packets=$(awk '$1 == "cachesim-packets" { print $2 }' "$work/stdout")
    # The events line names the columns; "totals:" omits trailing zeros.
    awk -v c="$name" -v m="$mode" -v p="$packets" '
        $1 == "events:" { for (i = 2; i <= NF; i++) name[i - 1] = $i; n = NF - 1 }
        $1 == "totals:" { for (i = 2; i <= NF; i++) v[name[i - 1]] = $i }
        END {
            printf "%s\t%s\t%s", c, m, p
            split("Ir Dr Dw D1mr D1mw DLmr DLmw I1mr ILmr", want, " ")
            for (k = 1; k <= 9; k++) printf "\t%d", v[want[k]] + 0
            printf "\n"
        }' "$cg"
}

mkdir -p "$(dirname "$out")"
{
    printf 'consumer\tmode\tpackets\tIr\tDr\tDw\tD1mr\tD1mw\tDLmr\tDLmw\tI1mr\tILmr\n'
    for consumer in walk checksum; do
        for mode in buffer zbuf memcpy; do
            run "$consumer" "$mode" cachesim_measured \
                --only consumers --small --consumer "$consumer" --mode "$mode"
        done
    done
    for n in 1 8 64; do
        run scale "$n" scale_measured --only scale --small --descriptors "$n"
    done
} >"$out.tmp"
mv "$out.tmp" "$out"
echo "bench-cachesim: D1 $d1, LL (L2) $ll; wrote $out"
column -t -s $'\t' "$out" 2>/dev/null || cat "$out"
