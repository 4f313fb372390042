#!/usr/bin/env bash
# A bounded fuzzing run of the filter machine (validate, then run over a
# contiguous and a segmented packet): `bash scripts/fuzz.sh [SECONDS]`
# (default 60). Needs rustup's nightly toolchain; installs cargo-fuzz.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${1:-60}
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
cd "$root"
cargo +nightly fuzz run --fuzz-dir tests/fuzz filter -- \
    -max_total_time="$seconds" -max_len=1024
