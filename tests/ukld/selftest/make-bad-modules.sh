#!/usr/bin/env bash
# Builds the deliberately bad modules of the loader's self-test
# (tests/ukld/ukld_selftest.c) into target/ukld/bad/, with the compiler
# flags and the link of scripts/build-ko.sh (the module's C side):
#   bad_reloc.ko   an R_X86_64_REX_GOTPCRELX relocation (bad_reloc.S)
#   bad_undef.ko   an import of no_such_kpi
#   bad_kernel.ko  built for __FreeBSD_version 1600000: its dependency on
#                  the kernel excludes the emulated 1500068
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$root"
src=tests/ukld/selftest
out=${UKLD_OUT:-$root/target/ukld}/bad
mkdir -p "$out"
CC=${CC:-clang-19}
LD=${LD:-ld.lld-19}

bash scripts/freebsd-sysroot.sh --quiet
# shellcheck source=/dev/null
source target/freebsd-sysroot/env.sh

# shellcheck source=scripts/kmod-cflags.sh
source scripts/kmod-cflags.sh
ld=("$LD" -m elf_x86_64_fbsd -r -d -T kmod/ldscript.amd64)

"$CC" "${kflags[@]}" -c "$src/bad_mod.c" -o "$out/bad_mod.o"
"$CC" -target x86_64-unknown-freebsd15.0 -c "$src/bad_reloc.S" -o "$out/bad_reloc_asm.o"
"${ld[@]}" -o "$out/bad_reloc.ko" "$out/bad_mod.o" "$out/bad_reloc_asm.o"

"$CC" "${kflags[@]}" -DUKLD_BAD_UNDEF \
    -c "$src/bad_mod.c" -o "$out/bad_undef.o"
"${ld[@]}" -o "$out/bad_undef.ko" "$out/bad_undef.o"

"$CC" "${kflags[@]}" -U__FreeBSD_version -D__FreeBSD_version=1600000 -c "$src/bad_mod.c" -o "$out/bad_kernel.o"
"${ld[@]}" -o "$out/bad_kernel.ko" "$out/bad_kernel.o"

rm -f "$out"/*.o
echo "ukld: built $out/bad_reloc.ko, bad_undef.ko and bad_kernel.ko"
