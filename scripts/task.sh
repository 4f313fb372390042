#!/bin/sh
# The tasks behind the Makefile. POSIX sh, so that FreeBSD runs it as is.
# `sh scripts/task.sh TASK [ARGS...]`; `test` runs every stage even after
# one fails, prints each stage's time, and fails if any stage failed.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export PATH
FEATURES=${FEATURES:-hosted}

task=${1:-}
[ $# -gt 0 ] && shift

on_freebsd() {
    [ "$(uname -s)" = FreeBSD ]
}

# stage NAME COMMAND...: runs one stage with a header and its wall time.
failed=""
stage() {
    name=$1
    shift
    echo "==> $name"
    t0=$(date +%s)
    if "$@"; then
        echo "<== $name: ok, $(($(date +%s) - t0)) s"
    else
        echo "<== $name: FAILED, $(($(date +%s) - t0)) s"
        failed="$failed $name"
    fi
}

deps() { bash scripts/deps.sh; }
fmt() { cargo fmt --check; }
clippy() {
    cargo clippy --all-targets --features "$FEATURES" -- -D warnings &&
        cargo clippy --all-targets --features kmod,hosted -- -D warnings &&
        cargo clippy -p zbpf-bench --all-targets -- -D warnings
}
unit() { cargo test --release --features "$FEATURES,kmod"; }
abi_check() { ABIGEN_FEATURES="$FEATURES" bash scripts/abi-check.sh; }
ko() {
    bash scripts/build-ko.sh &&
        echo "zbpf.ko for FreeBSD 15.0:" && bash scripts/ko-gates.sh &&
        echo "zbpf.ko for FreeBSD 14.x:" &&
        bash scripts/ko-gates.sh target/ko/14/zbpf.ko kmod/kpi-symbols-14.txt &&
        bash scripts/ko-gates-selftest.sh
}
# The shipped zbpf.ko loaded and run by the userspace kld harness, with the
# kit's checks against it (tests/ukld/run.sh).
ukld() { bash tests/ukld/run.sh; }
# Every fuzz target for a bounded time (SECONDS each, default 30).
fuzz() { bash scripts/fuzz.sh "${1:-30}"; }
man() { mandoc -T lint -W warning kmod/zbpf.4 && echo "zbpf.4: no mandoc warnings"; }
lint() {
    shellcheck scripts/*.sh scripts/freebsd/*.sh scripts/libpcap/*.sh tests/sim/*.sh \
        tests/ukld/*.sh tests/ukld/selftest/*.sh .ci/run &&
        echo "scripts: shellcheck clean" &&
        RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps --features "$FEATURES" &&
        echo "rustdoc: no broken or private links"
}
# The libpcap patches (1.10.3, 1.10.5): apply to the upstream sources, compile for
# FreeBSD with zero copy in (scripts/libpcap/check.sh).
libpcap() { bash scripts/libpcap/check.sh; }
# The FreeBSD test kit compiles for FreeBSD and its scripts lint clean; the
# port skeleton reads right.
kit() { bash scripts/freebsd/compile-check.sh && bash scripts/freebsd/port-check.sh; }
# The kit's checks and the patched libpcap against the simulator.
sim() { bash tests/sim/run.sh; }
demo() { cargo run --quiet --release --features "$FEATURES" --bin zbpf-demo -- "$@"; }
# The benchmark suite (package zbpf-bench, tests/bench): release build, callgrind's
# cache simulation of the consumers, then every benchmark; writes
# tests/bench/benchmarks.md and benchmarks.png and prints the key ratios;
# then the real module's delivery cost beside the simulator's.
bench() {
    cargo build --release -p zbpf-bench --bin zbpf-bench || return 1
    mkdir -p target/bench
    rm -f target/bench/cachesim.tsv
    bash scripts/bench-cachesim.sh target/release/zbpf-bench target/bench/cachesim.tsv ||
        echo "bench: the cache simulation failed; the report goes without it" >&2
    target/release/zbpf-bench --cachesim target/bench/cachesim.tsv "$@" || return 1
    # The real zbpf.ko beside the simulator, appended to the full report
    # (tests/ukld/bench.sh); not to a --smoke or partial one.
    [ $# -eq 0 ] || return 0
    bash tests/ukld/bench.sh tests/bench/benchmarks.md
}
# CI's look at the benchmarks: the suite and the criterion bench build, and
# each runs briefly (seconds). Fails only if one crashes or the things it
# compares disagree, never on timing. Both are in the package zbpf-bench
# (tests/bench), whose release build they share.
bench_smoke() {
    cargo build --release -p zbpf-bench --bin zbpf-bench &&
        cargo test --release -p zbpf-bench --bin zbpf-bench &&
        target/release/zbpf-bench --smoke &&
        cargo bench -p zbpf-bench --bench filter -- --test
}

case $task in
run)
    if on_freebsd; then
        exec sh scripts/freebsd/run.sh "$@"
    fi
    deps
    demo "$@"
    ;;
test)
    if on_freebsd; then
        exec sh scripts/freebsd/kit.sh "$@"
    fi
    start=$(date +%s)
    stage deps deps
    stage fmt fmt
    stage clippy clippy
    stage unit unit
    stage bench-smoke bench_smoke
    stage abi-check abi_check
    stage ko ko
    stage ukld ukld
    stage man man
    stage lint lint
    stage libpcap libpcap
    stage kit kit
    stage sim sim
    stage fuzz fuzz
    if [ -n "$failed" ]; then
        echo "make test: FAILED stages:$failed ($(($(date +%s) - start)) s)"
        exit 1
    fi
    echo "make test: all stages passed ($(($(date +%s) - start)) s)"
    ;;
deps) deps ;;
demo) deps && demo "$@" ;;
fmt) fmt ;;
clippy) deps && clippy ;;
unit) deps && unit ;;
abi-check) deps && abi_check ;;
ko) deps && ko ;;
ukld) deps && ukld ;;
man) deps && man ;;
lint) deps && lint ;;
bench) deps && bench "$@" ;;
bench-smoke) deps && bench_smoke ;;
libpcap) deps && libpcap ;;
kit) deps && kit ;;
sim) deps && sim ;;
fuzz) deps && fuzz "$@" ;;
*)
    echo "usage: make {run|test|deps|demo|bench|bench-smoke|fmt|clippy|unit|abi-check|ko|ukld|man|lint|libpcap|kit|sim|fuzz}" >&2
    exit 2
    ;;
esac
