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
        cargo clippy --all-targets --features kmod,hosted -- -D warnings
}
unit() { cargo test --release --features "$FEATURES,kmod"; }
abi_check() { ABIGEN_FEATURES="$FEATURES" bash scripts/abi-check.sh; }
ko() {
    bash scripts/build-ko.sh && bash scripts/ko-gates.sh &&
        bash scripts/ko-gates-selftest.sh
}
man() { mandoc -T lint -W warning kmod/zbpf.4 && echo "zbpf.4: no mandoc warnings"; }
lint() { shellcheck scripts/*.sh .ci/run && echo "scripts: shellcheck clean"; }
demo() { cargo run --quiet --release --features "$FEATURES" --bin zbpf-demo -- "$@"; }

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
    stage abi-check abi_check
    stage ko ko
    stage man man
    stage lint lint
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
man) deps && man ;;
lint) deps && lint ;;
*)
    echo "usage: make {run|test|deps|demo|fmt|clippy|unit|abi-check|ko|man|lint}" >&2
    exit 2
    ;;
esac
