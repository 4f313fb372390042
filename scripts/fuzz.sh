#!/usr/bin/env bash
# Bounded fuzzing of every cargo-fuzz target in tests/fuzz (the filter
# machine, the simulated device's syscalls, the pcap reader), one after the
# other: `bash scripts/fuzz.sh [SECONDS]`, SECONDS per target (default 30).
# Each target first replays its saved inputs (tests/fuzz/seeds/TARGET:
# seeds and the reproducers of bugs found), then fuzzes; a crash stops the
# run with a failure and leaves the input in tests/fuzz/artifacts/TARGET.
#
# Needs rustup's stable toolchain (README) and installs cargo-fuzz if it is
# missing. cargo-fuzz passes unstable rustc options (-Z sanitizer...):
# RUSTC_BOOTSTRAP=1 lets the stable compiler take them, as the kernel
# build's -Z build-std does; no nightly toolchain is needed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${1:-30}
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
cd "$root"
fuzz_dir=tests/fuzz

# AddressSanitizer where the toolchain ships its runtime (rustup's does).
sanitizer=address
if ! compgen -G "$(rustc --print target-libdir)/librustc-*_rt.asan.a" >/dev/null; then
    echo "fuzz: no ASan runtime in this toolchain, fuzzing without a sanitizer" >&2
    sanitizer=none
fi

# Longest input per target: a filter program and packet; a sequence of
# syscalls; a capture file.
max_len() {
    case "$1" in
    filter) echo 1024 ;;
    syscalls) echo 4096 ;;
    *) echo 65536 ;;
    esac
}

for target in $(cargo fuzz list --fuzz-dir "$fuzz_dir"); do
    echo "fuzz: $target for ${seconds}s" >&2
    corpus=$fuzz_dir/corpus/$target
    seeds=$fuzz_dir/seeds/$target
    mkdir -p "$corpus"
    dirs=("$corpus")
    [[ -d "$seeds" ]] && dirs+=("$seeds")
    nice cargo fuzz run --fuzz-dir "$fuzz_dir" --sanitizer "$sanitizer" "$target" "${dirs[@]}" -- \
        -max_total_time="$seconds" -max_len="$(max_len "$target")" -len_control=0 \
        -print_final_stats=1
done
