#!/usr/bin/env bash
# The ABI drift check: zbpf's src/abi tables against FreeBSD 15.0's and
# 14.x's headers.
#
# 1. zbpf-abigen prints a C file of _Static_asserts (ioctl numbers, structure
#    sizes, alignments and field offsets and sizes, constants, errnos, and
#    zbpf's own ioctls differing from every FreeBSD one).
# 2. It is compiled against each release's headers twice: as FreeBSD
#    userland, and with the kernel flags (-D_KERNEL: kernel-only errnos such
#    as ERESTART).
# 3. Every BIOC* command FreeBSD's headers define must be in IOCTL_TABLE.
# 4. Self-test: with a deliberately wrong expectation (`zbpf-abigen --break`)
#    the compile must fail, on that assertion and only on it.
#
# Environment: CLANG (default clang), CARGO (default cargo), ABIGEN_FEATURES
# (cargo features for building zbpf-abigen, default hosted; may be empty).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
CLANG=${CLANG:-clang}
CARGO=${CARGO:-cargo}
out="$root/target/abi-check"
mkdir -p "$out"

# The keys the self-test breaks: an ioctl, a structure field offset, a
# structure size, an enum constant, a zbpf extension (made to collide with a
# FreeBSD command) and a kernel-only errno (checked by the kernel compile).
SELF_TEST_KEYS=(
    "BIOCSETZBUF"
    "struct bpf_zbuf_header.bzh_user_gen"
    "struct bpf_xhdr"
    "BPF_D_OUT"
    "BIOCGETZNEXT"
    "ERESTART"
)

scripts/freebsd-sysroot.sh --quiet
scripts/freebsd-sysroot.sh --release 14 --quiet
# shellcheck source=/dev/null
. target/freebsd-sysroot-14/env.sh
read -r -a cflags14 <<<"$FREEBSD_CFLAGS"
# shellcheck source=/dev/null
. target/freebsd-sysroot/env.sh
read -r -a cflags <<<"$FREEBSD_CFLAGS"
common=("${cflags[@]}" -std=gnu17 -fsyntax-only -Wall -Wextra -Werror)
# kern.mk/kmod.mk's code-generation flags (see shared kernel-build notes);
# no opt_global.h or Concurrency Kit: the kernel part includes neither's users.
kernel=(-D_KERNEL -DKLD_MODULE -ffreestanding -fno-common -fno-strict-aliasing -fwrapv
    -mcmodel=kernel -mno-red-zone -mno-mmx -mno-sse -msoft-float)

# The generator needs no feature; building it with `make unit`'s features
# (hosted) reuses that build of the library instead of making another.
ABIGEN_FEATURES=${ABIGEN_FEATURES-hosted}
"$CARGO" build --quiet --features "$ABIGEN_FEATURES" --bin zbpf-abigen
abigen() { "${CARGO_TARGET_DIR:-$root/target}/debug/zbpf-abigen" "$@"; }

# compile FILE MODE LOG: MODE is user or kernel; output goes to LOG.
compile() {
    local extra=()
    if [[ "$2" == kernel ]]; then
        extra=("${kernel[@]}")
    fi
    "$CLANG" "${common[@]}" "${extra[@]}" "$1" >"$3" 2>&1
}

# 1-2. The real check.
gen="$out/zbpf_abi_check.c"
abigen >"$gen"
for mode in user kernel; do
    if ! compile "$gen" "$mode" "$out/$mode.log"; then
        cat "$out/$mode.log" >&2
        echo "abi-check: FAILED: src/abi differs from FreeBSD 15.0's headers ($mode compile of $gen)" >&2
        exit 1
    fi
    extra=()
    [[ "$mode" == kernel ]] && extra=("${kernel[@]}")
    if ! "$CLANG" "${cflags14[@]}" -std=gnu17 -fsyntax-only -Wall -Wextra -Werror \
        "${extra[@]}" "$gen" >"$out/$mode-14.log" 2>&1; then
        cat "$out/$mode-14.log" >&2
        echo "abi-check: FAILED: src/abi differs from FreeBSD 14.x's headers ($mode compile of $gen)" >&2
        exit 1
    fi
done
kernel_n=$(awk '/^#else \/\* !_KERNEL/ {exit} /^_Static_assert/ {n++} END {print n+0}' "$gen")
total_n=$(grep -c '^_Static_assert' "$gen")
user_n=$((total_n - kernel_n))
guards_n=$(grep -c '^#error' "$gen")

# 3. Coverage: FreeBSD's BIOC* commands that src/abi does not know.
"$CLANG" "${cflags[@]}" -std=gnu17 -dM -E "$gen" >"$out/macros.txt"
awk '$1 == "#define" && $2 ~ /^BIOC[A-Z0-9_]*$/ {print $2}' "$out/macros.txt" | sort -u >"$out/freebsd-biocs.txt"
abigen --list-ioctls | sort -u >"$out/zbpf-ioctls.txt"
missing=$(comm -23 "$out/freebsd-biocs.txt" "$out/zbpf-ioctls.txt")
if [[ -n "$missing" ]]; then
    echo "abi-check: FAILED: FreeBSD defines BIOC commands missing from IOCTL_TABLE: $(echo "$missing" | tr '\n' ' ')" >&2
    exit 1
fi
biocs_n=$(wc -l <"$out/freebsd-biocs.txt")
if ((biocs_n < 30)); then
    echo "abi-check: FAILED: found only $biocs_n BIOC* macros in FreeBSD's headers: the coverage check is broken" >&2
    exit 1
fi

echo "abi-check: OK: against FreeBSD 15.0's and 14.x's headers, $total_n assertions hold ($user_n userland, $kernel_n kernel-mode) plus $guards_n #ifdef guards;" \
    "all $biocs_n BIOC* commands of FreeBSD's headers are in IOCTL_TABLE"

# 4. Self-test: each deliberately wrong expectation must fail the compile, and
# every error must be that assertion's.
for key in "${SELF_TEST_KEYS[@]}"; do
    broken="$out/broken.c"
    abigen --break "$key" >"$broken"
    failed=0
    for mode in user kernel; do
        log="$out/broken-$mode.log"
        if compile "$broken" "$mode" "$log"; then
            continue
        fi
        failed=1
        if grep 'error:' "$log" | grep -vqF "<$key>"; then
            cat "$log" >&2
            echo "abi-check: SELF-TEST FAILED: breaking <$key> caused other errors ($mode compile)" >&2
            exit 1
        fi
        if ! grep 'error:' "$log" | grep -qF "<$key>"; then
            cat "$log" >&2
            echo "abi-check: SELF-TEST FAILED: breaking <$key> failed without naming it ($mode compile)" >&2
            exit 1
        fi
    done
    if [[ "$failed" == 0 ]]; then
        echo "abi-check: SELF-TEST FAILED: a wrong expectation for <$key> compiled: the check is blind" >&2
        exit 1
    fi
    echo "abi-check: self-test: drift in <$key> is caught"
done
echo "abi-check: self-test OK (${#SELF_TEST_KEYS[@]} deliberate drifts caught)"
