#!/usr/bin/env bash
# strata's own guest kernel and strata-init, booted under QEMU with software emulation (a full
# Linux boot cannot run under KVM on these machines: ENVIRONMENT.md). What strata-vmm will do
# with them is done here by `qemu-system-x86_64 -M microvm -accel tcg`:
#
#   1. guest/kernel/build.sh: builds the kernel from linux-source-6.1 (several minutes, once per
#      machine) or takes it from the cache outside the checkout;
#   2. an initramfs holding only strata-init as /init, and an ext4 root disk made with
#      `mkfs.ext4 -d` from the busybox rootfs (virtio-blk-device), plus a virtio-net-device on
#      QEMU's user-mode network (-netdev user: 10.0.2.15/24, gateway 10.0.2.2). The kernel has
#      no ACPI: `-M microvm,acpi=off` makes QEMU describe the virtio-mmio devices with
#      virtio_mmio.device= on the command line, as strata-vmm does; strata-init ends the VM with
#      a reset (reboot=t: a triple fault, which -no-reboot turns into QEMU's exit);
#   3. boots, each under timeout(1), the instructions on the kernel command line (src/guest/spec.h):
#      a. bzImage: the workload (uid 1000, cwd /tmp, env FOO) prints what it sees and exits 7:
#         its output, the exit line "strata-init: exit 7", eth0 up with its address and the
#         default route, the mounts (root disk on /, cgroup2, devpts, /run), the time to the
#         workload's start; a background child it leaves behind does not keep the VM up;
#      b. vmlinux through its PVH entry note: exit 0, strata.rootflags=ro;
#      c. SIGTERM to PID 1 is forwarded to the workload (whose trap exits 3), orphans are reaped;
#      d. failures: a missing root disk ("error 3 root"), a missing program ("error 7 exec"), a
#         bad strata.cmd ("error 2 cmdline"): each names its step and the VM still ends.
# vsock cannot be exercised: QEMU needs /dev/vhost-vsock for vhost-vsock-device, and these
# machines have none; the test only sees init's fallback line saying the report did not go out.
#
# Env: STRATA_BIN_DIR (strata-init), STRATA_ROOTFS_DIR (busybox rootfs), STRATA_SOURCE_DIR (set by
# ctest); STRATA_CACHE_DIR (kernel cache, default /var/cache/strata); STRATA_GUEST_KERNEL_DIR (a dir
# with bzImage and vmlinux to boot instead of building); STRATA_KEEP_GUEST=1 keeps the images
# and the serial logs.
set -euo pipefail

src=${STRATA_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
bin=${STRATA_BIN_DIR:-$src/build/bin}
rootfs=${STRATA_ROOTFS_DIR:-$src/build/rootfs}
init=$bin/strata-init
boot_timeout=60 # seconds per boot; a healthy one takes a few

# shellcheck source=lib.sh
source "$src/tests/e2e/lib.sh"
say() { echo "guest_kernel_qemu: $*"; }
die() {
  say "FAIL: $*"
  exit 1
}

[[ -x $init ]] || die "no $init (build target strata-init; set STRATA_BIN_DIR)"
[[ -x $rootfs/bin/busybox ]] || die "no busybox rootfs at $rootfs (build target rootfs; set STRATA_ROOTFS_DIR)"
for tool in qemu-system-x86_64 mkfs.ext4 cpio base64 timeout; do
  command -v $tool >/dev/null || die "$tool missing: run scripts/install-deps.sh"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/strata-guest-kernel.XXXXXX")
qpid=""
cleanup() {
  if [[ -n $qpid ]] && kill -0 "$qpid" 2>/dev/null; then
    kill "$qpid" 2>/dev/null || true
    wait "$qpid" 2>/dev/null || true
  fi
  if [[ ${STRATA_KEEP_GUEST:-0} == 1 ]]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1. kernel ------------------------------------------------------------------------------
t0=$(date +%s)
if [[ -n ${STRATA_GUEST_KERNEL_DIR:-} ]]; then
  kdir=$STRATA_GUEST_KERNEL_DIR
  say "guest kernel: $kdir (STRATA_GUEST_KERNEL_DIR)"
else
  say "guest kernel: guest/kernel/build.sh (a first build takes minutes; then it is cached)"
  kdir=$("$src/guest/kernel/build.sh" 2> >(sed 's/^/  /' >&2) | tail -n 1)
fi
[[ -f $kdir/bzImage && -f $kdir/vmlinux ]] || die "guest/kernel/build.sh gave no kernel"
say "kernel $(cat "$kdir/release") in $kdir ($(($(date +%s) - t0)) s)"

# ---- 2. images ------------------------------------------------------------------------------
mkdir -p "$work/initramfs"/{dev,proc,sys,newroot}
cp "$init" "$work/initramfs/init"
(cd "$work/initramfs" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) > "$work/initramfs.cpio"
mkdir -p "$work/root"
cp -a "$rootfs/." "$work/root/"
mkdir -p "$work/root/home/user"
chown 1000:1000 "$work/root/home/user"
echo "made-by-the-test" > "$work/root/etc/strata-marker"
mkfs.ext4 -q -F -L strata-root -d "$work/root" "$work/root.ext4" 64M
say "initramfs $(du -h "$work/initramfs.cpio" | cut -f1) (strata-init only), root disk $(du -h --apparent-size "$work/root.ext4" | cut -f1) ext4"

# ---- 3. boots -------------------------------------------------------------------------------
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
b64() { printf '%s' "$1" | base64 -w0; }

# boot NAME KERNEL MACHINE DISK(yes|no) NET(yes|no) APPEND: runs QEMU until the guest ends it
# (or timeout kills it); sets $log, $rc (QEMU's status: 124 = timed out), $t_start (seconds from
# QEMU's start to strata-init's "starting" line, as the host saw it) and $t_total.
boot() {
  local name=$1 kernel=$2 machine=$3 disk=$4 net=$5 append=$6
  log=$work/serial-$name.log
  local args=(-M "$machine,acpi=off" -accel tcg -cpu max -m 256 -smp 1 -nographic -no-reboot
    -kernel "$kernel" -initrd "$work/initramfs.cpio")
  [[ $disk == yes ]] && args+=(-drive "id=root,file=$work/root.ext4,format=raw,if=none" -device virtio-blk-device,drive=root)
  [[ $net == yes ]] && args+=(-netdev user,id=n0 -device virtio-net-device,netdev=n0)
  # microvm has no HPET or PM timer to calibrate the TSC against: give its rate and the delay
  # loop. quiet: kernel messages only when something goes wrong.
  append="console=ttyS0 quiet panic=-1 reboot=t tsc_early_khz=2000000 lpj=4000000 $append"
  : > "$log"
  t_start=""
  local t0 t1
  t0=$(now)
  timeout -k 5 "$boot_timeout" qemu-system-x86_64 "${args[@]}" -append "$append" < /dev/null > "$log" 2>&1 &
  qpid=$!
  while kill -0 "$qpid" 2>/dev/null; do
    if [[ -z $t_start ]] && grep -aq 'strata-init: starting' "$log"; then t_start=$(secs "$t0" "$(now)"); fi
    sleep 0.05
  done
  rc=0
  wait "$qpid" || rc=$?
  qpid=""
  t1=$(now)
  t_total=$(secs "$t0" "$t1")
  tr -d '\r' < "$log" > "$log.txt"
  log=$log.txt
  local uptime
  uptime=$(sed -n 's/^strata-init: starting .* at uptime \([0-9.]*\) s$/\1/p' "$log" | head -n 1)
  say "boot $name: QEMU ended with status $rc after $t_total s; workload started ${t_start:+after $t_start s (host), }${uptime:+at guest uptime $uptime s}"
}
has() { grep -aq -- "$1" "$log"; }
has_line() { grep -aqx -- "$1" "$log"; }
show_log() {
  say "serial log of $1 (last 25 lines):"
  tail -n 25 "$log" | sed 's/^/  | /'
}
ended() { [[ $rc != 124 && $rc != 137 ]]; }

# a. bzImage, root disk, network; the workload runs as uid 1000 in /tmp.
spec=$(b64 '{"args":["/bin/sh","-c","echo workload-says-hi; echo uid=$(id -u) gid=$(id -g) groups=$(id -G) cwd=$(pwd) foo=$FOO; for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do [ $(cat /sys/class/net/eth0/operstate) = up ] && break; sleep 0.2; done; echo operstate=$(cat /sys/class/net/eth0/operstate); cat /proc/cmdline; ip -4 addr show eth0; ip route; cat /proc/mounts; cat /etc/strata-marker; hostname; sleep 30 & exit 7"],"env":["FOO=bar baz"],"cwd":"/tmp","uid":1000,"gid":1000,"groups":[1000,5]}')
boot bz "$kdir/bzImage" microvm yes yes "strata.root=/dev/vda strata.ip=10.0.2.15/24 strata.gw=10.0.2.2 strata.hostname=guest-a strata.cmd=$spec"
check "bzImage: the VM powered off by itself" ended
check "bzImage: the workload ran (its output on the console)" has_line "workload-says-hi"
check "bzImage: exit code 7 on the console line" has_line "strata-init: exit 7"
check "bzImage: uid, gid, groups, cwd and env applied" has_line "uid=1000 gid=1000 groups=1000 5 cwd=/tmp foo=bar baz"
check "bzImage: the root disk is / (ext4 on /dev/vda)" has "^/dev/vda / ext4 rw"
check "bzImage: the root disk's contents" has_line "made-by-the-test"
check "bzImage: cgroup2 on /sys/fs/cgroup" has "^cgroup2 /sys/fs/cgroup cgroup2 "
check "bzImage: devpts, /dev/shm, /run mounted" bash -c "grep -aq '^devpts /dev/pts devpts' '$log' && grep -aq '^shm /dev/shm tmpfs' '$log' && grep -aq '^tmpfs /run tmpfs' '$log'"
check "bzImage: eth0 up (virtio-net)" has_line "operstate=up"
check "bzImage: eth0 has 10.0.2.15/24" has "inet 10.0.2.15/24"
check "bzImage: default route via 10.0.2.2" has "^default via 10.0.2.2 dev eth0"
check "bzImage: hostname set" has_line "guest-a"
check "bzImage: the devices came from virtio_mmio.device= on the command line" has "virtio_mmio.device=.*virtio_mmio.device="
check "bzImage: the workload started" test -n "$t_start"
if has 'strata-init: vsock report'; then
  say "vsock not exercised (no /dev/vhost-vsock here): $(grep -a 'strata-init: vsock report' "$log" | head -n 1)"
fi
bz_start=$t_start bz_total=$t_total
((FAILED == 0)) || show_log bz

# b. vmlinux through the PVH note.
boot pvh "$kdir/vmlinux" microvm yes no "strata.root=/dev/vda strata.rootflags=ro strata.cmd=$(b64 '{"args":["sh","-c","echo pvh-ok; touch /x 2>/dev/null || echo read-only-root"]}')"
check "vmlinux (PVH): the workload ran" has_line "pvh-ok"
check "vmlinux (PVH): strata.rootflags=ro gave a read-only root" has_line "read-only-root"
check "vmlinux (PVH): exit 0 and powered off" bash -c "grep -aqx 'strata-init: exit 0' '$log' && [[ $rc != 124 ]]"
pvh_start=$t_start
has_line "pvh-ok" || show_log pvh

# c. SIGTERM to PID 1 reaches the workload; an orphan does not keep the VM up.
boot term "$kdir/bzImage" microvm yes no "strata.root=/dev/vda strata.cmd=$(b64 '{"args":["/bin/sh","-c","trap \"echo got-term; exit 3\" TERM; (sleep 100 &); kill -TERM 1; sleep 20 & wait"]}')"
check "SIGTERM forwarded to the workload" has_line "got-term"
check "SIGTERM: exit 3 on the console line, the orphan did not keep the VM up" bash -c "grep -aqx 'strata-init: exit 3' '$log' && [[ $rc != 124 ]]"
has_line "got-term" || show_log term

# d. Failures: each names its step and still ends the VM.
boot noroot "$kdir/bzImage" microvm no no "strata.root=/dev/vda strata.rootwait=300 -- /bin/true"
check "missing root disk: the step's line" has "^strata-init: root device /dev/vda: ENOENT"
check "missing root disk: error 3 root, and the VM ended" bash -c "grep -aqx 'strata-init: error 3 root' '$log' && [[ $rc != 124 ]]"
has "strata-init: error 3 root" || show_log noroot
# No root disk: the initial root (the initramfs) is the root; the workload given after "--"
# (QEMU appends its virtio_mmio.device= to the command line, which would land after "--").
boot noexec "$kdir/bzImage" microvm no no "-- /no/such/program"
check "missing program: the step's line" has_line "strata-init: exec /no/such/program: ENOENT"
check "missing program: error 7 exec, and the VM ended" bash -c "grep -aqx 'strata-init: error 7 exec' '$log' && [[ $rc != 124 ]]"
has "strata-init: error 7 exec" || show_log noexec
boot badcmd "$kdir/bzImage" microvm no no "strata.cmd=not*base64"
check "bad strata.cmd: the step's line" has_line "strata-init: strata.cmd: not base64"
check "bad strata.cmd: error 2 cmdline, and the VM ended" bash -c "grep -aqx 'strata-init: error 2 cmdline' '$log' && [[ $rc != 124 ]]"
has "strata-init: error 2 cmdline" || show_log badcmd

say "time to the workload's start under TCG (QEMU start to strata-init's \"starting\" line): bzImage ${bz_start:-?} s (whole boot-run-poweroff $bz_total s), vmlinux/PVH ${pvh_start:-?} s"
say "not exercised here: vsock (no /dev/vhost-vsock), KVM (a full Linux boot cannot run under this host's KVM)"
finish
