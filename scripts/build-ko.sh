#!/usr/bin/env bash
# Builds zbpf.ko on Linux, for real, as far as this machine allows:
#   1. the Rust engine as a static library for x86_64-unknown-none
#      (Debian's rustc-web with its library source: -Z build-std),
#      kernel code model, no FPU, static relocations only;
#   2. the C shims with clang and FreeBSD's kmod.mk flags against each
#      release's kernel headers (from the ziglang wheels;
#      scripts/freebsd-sysroot.sh): FreeBSD 15.0 and 14.x (as 14.3);
#   3. ld.lld -r with the project's linker script, as kmod.mk links modules.
# Output: target/ko/zbpf.ko (15.0) and target/ko/14/zbpf.ko (14.x); the
# Rust half is the same in both. The gates are scripts/ko-gates.sh.
# On FreeBSD, use kmod/Makefile (bsd.kmod.mk) instead.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out=target/ko
mkdir -p "$out"

bash scripts/freebsd-sysroot.sh --quiet
bash scripts/freebsd-sysroot.sh --release 14 --quiet

# Concurrency Kit headers (sys/epoch.h needs them), private to this build.
ck=target/freebsd-sysroot/ck
if [[ ! -f "$ck/usr/include/ck_pr.h" ]]; then
    mkdir -p "$ck"
    (cd "$ck" && apt-get download libck-dev >/dev/null && dpkg -x libck-dev_*.deb . && rm -f libck-dev_*.deb)
fi

echo "==> Rust engine (staticlib, x86_64-unknown-none)"
RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc CARGO_TARGET_DIR=target/kmod \
    CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_LTO=fat \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 CARGO_PROFILE_RELEASE_PANIC=abort \
    RUSTFLAGS="-C relocation-model=static -Z plt=yes -C force-frame-pointers=yes" \
    /usr/bin/cargo rustc --quiet --release --lib --crate-type staticlib \
    --features kmod --target x86_64-unknown-none \
    -Z build-std=core,compiler_builtins,alloc
lib=target/kmod/x86_64-unknown-none/release/libzbpf.a

# The engine's half, shared by both releases: only what the C side calls
# (zbpf_rs_*), and what that needs from core, alloc and compiler-builtins;
# then everything but the interface made local. compiler-builtins' own
# memcpy, memmove and memset are renamed away first, so the engine's copies
# call the kernel's, which FreeBSD picks per CPU at boot (the ifunc: rep
# movsb with ERMS), as bpf.c's do; compiler-builtins' take three rep
# instructions per call, short copies included.
mapfile -t builtins < <(llvm-ar-19 t "$lib" | grep '^compiler_builtins-')
kept=target/kmod/kernel-mem
rm -rf "$kept" && mkdir -p "$kept"
cp "$lib" "$kept/libzbpf.a"
(
    cd "$kept"
    llvm-ar-19 x libzbpf.a "${builtins[@]}"
    for member in "${builtins[@]}"; do
        "${OBJCOPY:-llvm-objcopy-19}" --redefine-sym memcpy=zbpf_builtins_memcpy \
            --redefine-sym memmove=zbpf_builtins_memmove \
            --redefine-sym memset=zbpf_builtins_memset "$member"
    done
    llvm-ar-19 r libzbpf.a "${builtins[@]}"
)
lib=$kept/libzbpf.a
ld=("${LD:-ld.lld-19}" -m elf_x86_64_fbsd)
entry=()
mapfile -t rs_syms < <(grep -o 'zbpf_rs_[a-z_]*' ffi/zbpf_kpi.h | sort -u)
for sym in "${rs_syms[@]}"; do
    entry+=(-u "$sym")
done
"${ld[@]}" -r "${entry[@]}" -o "$out/zbpf_rust.o" "$lib"
"${OBJCOPY:-llvm-objcopy-19}" --wildcard --keep-global-symbol='zbpf_rs_*' \
    "$out/zbpf_rust.o"

# build_module SYSROOT_ENV OUTDIR: the C shims against one release's
# headers, linked with the engine into OUTDIR/zbpf.ko.
build_module() {
    local env=$1 dir=$2 src obj objs=()
    # shellcheck source=/dev/null
    source "$env"
    mkdir -p "$dir"
    echo "==> C shims for FreeBSD $FREEBSD_VERSION (clang, kmod.mk flags, -Werror)"
    # shellcheck source=scripts/kmod-cflags.sh
    source scripts/kmod-cflags.sh
    for src in kmod/zbpf_kpi.c kmod/zbpf_dev.c; do
        obj="$dir/$(basename "$src" .c).o"
        "${CC:-clang-19}" "${kflags[@]}" -c "$src" -o "$obj"
        objs+=("$obj")
    done
    echo "==> link $dir/zbpf.ko (ld.lld -m elf_x86_64_fbsd -r -d -T kmod/ldscript.amd64)"
    "${ld[@]}" -r -d -T kmod/ldscript.amd64 -o "$dir/zbpf.ko" \
        "${objs[@]}" "$out/zbpf_rust.o" 2> >(grep -v 'will be removed' >&2)
    echo "built $dir/zbpf.ko"
}
build_module target/freebsd-sysroot/env.sh "$out"
build_module target/freebsd-sysroot-14/env.sh "$out/14"
