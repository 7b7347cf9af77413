#!/usr/bin/env bash
# make-guest-initramfs.sh: an initramfs (cpio newc, gzip) for QEMU guests that run strata on a
# stock kernel (tests/e2e/cgroupv2_qemu_test.sh). It holds Debian's busybox-static as /bin/busybox
# with a link per applet, the given programs with every shared library `ldd` names (the dynamic
# loader at its own path), the given directories, and an /init that:
#   1. copies the initramfs into a tmpfs and switch_root's into it (pivot_root(2), which
#      container runtimes use, refuses the initial rootfs);
#   2. mounts proc, sysfs, devtmpfs, tmpfs on /run and /tmp, and cgroup2 alone on /sys/fs/cgroup
#      (no v1 hierarchy), and enables every controller the root offers among cpu, cpuset, memory,
#      pids, io, hugetlb in its cgroup.subtree_control;
#   3. runs /guest/main (from a --tree), prints "ALL-DONE" when it exits 0 ("GUEST-FAILED ..."
#      otherwise) and powers the guest off. Without /guest/main it starts a shell on the console.
# Lines from /init start with "strata-guest:".
#
#   make-guest-initramfs.sh -o OUT.cpio.gz [--bin PROGRAM]... [--tree SRC:DEST]...
#     --bin PROGRAM   copy PROGRAM (stripped) to /bin/<name>, plus the libraries it needs
#     --tree SRC:DEST copy the directory SRC to DEST (e.g. a container rootfs to /rootfs)
# Needs: busybox-static, cpio, gzip, ldd (libc-bin); strip (binutils) when present.
set -euo pipefail

say() { echo "make-guest-initramfs: $*" >&2; }
die() {
  say "error: $*"
  exit 1
}

out="" bins=() trees=()
while (($#)); do
  case $1 in
    -o) out=${2:?}; shift 2 ;;
    --bin) bins+=("${2:?}"); shift 2 ;;
    --tree) trees+=("${2:?}"); shift 2 ;;
    *) die "unknown argument \"$1\" (see the header of $0)" ;;
  esac
done
[[ -n $out ]] || die "-o OUTPUT is required"
busybox=/bin/busybox
if [[ ! -x $busybox ]] || ! $busybox --list >/dev/null 2>&1; then die "$busybox missing: install busybox-static"; fi
[[ $(ldd "$busybox" 2>&1 || true) != *"=>"* ]] || die "$busybox is not static: install busybox-static"
for tool in cpio gzip ldd; do command -v $tool >/dev/null || die "$tool missing (scripts/install-deps.sh)"; done

stage=$(mktemp -d "${TMPDIR:-/tmp}/strata-initramfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,dev,proc,sys,run,tmp,newroot,guest}

# Copies a file to the same absolute path inside the image, following symlinks.
copy_abs() {
  mkdir -p "$stage$(dirname "$1")"
  cp -L "$1" "$stage$1"
}

for b in "${bins[@]}"; do
  [[ -x $b ]] || die "--bin $b: not an executable file"
  dest=$stage/bin/$(basename "$b")
  if command -v strip >/dev/null; then strip --strip-unneeded -o "$dest" "$b"; else cp -L "$b" "$dest"; fi
  # "libx.so => /lib/.../libx.so (0x...)" and the loader "/lib64/ld-linux-x86-64.so.2 (0x...)".
  libs=$(ldd "$b" 2>&1 || true)
  if [[ $libs == *"=>"* ]]; then
    [[ $libs != *"not found"* ]] || die "--bin $b: $(grep 'not found' <<< "$libs" | head -n 1)"
    while read -r lib; do copy_abs "$lib"; done < <(sed -n 's/.*=> \(\/[^ ]*\) (0x.*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (0x.*/\1/p' <<< "$libs")
  fi
  say "added $(basename "$b") ($(du -h "$dest" | cut -f1))"
done

for t in "${trees[@]}"; do
  src=${t%%:*} dest=${t#*:}
  [[ -d $src && $dest == /* && $t == *:* ]] || die "--tree $t: want an existing SRC dir and an absolute DEST"
  mkdir -p "$stage$dest"
  cp -a "$src/." "$stage$dest/"
  say "added $src as $dest ($(du -sh "$stage$dest" | cut -f1))"
done

cp "$busybox" "$stage/bin/busybox"
for applet in $("$busybox" --list); do
  [[ -e $stage/bin/$applet || -L $stage/bin/$applet ]] || ln -s busybox "$stage/bin/$applet"
done

cat > "$stage/init" <<'INIT'
#!/bin/busybox sh
# The guest's PID 1 (made by scripts/make-guest-initramfs.sh; see its header).
export PATH=/bin HOME=/ TERM=dumb
msg() { echo "strata-guest: $*"; }
die() {
  msg "FATAL: $*"
  echo "GUEST-FAILED $*"
  poweroff -f
  echo o > /proc/sysrq-trigger
  sleep 1000
}

if [ ! -e /.strata-stage2 ]; then
  # Stage 1, on the initial rootfs: pivot_root(2) refuses that filesystem, so move everything to
  # a tmpfs that can be a container runtime's "host" root.
  mount -t tmpfs -o mode=0755 root /newroot || die "mount tmpfs on /newroot"
  for e in /* /.[!.]*; do
    case $e in /newroot | /proc | /sys | /dev | '/.[!.]*') continue ;; esac
    cp -a "$e" /newroot/ || die "copy $e to /newroot"
  done
  mkdir -p /newroot/proc /newroot/sys /newroot/dev
  : > /newroot/.strata-stage2
  exec switch_root /newroot /init
  die "switch_root failed"
fi

mount -t proc -o nosuid,nodev,noexec proc /proc || die "mount proc"
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys || die "mount sysfs"
mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev || die "mount devtmpfs"
exec </dev/console >/dev/console 2>&1
mkdir -p /dev/pts /dev/shm
mount -t devpts -o nosuid,noexec,gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run || die "mount tmpfs on /run"
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /tmp || die "mount tmpfs on /tmp"
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /dev/shm
# Kernel messages (an OOM kill report, say) would land in the middle of the test's lines.
dmesg -n 1
read -r up _ < /proc/uptime
msg "init at uptime ${up}s: $(uname -r), $(grep -c ^processor /proc/cpuinfo) cpus, $(sed -n 's/^MemTotal: *//p' /proc/meminfo)"

# cgroup v2 alone, as on a systemd host of the unified layout.
mount -t cgroup2 -o nosuid,nodev,noexec,nsdelegate cgroup2 /sys/fs/cgroup || die "mount cgroup2 on /sys/fs/cgroup"
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
  case $c in
    cpu | cpuset | memory | pids | io | hugetlb)
      echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control || msg "cannot enable the $c controller"
      ;;
  esac
done
msg "cgroup2 on /sys/fs/cgroup: controllers \"$(cat /sys/fs/cgroup/cgroup.controllers)\", subtree_control \"$(cat /sys/fs/cgroup/cgroup.subtree_control)\""

if [ -x /guest/main ]; then
  /guest/main
  rc=$?
  read -r up _ < /proc/uptime
  msg "/guest/main exited $rc at uptime ${up}s"
  if [ $rc -eq 0 ]; then echo "ALL-DONE"; else echo "GUEST-FAILED /guest/main exited $rc"; fi
else
  msg "no /guest/main: starting a shell"
  setsid cttyhack sh
fi
sync
poweroff -f
echo o > /proc/sysrq-trigger
sleep 1000
INIT
chmod 0755 "$stage/init"

mkdir -p "$(dirname "$out")"
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -6 > "$out.tmp"
mv "$out.tmp" "$out"
say "wrote $out ($(du -h "$out" | cut -f1))"
