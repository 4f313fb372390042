#!/usr/bin/env bash
# The gates zbpf.ko must pass on Linux before anyone loads it on FreeBSD:
#   1. it is an ELF relocatable object for FreeBSD (OSABI 9);
#   2. only relocation types FreeBSD's amd64 module loader accepts
#      for our code: R_X86_64_64, PC32, PLT32 and 32S;
#   3. no x87, MMX or SSE/AVX instruction anywhere (the kernel does not
#      save FPU state for us);
#   4. every undefined symbol is a KPI function listed in the release's list
#      (kmod/kpi-symbols.txt for 15.0, kmod/kpi-symbols-14.txt for 14.x);
#   5. the module metadata and SYSINIT linker sets are present;
#   6. code, read-only data and data are each padded to whole pages (so the
#      kernel linker can protect them page by page);
#   7. no LLVM bitcode or address-significance table ships in the module;
#   8. memcpy, memmove and memset are the kernel's, not a copy of the
#      module's own.
# Prints the module's size and how many symbols it imports.
# Usage: scripts/ko-gates.sh [KO [SYMBOL-LIST]]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ko=${1:-$root/target/ko/zbpf.ko}
symbols=${2:-$root/kmod/kpi-symbols.txt}
objdump=${OBJDUMP:-llvm-objdump-19}
fail=0

# check WHAT DETAIL: passes when DETAIL (the offending items) is empty.
check() {
    local what=$1 detail=$2
    if [[ -z $detail ]]; then
        echo "PASS  $what"
    else
        echo "FAIL  $what"
        while IFS= read -r line; do echo "      $line"; done <<<"$detail"
        fail=1
    fi
}

[[ -f $ko ]] || {
    echo "no module at $ko (run scripts/build-ko.sh)" >&2
    exit 1
}

header=$(readelf -hW "$ko")
kind=""
grep -q 'Type:.*REL (Relocatable file)' <<<"$header" || kind+="not a relocatable object "
grep -q 'OS/ABI:.*FreeBSD' <<<"$header" || kind+="OSABI is not FreeBSD"
check "ELF relocatable object with FreeBSD OSABI" "$kind"

bad_relocs=$(readelf -rW "$ko" | awk '/^ *[0-9a-f]+ +[0-9a-f]+ +R_X86_64/ {print $3}' |
    grep -Ev '^R_X86_64_(64|PC32|PLT32|32S)$' | sort | uniq -c || true)
check "relocations only 64, PC32, PLT32, 32S" "$bad_relocs"

# Mnemonics starting with "f" are x87 (fld, fadd, fxsave, ...); SIMD shows
# in its registers.
fpu=$("$objdump" -d --no-show-raw-insn "$ko" | awk -F'\t' '
    NF >= 2 && $1 ~ /^ *[0-9a-f]+:/ {
        split($2, w, " ")
        if (w[1] ~ /^f/ || w[1] ~ /^(emms|ldmxcsr|stmxcsr|xsave|xrstor)/ ||
            $0 ~ /%(x|y|z)mm[0-9]|%mm[0-7]|%st\(/)
            print
    }' || true)
check "no x87, MMX or SSE instruction" "$(head -5 <<<"$fpu")"

allowed=$(grep -v '^#' "$symbols" | sort -u)
imports=$(readelf -sW "$ko" | awk '$7 == "UND" && $8 != "" {print $8}' | sort -u)
unknown=$(comm -23 <(echo "$imports") <(echo "$allowed"))
check "undefined symbols all in ${symbols#"$root"/}" "$unknown"

# The engine copies with the kernel's memcpy, memmove and memset (the
# ifunc's pick for the CPU): the module must not carry its own.
own_mem=$(readelf -sW "$ko" | awk '$7 != "UND" && $8 ~ /^(memcpy|memmove|memset)$/ {print $8}' |
    sort -u)
check "memcpy, memmove and memset are the kernel's" "$own_mem"

sections=$(readelf -SW "$ko")
missing=""
for set in set_modmetadata_set set_sysinit_set; do
    grep -q " $set " <<<"$sections" || missing+="$set "
done
check "module metadata and SYSINIT linker sets present" "$missing"

# Section name and size, from `readelf -SW` without the "[Nr]" column.
sections_sizes=$(readelf -SW "$ko" | sed -n 's/^ *\[ *[0-9]*\] //p' | awk '{print $1, $5}')
unpadded=""
while read -r name hex; do
    case $name in
    .text | .rodata | .data)
        ((16#$hex % 4096 == 0)) || unpadded+="$name is $((16#$hex)) bytes"$'\n'
        ;;
    esac
done <<<"$sections_sizes"
check "text, rodata and data padded to whole pages" "${unpadded%$'\n'}"

llvm=$(awk '{print $1}' <<<"$sections_sizes" | grep -E '^\.llvm(bc|cmd|_addrsig)$' || true)
check "no LLVM bitcode or address-significance sections" "$llvm"

size=$(stat -c %s "$ko")
echo "zbpf.ko: $size bytes, $(wc -l <<<"$imports") undefined symbols (KPI imports)"
exit "$fail"
