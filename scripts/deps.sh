#!/usr/bin/env bash
# Installs what the build and the checks need and is missing: Debian packages
# (as root, or through sudo where there is one), then the FreeBSD headers
# (scripts/freebsd-sysroot.sh). Cheap when everything is present: no
# `apt-get update`, no download.
#
# Environment: ZBPF_APT_UPDATED=1 skips `apt-get update` (the caller ran it).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# clang, libclang-dev: the ABI check and bindgen; clang-19, lld-19, llvm-19:
# the kernel module's C side, link and gates (clang 14 reaches the stack
# guard through the GOT, which FreeBSD's module loader rejects);
# rustc-web, cargo-web, rust-web-src: a Rust toolchain with its library
# source, for the kernel build's -Z build-std; libpcap-dev, tcpdump: libpcap
# itself and reading captures; mandoc: the man page lint; shellcheck: the
# scripts; unzip: the FreeBSD headers' wheel; dpkg-dev (dpkg-source), patch,
# bison, flex: libpcap's source, the zbpf patch and libpcap's grammar and
# scanner (scripts/libpcap, tests/sim); fonts-dejavu-core: the font of the
# benchmark plot; valgrind: the benchmark's cache simulation
# (scripts/bench-cachesim.sh); bmake: reading the port skeleton
# (scripts/freebsd/port-check.sh).
packages=(clang libclang-dev clang-19 lld-19 llvm-19 rustc-web cargo-web rust-web-src
    libpcap-dev tcpdump mandoc shellcheck unzip dpkg-dev patch bison flex
    fonts-dejavu-core valgrind bmake)

installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]
}

missing=()
for p in "${packages[@]}"; do
    installed "$p" || missing+=("$p")
done
# The headers come from PyPI through pip.
if ! "${PYTHON:-python3}" -m pip --version >/dev/null 2>&1; then
    missing+=(python3 python3-pip)
fi

if ((${#missing[@]})); then
    echo "deps: installing ${missing[*]}" >&2
    sudo=()
    if [[ "$(id -u)" != 0 ]]; then
        if command -v sudo >/dev/null; then
            sudo=(sudo)
        else
            echo "deps: not root and no sudo: install ${missing[*]} by hand" >&2
            exit 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    if [[ "${ZBPF_APT_UPDATED:-0}" != 1 ]]; then
        "${sudo[@]}" apt-get update -qq
    fi
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

"$root/scripts/freebsd-sysroot.sh" --quiet
"$root/scripts/freebsd-sysroot.sh" --release 14 --quiet
