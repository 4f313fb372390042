#!/usr/bin/env bash
# Proves scripts/ko-gates.sh can fail: each case links the real zbpf.ko with
# one deliberately bad object and requires the matching gate to FAIL.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ko=$root/target/ko/zbpf.ko
work=$root/target/ko/selftest
mkdir -p "$work"
cc=("${CC:-clang-19}" -target x86_64-unknown-freebsd15.0 -O2 -ffreestanding -nostdinc -c)
ld=("${LD:-ld.lld-19}" -m elf_x86_64_fbsd -r)
status=0

expect_fail() {
    local name=$1 gate=$2 src=$3
    shift 3
    printf '%s\n' "$src" >"$work/$name.c"
    "${cc[@]}" "$@" "$work/$name.c" -o "$work/$name.o"
    "${ld[@]}" -o "$work/$name.ko" "$ko" "$work/$name.o"
    if out=$(bash "$root/scripts/ko-gates.sh" "$work/$name.ko"); then
        echo "selftest $name: the gates passed a bad module" >&2
        status=1
    elif grep -q "^FAIL  $gate" <<<"$out"; then
        echo "selftest $name: caught by \"$gate\""
    else
        echo "selftest $name: failed, but not at \"$gate\":" >&2
        echo "$out" >&2
        status=1
    fi
}

expect_fail sse "no x87, MMX or SSE" \
    'double zbpf_bad_scale(double x) { return x * 2.5; }' -msse2
expect_fail unlisted "undefined symbols" \
    'int some_unlisted_kpi(int); int zbpf_bad_call(int x) { return some_unlisted_kpi(x); }' \
    -mcmodel=kernel -mno-sse -msoft-float
expect_fail gotpcrel "relocations only" \
    'extern int zbpf_bad_var; int zbpf_bad_read(void) { return zbpf_bad_var; }' \
    -fpic -mno-sse -msoft-float
expect_fail unpadded "text, rodata and data padded" \
    'int zbpf_bad_pad(void) { return 1; }' -mcmodel=kernel -mno-sse -msoft-float
expect_fail own-memset "memcpy, memmove and memset are the kernel's" \
    'void *memset(void *d, int c, unsigned long n) { char *p = d; while (n--) *p++ = (char)c; return d; }' \
    -mcmodel=kernel -mno-sse -msoft-float -fno-builtin
expect_fail bitcode "no LLVM bitcode" \
    'int zbpf_bad_bitcode(void) { return 2; }' -fembed-bitcode -mno-sse -msoft-float
exit "$status"
