#!/usr/bin/env bash
# build.sh: builds strata's guest kernel (bzImage and vmlinux with its PVH entry) from Debian's
# linux-source-6.1 and guest/kernel/strata.config into a cache outside the checkout, once per
# machine:
#
#   guest/kernel/build.sh               # builds when needed, then prints the paths (last line: the dir)
#   guest/kernel/build.sh --print-path  # prints the cache dir only; exit 0 when built, 3 when not
#
# Cache: ${STRATA_CACHE_DIR:-${STRATA_CACHE:-/var/cache/strata}}/kernel/<hash>/ holding bzImage,
# vmlinux, config (the full .config), System.map, release and build-info, where <hash> is the
# sha256 of strata.config, this script and the linux-source-6.1 package version. A change to
# any of them builds a new kernel; an existing one is reused and nothing is compiled.
#
# Steps: extract /usr/src/linux-source-6.1.tar.xz into <cache>/kernel/.build, `make tinyconfig`,
# merge strata.config, `make olddefconfig`, check that every line of strata.config survived
# (names the ones that did not), `make bzImage vmlinux` with a progress line every 15 s, copy the
# results into a temp dir and rename it into place. One build at a time per cache (flock on
# <cache>/kernel/.lock; a second caller waits and then finds the kernel built). The build dir
# has a fixed path so that ccache (used when installed) hits after a config change.
# Progress and errors go to stderr; the paths to stdout.
#
# Env: STRATA_CACHE_DIR or STRATA_CACHE (cache root), STRATA_KERNEL_JOBS (default: nproc),
# STRATA_KERNEL_NICE (default 10; the build shares the CPUs), STRATA_KERNEL_KEEP_BUILD=1 keeps
# the build tree.
# Needs: linux-source-6.1 gcc make bc bison flex libelf-dev libssl-dev xz-utils (scripts/install-deps.sh).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fragment=$here/strata.config
self=$here/build.sh
pkg=linux-source-6.1
tarball=/usr/src/$pkg.tar.xz
cache=${STRATA_CACHE_DIR:-${STRATA_CACHE:-/var/cache/strata}}/kernel
jobs=${STRATA_KERNEL_JOBS:-$(nproc)}
niceness=${STRATA_KERNEL_NICE:-10}

say() { echo "guest-kernel: $*" >&2; }
die() {
  say "error: $*"
  exit 1
}

print_only=0
case ${1:-} in
  --print-path) print_only=1 ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) die "unknown argument \"$1\" (try --help)" ;;
esac

version=$(dpkg-query -W -f='${Status} ${Version}' "$pkg" 2>/dev/null | sed -n 's/^install ok installed //p' || true)
if [[ -z $version || ! -f $tarball ]]; then
  die "$pkg is not installed (no $tarball): run scripts/install-deps.sh or apt-get install $pkg"
fi
hash=$( (cat "$fragment" "$self"; echo "$pkg $version") | sha256sum | cut -c1-64)
out=$cache/$hash

built() { [[ -f $out/.complete && -f $out/bzImage && -f $out/vmlinux ]]; }
report() {
  say "bzImage: $out/bzImage ($(du -h "$out/bzImage" | cut -f1))"
  say "vmlinux: $out/vmlinux ($(du -h "$out/vmlinux" | cut -f1)), release $(cat "$out/release")"
  echo "$out/bzImage"
  echo "$out/vmlinux"
  echo "$out"
}

if ((print_only)); then
  echo "$out"
  built || exit 3
  exit 0
fi
if built; then
  say "cached: $pkg $version + strata.config (${hash:0:12})"
  report
  exit 0
fi

for tool in make gcc bc bison flex xz tar flock sha256sum; do
  command -v $tool >/dev/null || die "$tool missing: run scripts/install-deps.sh"
done
[[ -f /usr/include/gelf.h ]] || die "libelf-dev missing (objtool needs it): run scripts/install-deps.sh"
[[ -f /usr/include/openssl/opensslv.h ]] || die "libssl-dev missing: run scripts/install-deps.sh"

mkdir -p "$cache"
exec 9> "$cache/.lock"
if ! flock -n 9; then
  say "another build holds $cache/.lock; waiting"
  flock 9
fi
if built; then # built by whoever held the lock
  say "built meanwhile by another caller"
  report
  exit 0
fi

t0=$(date +%s)
elapsed() { echo "$(($(date +%s) - t0)) s"; }
build=$cache/.build
src=$build/$pkg
log=$build/make.log
ticker=""
cleanup() {
  [[ -n $ticker ]] && kill "$ticker" 2>/dev/null
  rm -rf "$cache/.tmp-$hash"
  if [[ ${STRATA_KERNEL_KEEP_BUILD:-0} != 1 && ${build_ok:-0} == 1 && -d $build ]]; then
    # Deleting 2 GB of tree takes minutes on a busy disk: rename it and delete it in the
    # background, detached (the next build also removes leftovers).
    mv "$build" "$cache/.trash-$$" && (setsid rm -rf "$cache/.trash-$$" < /dev/null > /dev/null 2>&1 &)
  fi
}
trap cleanup EXIT

say "building $pkg $version with strata.config (${hash:0:12}) in $build, $jobs jobs, nice $niceness"
say "[1/5] extracting $tarball"
rm -rf "$build" "$cache"/.trash-*
mkdir -p "$build"
tar -xJf "$tarball" -C "$build"
[[ -f $src/Makefile ]] || die "$tarball holds no $pkg/Makefile"

mk=(nice -n "$niceness" make -C "$src" ARCH=x86_64 KBUILD_BUILD_USER=strata KBUILD_BUILD_HOST=strata
  KBUILD_BUILD_TIMESTAMP="$pkg $version")
if command -v ccache >/dev/null; then
  mk+=(CC="ccache gcc")
  ccache_note="ccache $(ccache --version | head -n 1 | awk '{print $NF}')"
else
  ccache_note="no ccache"
fi

say "[2/5] configuring: tinyconfig + strata.config + olddefconfig ($(elapsed))"
{
  "${mk[@]}" tinyconfig &&
    (cd "$src" && scripts/kconfig/merge_config.sh -m -O . .config "$fragment") &&
    "${mk[@]}" olddefconfig
} > "$build/config.log" 2>&1 || {
  tail -n 20 "$build/config.log" >&2
  die "configuring failed (log: $build/config.log)"
}
lost=()
while read -r line; do
  case $line in
    CONFIG_*=*) grep -qxF -- "$line" "$src/.config" || lost+=("$line (got: $(grep -E "^(# )?${line%%=*}[= ]" "$src/.config" || echo unset))") ;;
    "# CONFIG_"*" is not set")
      sym=${line#\# }
      sym=${sym%% *}
      ! grep -q "^$sym=" "$src/.config" || lost+=("$line (got: $(grep "^$sym=" "$src/.config"))")
      ;;
  esac
done < "$fragment"
if ((${#lost[@]})); then
  printf '  %s\n' "${lost[@]}" >&2
  die "${#lost[@]} lines of strata.config did not survive olddefconfig (a dependency is missing or something selects them)"
fi
say "config: $(grep -c '=y$' "$src/.config") options built in, every line of strata.config applied"

say "[3/5] compiling bzImage and vmlinux ($ccache_note; a line every 15 s; log: $log)"
expected=$(cat "$cache/.objects" 2>/dev/null || true)
count_objs() { grep -cE '^  (CC|AS|AR|LD|HOSTCC|OBJCOPY)' "$log" 2>/dev/null || true; }
(
  trap 'kill $sp 2>/dev/null; exit 0' TERM
  while :; do
    sleep 15 &
    sp=$!
    wait $sp
    n=$(count_objs)
    last=$(grep -E '^  (CC|AS|AR|LD)' "$log" 2>/dev/null | tail -n 1 | awk '{print $2}')
    say "  compiling: $n steps${expected:+ of about $expected}, $(elapsed), at ${last:-start}"
  done
) &
ticker=$!
if ! "${mk[@]}" -j"$jobs" bzImage vmlinux > "$log" 2>&1; then
  kill "$ticker" 2>/dev/null; ticker=""
  grep -E 'error|Error' "$log" | head -n 20 >&2 || true
  tail -n 20 "$log" >&2
  die "make bzImage vmlinux failed after $(elapsed) (log: $log)"
fi
kill "$ticker" 2>/dev/null || true
ticker=""
count_objs > "$cache/.objects"
say "compiled: $(count_objs) steps in $(elapsed)"

say "[4/5] checking the results"
[[ -f $src/arch/x86/boot/bzImage && -f $src/vmlinux ]] || die "make left no bzImage or vmlinux"
# The PVH entry point is an ELF note (XEN_ELFNOTE_PHYS32_ENTRY, type 18, owner "Xen").
if command -v readelf >/dev/null; then
  readelf -n "$src/vmlinux" | grep -q 'Xen.*0x00000012' || die "vmlinux has no PVH entry note (CONFIG_PVH)"
fi

say "[5/5] installing into $out"
tmp=$cache/.tmp-$hash
rm -rf "$tmp"
mkdir -p "$tmp"
cp "$src/arch/x86/boot/bzImage" "$src/vmlinux" "$src/System.map" "$tmp/"
cp "$src/.config" "$tmp/config"
cp "$fragment" "$tmp/strata.config"
"${mk[@]}" -s kernelrelease > "$tmp/release"
cat > "$tmp/build-info" <<EOF
source: $pkg $version
fragment: strata.config sha256 $(sha256sum "$fragment" | cut -c1-64)
built: $(date -u +%FT%TZ) in $(elapsed) with $jobs jobs ($ccache_note)
EOF
echo "$pkg $version ${hash}" > "$tmp/.complete"
rm -rf "$out"
mv -T "$tmp" "$out"
build_ok=1
say "done in $(elapsed)"
report
