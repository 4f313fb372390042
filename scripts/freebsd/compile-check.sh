#!/usr/bin/env bash
# CI check of the FreeBSD test kit (the `kit` stage of `make test`; the kit
# itself runs only on FreeBSD): every C file of tests/freebsd/ compiles for
# FreeBSD (clang -target x86_64-unknown-freebsd15.0, FreeBSD 15.0's headers
# from scripts/freebsd-sysroot.sh, libpcap's <pcap.h> from the patched
# source of scripts/libpcap/source.sh) with -Wall -Wextra -Werror, and the
# kit's scripts are shellcheck-clean (as POSIX sh, which FreeBSD runs them
# with). Objects go to target/freebsd-kit-ci/.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
CLANG=${CLANG:-clang}
out="$root/target/freebsd-kit-ci"
rm -rf "$out"
mkdir -p "$out"

scripts/freebsd-sysroot.sh --quiet
# shellcheck source=/dev/null
. target/freebsd-sysroot/env.sh
read -r -a fbsd <<<"$FREEBSD_CFLAGS"
bash scripts/libpcap/source.sh --quiet

n=0
for f in tests/freebsd/*.c; do
    o="$out/$(basename "${f%.c}").o"
    if ! "$CLANG" "${fbsd[@]}" -std=gnu11 -O2 -Wall -Wextra -Werror \
        -I"$root/target/libpcap/patched" -c "$f" -o "$o" 2>"$o.log"; then
        cat "$o.log" >&2
        echo "kit: FAILED: $f does not compile for FreeBSD" >&2
        exit 1
    fi
    n=$((n + 1))
done
echo "kit: $n C files of tests/freebsd compile for FreeBSD 15.0 with -Wall -Wextra -Werror"
shellcheck --shell=sh scripts/freebsd/kit.sh scripts/freebsd/run.sh
echo "kit: scripts/freebsd/kit.sh and run.sh: shellcheck clean (POSIX sh)"
