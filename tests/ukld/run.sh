#!/usr/bin/env bash
# The `ukld` stage of `make test`: the shipped zbpf.ko, loaded and run in
# userspace by the kld harness (tests/ukld). Not FreeBSD: the module's own
# bytes (its C shims and its Rust engine) run over an emulation of the
# kernel built against FreeBSD's headers.
#
# 1. builds target/ko/zbpf.ko if it is missing (scripts/build-ko.sh) and
#    the harness (tests/ukld/build.sh);
# 2. the loader's self-test: modules with an unknown relocation, an
#    undefined symbol and a kernel version outside their bounds are each
#    refused with kldload's message;
# 3. the kit's checks against the module in replace mode (/dev/bpf), then
#    in side-by-side mode (/dev/zbpf beside a built-in bpf: the naming
#    and a zero-copy capture, the stats write size, the device made
#    once), each ending with the unload and its leak and lock summary.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
ko=${1:-target/ko/zbpf.ko}
status=0

[[ -f "$ko" ]] || bash scripts/build-ko.sh
bash tests/ukld/selftest/make-bad-modules.sh
bash tests/ukld/build.sh

echo "ukld: the loader's refusals"
target/ukld/ukld_selftest "$ko" || status=1
echo "ukld: the kit against $ko, replace mode"
target/ukld/ukld_kit --ko "$ko" || status=1
echo "ukld: the kit against $ko, side-by-side mode"
target/ukld/ukld_kit --ko "$ko" --side-by-side device zerocopy-sysctl capture-zbuf \
    stats-write-size load-dev-once \
    kld-busy kld-unload || status=1
exit "$status"
