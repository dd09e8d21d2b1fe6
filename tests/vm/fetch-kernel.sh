#!/bin/bash
# Fetch Debian's current cloud kernel image package through apt and unpack it.
#
# Usage: fetch-kernel.sh [CACHE_DIR]        (default: build/vm-cache)
#   env METAPKG   metapackage to resolve (default linux-image-cloud-amd64)
#
# Resolves the image package that the metapackage's candidate version depends on,
# downloads it with `apt-get download` (no install), unpacks it with `dpkg-deb -x` and
# prints, on stdout, shell assignments describing the result:
#   KVER=6.1.0-NN-cloud-amd64 KPKG=linux-image-... KPKG_VERSION=... KDIR=... VMLINUZ=... CONFIG=...
# `apt-get update` must have been run before (tools/deps.sh does it).
set -euo pipefail

CACHE_DIR=${1:-build/vm-cache}
METAPKG=${METAPKG:-linux-image-cloud-amd64}

log() { echo "fetch-kernel: $*" >&2; }
die() { echo "fetch-kernel: error: $*" >&2; exit 1; }

for tool in apt-cache apt-get dpkg-deb; do
  command -v "$tool" >/dev/null || die "$tool not found (need a Debian/apt system)"
done

# The candidate version's dependency on linux-image-<abi>-cloud-amd64.
resolve() {
  apt-cache depends "$METAPKG" 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1
}
refreshed=no
refresh_lists() {
  # Package lists missing or stale (a superseded version is gone from the mirror): refresh once.
  [ "$refreshed" = no ] && [ "$(id -u)" = 0 ] || return 1
  log "running apt-get update"
  apt-get update -qq >&2 || return 1
  refreshed=yes
}
kpkg=$(resolve)
if [ -z "$kpkg" ] && refresh_lists; then kpkg=$(resolve); fi
[ -n "$kpkg" ] || die "cannot resolve $METAPKG with apt-cache depends (did 'apt-get update' run?)"
kver=${kpkg#linux-image-}
kpkg_version=$(apt-cache policy "$kpkg" | sed -n 's/^ *Candidate: //p')
[ -n "$kpkg_version" ] && [ "$kpkg_version" != "(none)" ] || die "no candidate version for $kpkg"
log "$METAPKG -> $kpkg $kpkg_version"

mkdir -p "$CACHE_DIR"
CACHE_DIR=$(cd "$CACHE_DIR" && pwd)
kdir="$CACHE_DIR/$kver"
# dpkg-deb file names encode ':' of an epoch as %3a; glob on the package name and arch.
deb=$(ls "$CACHE_DIR"/"${kpkg}"_*_amd64.deb 2>/dev/null | head -n1 || true)
if [ -z "$deb" ] || ! dpkg-deb -f "$deb" Version | grep -qxF "$kpkg_version"; then
  log "downloading $kpkg=$kpkg_version into $CACHE_DIR"
  rm -f "$CACHE_DIR"/"${kpkg}"_*_amd64.deb
  # -o APT::Sandbox::User=root: the cache dir is usually not readable by the _apt user.
  dl() { (cd "$CACHE_DIR" && apt-get download -q -o APT::Sandbox::User=root "$kpkg=$kpkg_version" >&2); }
  if ! dl; then
    refresh_lists || die "apt-get download $kpkg=$kpkg_version failed"
    kpkg=$(resolve)
    kver=${kpkg#linux-image-}
    kdir="$CACHE_DIR/$kver"
    kpkg_version=$(apt-cache policy "$kpkg" | sed -n 's/^ *Candidate: //p')
    dl || die "apt-get download $kpkg=$kpkg_version failed"
  fi
  deb=$(ls "$CACHE_DIR"/"${kpkg}"_*_amd64.deb | head -n1)
  rm -rf "$kdir"
fi

if [ ! -f "$kdir/.unpacked" ]; then
  log "unpacking $(basename "$deb")"
  rm -rf "$kdir"
  mkdir -p "$kdir"
  dpkg-deb -x "$deb" "$kdir"
  echo "$kpkg_version" >"$kdir/.unpacked"
fi

vmlinuz="$kdir/boot/vmlinuz-$kver"
config="$kdir/boot/config-$kver"
[ -f "$vmlinuz" ] || die "no $vmlinuz in $deb"
[ -f "$config" ] || die "no $config in $deb"

echo "KVER=$kver"
echo "KPKG=$kpkg"
echo "KPKG_VERSION=$kpkg_version"
echo "KDIR=$kdir"
echo "VMLINUZ=$vmlinuz"
echo "CONFIG=$config"
