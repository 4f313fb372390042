#!/usr/bin/env bash
# CI check of the FreeBSD test kit (the `kit` stage of `make test`; the kit
# itself runs only on FreeBSD): every C file of tests/freebsd/ compiles for
# FreeBSD 15.0 and 14.x (clang -target x86_64-unknown-freebsd15.0 and 14.3,
# each release's headers from scripts/freebsd-sysroot.sh, libpcap's <pcap.h>
# from the patched source of scripts/libpcap/source.sh) with -Wall -Wextra
# -Werror, and the
# kit's scripts are shellcheck-clean (as POSIX sh, which FreeBSD runs them
# with). Objects go to target/freebsd-kit-ci/.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
CLANG=${CLANG:-clang}
out="$root/target/freebsd-kit-ci"
rm -rf "$out"
mkdir -p "$out"

bash scripts/libpcap/source.sh --quiet

# For each release's headers: 15.0, then 14.x.
for release in 15 14; do
    scripts/freebsd-sysroot.sh --release "$release" --quiet
    env=target/freebsd-sysroot/env.sh
    [[ "$release" == 15 ]] || env=target/freebsd-sysroot-$release/env.sh
    # shellcheck source=/dev/null
    . "$env"
    read -r -a fbsd <<<"$FREEBSD_CFLAGS"
    mkdir -p "$out/$release"
    n=0
    for f in tests/freebsd/*.c; do
        o="$out/$release/$(basename "${f%.c}").o"
        if ! "$CLANG" "${fbsd[@]}" -std=gnu11 -O2 -Wall -Wextra -Werror \
            -I"$root/target/libpcap/patched" -c "$f" -o "$o" 2>"$o.log"; then
            cat "$o.log" >&2
            echo "kit: FAILED: $f does not compile for FreeBSD $FREEBSD_VERSION" >&2
            exit 1
        fi
        n=$((n + 1))
    done
    echo "kit: $n C files of tests/freebsd compile for FreeBSD $FREEBSD_VERSION with -Wall -Wextra -Werror"
done
shellcheck --shell=sh scripts/freebsd/kit.sh scripts/freebsd/run.sh
echo "kit: scripts/freebsd/kit.sh and run.sh: shellcheck clean (POSIX sh)"
