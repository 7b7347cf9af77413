#!/usr/bin/env bash
# fetch-guest-kernel.sh: Debian's stock cloud kernel for QEMU guests (tests/e2e/cgroupv2_qemu_test.sh),
# unpacked into a cache outside the checkout and never installed on the host (installing it
# would run initramfs-tools and bootloader hooks). Prints progress on stderr and, as the last
# line on stdout, the path of the vmlinuz; its modules are under <dir>/lib/modules/<release>/.
#
#   scripts/fetch-guest-kernel.sh            # -> /var/cache/strata/guest-kernel/<ver>/boot/vmlinuz-<ver>
#
# The package is the one the metapackage linux-image-cloud-amd64 depends on (resolved with
# apt-cache), fetched with `apt-get download` and unpacked with `dpkg-deb -x`. A second run
# finds it in the cache and downloads nothing. Needs only Debian's archive: when apt knows no
# candidate it runs `apt-get update` first (root, or sudo).
# Environment: STRATA_CACHE_DIR (default ${XDG_CACHE_HOME:-/var/cache}/strata).
set -euo pipefail

META=linux-image-cloud-amd64
cache_root=${STRATA_CACHE_DIR:-${XDG_CACHE_HOME:-/var/cache}/strata}/guest-kernel

say() { echo "fetch-guest-kernel: $*" >&2; }
die() {
  say "error: $*"
  exit 1
}

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# The versioned package behind the metapackage, e.g. linux-image-6.1.0-56-cloud-amd64.
resolve_package() {
  apt-cache depends "$META" 2>/dev/null |
    sed -n 's/^ *|\{0,1\}Depends: *\(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' | head -n 1
}

# A kernel already unpacked in the cache (the newest), for when apt cannot answer.
cached_vmlinuz() {
  local newest=""
  for v in "$cache_root"/*/boot/vmlinuz-*; do
    [[ -f $v && -f $(dirname "$(dirname "$v")")/.complete ]] && newest=$v
  done
  echo "$newest"
}

pkg=$(resolve_package || true)
if [[ -z $pkg ]]; then
  say "apt knows no candidate for $META; running apt-get update"
  if ! as_root apt-get update -q >&2; then
    say "apt-get update failed"
  fi
  pkg=$(resolve_package || true)
fi
if [[ -z $pkg ]]; then
  cached=$(cached_vmlinuz)
  [[ -n $cached ]] || die "cannot resolve $META with apt-cache (is Debian's archive in sources.list?)"
  say "apt cannot resolve $META; using the cached $cached"
  echo "$cached"
  exit 0
fi

release=${pkg#linux-image-}                              # 6.1.0-56-cloud-amd64
pkgver=$(apt-cache policy "$pkg" | sed -n 's/^ *Candidate: *//p')
[[ -n $pkgver && $pkgver != "(none)" ]] || die "apt-cache has no candidate version of $pkg"
dir=$cache_root/$release
vmlinuz=$dir/boot/vmlinuz-$release

if [[ -f $dir/.complete && -f $vmlinuz && $(cat "$dir/.complete") == "$pkg $pkgver" ]]; then
  say "$pkg $pkgver already in $dir"
  echo "$vmlinuz"
  exit 0
fi

say "$META -> $pkg $pkgver"
mkdir -p "$cache_root"
tmp=$(mktemp -d "$cache_root/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# apt's sandbox user (_apt) must be able to write the download directory, or apt warns.
chmod 0755 "$tmp"
if id _apt >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]]; then chown _apt "$tmp"; fi
say "downloading $pkg=$pkgver (apt-get download)"
(cd "$tmp" && apt-get download -q "$pkg=$pkgver" >&2) || die "apt-get download $pkg=$pkgver failed"
deb=$(ls "$tmp"/*.deb 2>/dev/null | head -n 1)
[[ -n $deb ]] || die "apt-get download left no .deb in $tmp"
say "unpacking $(basename "$deb") ($(du -h "$deb" | cut -f1)) into $dir"
mkdir -p "$tmp/x"
dpkg-deb -x "$deb" "$tmp/x"
[[ -f $tmp/x/boot/vmlinuz-$release ]] || die "$(basename "$deb") holds no boot/vmlinuz-$release"
# Kernel and modules only; the docs are of no use to a guest.
rm -rf "$tmp/x/usr/share"
echo "$pkg $pkgver" > "$tmp/x/.complete"
rm -rf "$dir"
mv "$tmp/x" "$dir"
say "done: $vmlinuz"
echo "$vmlinuz"
