#!/usr/bin/env bash
# Fetches a libpcap release's source from Debian's archive and lays out three
# trees (nothing of libpcap is committed):
#
#   pristine/  the upstream release tarball as the tcpdump group signed it
#              (Debian's libpcap_VERSION.orig.tar.*; its .asc is upstream's
#              signature), untouched: the reference;
#   patched/   the same tarball with the zbpf patch applied. This is what
#              the patch is made against and what the checks build: a
#              FreeBSD user starts from the upstream tarball (or the port),
#              not from Debian's tree;
#   debian/    Debian's tree (dpkg-source -x: upstream plus Debian's own
#              patches, one of which, kfreebsd.diff, touches pcap-bpf.c),
#              patched too, only to show that the patch also applies there.
#
# Versions:  1.10.3  Debian bookworm  scripts/libpcap/zbpf.patch         target/libpcap/
#            1.10.5  Debian trixie    scripts/libpcap/zbpf-1.10.5.patch  target/libpcap-1.10.5/
#
# The patch must apply to pristine/ exactly (no fuzz, no offset) and to
# debian/ without fuzz (offsets allowed). Prints "libpcap-source: ..." lines;
# exits non-zero if a step fails.
#
# Fetching needs deb-src entries: if apt knows no source package libpcap of
# the version, /etc/apt/sources.list.d/zbpf-deb-src.sources is written (as
# root, or through sudo) with deb-src entries for bookworm and trixie (source
# indexes only: nothing installable changes) and `apt-get update` runs. The
# source package is fetched with `apt-get source --download-only
# libpcap/SUITE`. Nothing is fetched again once the files are there.
#
# Usage: scripts/libpcap/source.sh [--quiet] [VERSION]   (default 1.10.3)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
quiet=0
if [[ "${1:-}" == --quiet ]]; then
    quiet=1
    shift
fi
version=${1:-1.10.3}
case $version in
1.10.3)
    suite=bookworm
    patch_file="$root/scripts/libpcap/zbpf.patch"
    out="$root/target/libpcap"
    ;;
1.10.5)
    suite=trixie
    patch_file="$root/scripts/libpcap/zbpf-1.10.5.patch"
    out="$root/target/libpcap-1.10.5"
    ;;
*)
    echo "libpcap-source: no zbpf patch for libpcap $version (1.10.3, 1.10.5)" >&2
    exit 2
    ;;
esac

say() { ((quiet)) || echo "libpcap-source: $*"; }
die() {
    echo "libpcap-source: FAILED: $*" >&2
    exit 1
}

sudo=()
if [[ "$(id -u)" != 0 ]] && command -v sudo >/dev/null; then
    sudo=(sudo)
fi

# The downloaded files of the source package.
have_download() {
    local d o
    d=$(compgen -G "$out/dl/libpcap_${version}-*.dsc" | tail -1) || return 1
    o=$(compgen -G "$out/dl/libpcap_${version}.orig.tar.*" | grep -v '\.asc$' | head -1) || return 1
    [[ -f "$d" && -f "$o" ]]
}

mkdir -p "$out/dl"
if ! have_download; then
    if ! apt-cache showsrc libpcap 2>/dev/null | grep -q "^Version: $version-"; then
        say "adding deb-src entries for bookworm and trixie"
        "${sudo[@]}" tee /etc/apt/sources.list.d/zbpf-deb-src.sources >/dev/null <<'EOF'
# Added by zbpf's scripts/libpcap/source.sh: Debian's libpcap source packages
# (1.10.3 in bookworm, 1.10.5 in trixie), to check the zbpf libpcap patches.
# Source indexes only.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        "${sudo[@]}" apt-get update -qq
    fi
    say "apt-get source --download-only libpcap/$suite"
    # apt's sandbox user cannot write into the work tree: download as we are
    # (the files are checked against the signed Sources index all the same).
    (cd "$out/dl" && apt-get source -qq --download-only \
        -o APT::Sandbox::User=root "libpcap/$suite") >"$out/dl/apt.log" 2>&1 ||
        { cat "$out/dl/apt.log" >&2; die "apt-get source libpcap/$suite"; }
    have_download || die "$suite's libpcap is not $version any more"
fi
dsc=$(compgen -G "$out/dl/libpcap_${version}-*.dsc" | tail -1)
orig=$(compgen -G "$out/dl/libpcap_${version}.orig.tar.*" | grep -v '\.asc$' | head -1)
say "source: $(basename "$dsc") ($(basename "$orig"), sha256 $(sha256sum "$orig" | cut -c1-16)...)"

# apply DIR MODE LOG: MODE exact (no fuzz, no offset) or offset (no fuzz).
apply() {
    local dir=$1 mode=$2 log=$3
    if ! (cd "$dir" && patch -p1 -F0 -N --no-backup-if-mismatch <"$patch_file") >"$log" 2>&1; then
        cat "$log" >&2
        return 1
    fi
    if grep -q "fuzz" "$log"; then
        cat "$log" >&2
        return 1
    fi
    if [[ "$mode" == exact ]] && grep -q "offset" "$log"; then
        cat "$log" >&2
        return 1
    fi
}

stamp="$out/.stamp"
want="$(sha256sum "$patch_file" "$dsc" | sha256sum | cut -c1-32)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -d "$out/patched" ]]; then
    say "trees up to date ($(basename "$patch_file") unchanged)"
    exit 0
fi
rm -rf "$out/pristine" "$out/patched" "$out/debian" "$stamp"
mkdir -p "$out/pristine" "$out/patched"
tar -xf "$orig" -C "$out/pristine" --strip-components=1
tar -xf "$orig" -C "$out/patched" --strip-components=1
dpkg-source -q -x "$dsc" "$out/debian" >"$out/dpkg-source.log" 2>&1 ||
    { cat "$out/dpkg-source.log" >&2; die "dpkg-source -x"; }

apply "$out/patched" exact "$out/apply-upstream.log" ||
    die "$(basename "$patch_file") does not apply cleanly (no fuzz, no offset) to upstream libpcap $version"
say "$(basename "$patch_file") applies cleanly to upstream libpcap $version (no fuzz, no offset)"
apply "$out/debian" offset "$out/apply-debian.log" ||
    die "$(basename "$patch_file") does not apply to Debian's patched libpcap $version tree"
say "$(basename "$patch_file") also applies to Debian's patched $version tree (no fuzz$(grep -q offset "$out/apply-debian.log" && echo ", with line offsets from Debian's patches"))"
echo "$want" >"$stamp"
