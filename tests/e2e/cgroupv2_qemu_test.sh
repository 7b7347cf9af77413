#!/usr/bin/env bash
# cgroup v2 for real: strata-runtime's v2 backend in a QEMU guest (software emulation, Debian's
# stock cloud kernel) whose only cgroup hierarchy is cgroup2 with its controllers enabled. This
# host has the hybrid layout (v1 controllers, a cgroup2 mount holding only hugetlb), so the v2
# cpu, memory, pids, io, cpuset and freezer files cannot be had here (docs: ENVIRONMENT.md).
#
#   1. scripts/fetch-guest-kernel.sh: Debian's linux-image-*-cloud-amd64, unpacked into a cache
#      outside the checkout (never installed on this host);
#   2. scripts/make-guest-initramfs.sh: busybox, the built strata-runtime and its libraries, jq,
#      the busybox rootfs (with /bin/probe) and tests/e2e/guest/cgroupv2-checks.sh as /guest/main;
#   3. qemu-system-x86_64 -accel tcg: -M microvm first, -M pc when microvm shows no init;
#      the serial console goes to a log; every "CHECK name PASS|FAIL|SKIP" line is printed.
# Fails on any CHECK ... FAIL, on no ALL-DONE, or on a guest that does not finish in time.
# QEMU runs under timeout(1) and is killed on exit: nothing is left running.
#
# Env: STRATA_BIN_DIR (strata-runtime), STRATA_ROOTFS_DIR (busybox rootfs), STRATA_SOURCE_DIR (set
# by ctest); STRATA_CACHE_DIR (kernel cache, default /var/cache/strata); STRATA_QEMU_MACHINE
# (microvm or pc: skip the other); STRATA_KEEP_GUEST=1 keeps the initramfs and the serial log.
set -euo pipefail

src=${STRATA_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
bin=${STRATA_BIN_DIR:-$src/build/bin}
rootfs=${STRATA_ROOTFS_DIR:-$src/build/rootfs}
runtime=$bin/strata-runtime
boot_deadline=90   # seconds from QEMU's start to the guest's init line, per machine type
total_deadline=300 # seconds for the whole guest run

say() { echo "cgroupv2_qemu: $*"; }
die() {
  say "FAIL: $*"
  exit 1
}

[[ -x $runtime ]] || die "no $runtime (build strata-runtime; set STRATA_BIN_DIR)"
[[ -x $rootfs/bin/busybox && -x $rootfs/bin/probe ]] || die "no busybox rootfs with /bin/probe at $rootfs (build target rootfs; set STRATA_ROOTFS_DIR)"
for tool in qemu-system-x86_64 cpio gzip jq apt-get apt-cache dpkg-deb timeout; do
  command -v $tool >/dev/null || die "$tool missing: run scripts/install-deps.sh"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/strata-cgroupv2-qemu.XXXXXX")
qpid=""
cleanup() {
  if [[ -n $qpid ]] && kill -0 "$qpid" 2>/dev/null; then
    kill "$qpid" 2>/dev/null || true # timeout(1) passes the TERM on to QEMU
    wait "$qpid" 2>/dev/null || true
  fi
  if [[ ${STRATA_KEEP_GUEST:-0} == 1 ]]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1. kernel ------------------------------------------------------------------------------
say "fetching the guest kernel (Debian's linux-image-cloud-amd64)"
vmlinuz=$("$src/scripts/fetch-guest-kernel.sh" | tail -n 1)
[[ -f $vmlinuz ]] || die "fetch-guest-kernel.sh gave no kernel"
kdir=$(dirname "$(dirname "$vmlinuz")")
config=$(ls "$kdir"/boot/config-* 2>/dev/null | head -n 1)
# What the guest needs must be built in: the initramfs loads no modules.
if [[ -f $config ]]; then
  missing=()
  for opt in CGROUPS MEMCG CGROUP_PIDS CPUSETS CGROUP_SCHED FAIR_GROUP_SCHED CFS_BANDWIDTH BLK_CGROUP \
    CGROUP_BPF BPF_SYSCALL CGROUP_FREEZER SWAP NAMESPACES PID_NS NET_NS IPC_NS UTS_NS \
    DEVTMPFS TMPFS BLK_DEV_INITRD RD_GZIP SERIAL_8250_CONSOLE; do
    grep -q "^CONFIG_$opt=y" "$config" || missing+=("$opt=$(sed -n "s/^CONFIG_$opt=//p" "$config")")
  done
  ((${#missing[@]} == 0)) || die "$(basename "$config"): not built in: ${missing[*]} (modules would have to be added to the initramfs)"
fi
say "kernel: $vmlinuz"

# ---- 2. initramfs ---------------------------------------------------------------------------
say "building the initramfs (busybox, strata-runtime, jq, rootfs, the checks)"
mkdir -p "$work/guest"
install -m 0755 "$src/tests/e2e/guest/cgroupv2-checks.sh" "$work/guest/main"
"$src/scripts/make-guest-initramfs.sh" -o "$work/initrd.cpio.gz" --bin "$runtime" --bin "$(command -v jq)" \
  --tree "$rootfs:/rootfs" --tree "$work/guest:/guest" 2>&1 | sed 's/^/  /'
[[ -f $work/initrd.cpio.gz ]] || die "no initramfs"

# ---- 3. boot --------------------------------------------------------------------------------
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
check_lines() { tr -d '\r' < "$log" | grep -a '^CHECK ' || true; }

# boot MACHINE: runs the guest; 0 when it ran to its end, 2 when it showed no init line (in
# time, or at all).
boot() {
  local machine=$1 append="console=ttyS0 quiet panic=-1"
  if [[ $machine == microvm ]]; then
    # microvm has no HPET or PM timer to calibrate the TSC against and would hang there: give
    # the TSC rate (it only times early boot; the clocksource ends up elsewhere) and the delay
    # loop. ACPI (on by default) is what lets poweroff end QEMU.
    append+=" earlyprintk=ttyS0 tsc_early_khz=2000000 lpj=4000000"
  fi
  log=$work/serial-$machine.log
  : > "$log"
  say "booting: qemu-system-x86_64 -accel tcg,thread=single -M $machine -m 1024 -smp 2 (serial log $log)"
  local t0 t_init="" shown=0 n
  t0=$(now)
  # One host thread for both vCPUs (thread=single): as fast here, and the host's two cores are
  # shared with builds and other tests.
  timeout -k 5 "$total_deadline" qemu-system-x86_64 -accel tcg,thread=single -M "$machine" -m 1024 -smp 2 \
    -nographic -no-reboot -nic none -kernel "$vmlinuz" -initrd "$work/initrd.cpio.gz" \
    -append "$append" < /dev/null > "$log" 2>&1 &
  qpid=$!
  while kill -0 "$qpid" 2>/dev/null; do
    if [[ -z $t_init ]] && grep -aq 'strata-guest: init at' "$log"; then
      t_init=$(now)
      say "guest init after $(secs "$t0" "$t_init") s: $(tr -d '\r' < "$log" | grep -a 'strata-guest: init at' | sed 's/^.*strata-guest: //')"
    fi
    if [[ -z $t_init ]] && (($(date +%s) - ${t0%.*} > boot_deadline)); then
      say "no init line from -M $machine after ${boot_deadline} s; last lines:"
      tr -d '\r' < "$log" | tail -n 5 | sed 's/^/  | /'
      kill "$qpid" 2>/dev/null || true
      wait "$qpid" 2>/dev/null || true
      qpid=""
      return 2
    fi
    n=$(check_lines | wc -l)
    if ((n > shown)); then
      check_lines | tail -n +$((shown + 1)) | head -n $((n - shown)) | sed 's/^/  /'
      shown=$n
    fi
    sleep 0.5
  done
  local rc=0
  wait "$qpid" || rc=$?
  qpid=""
  if [[ -z $t_init ]]; then
    say "-M $machine ended (status $rc) without an init line; last lines:"
    tr -d '\r' < "$log" | tail -n 5 | sed 's/^/  | /'
    return 2
  fi
  n=$(check_lines | wc -l)
  ((n > shown)) && check_lines | tail -n +$((shown + 1)) | sed 's/^/  /'
  local t1
  t1=$(now)
  ((rc == 124 || rc == 137)) && say "QEMU killed after ${total_deadline} s"
  boot_time=${t_init:+$(secs "$t0" "$t_init")}
  total_time=$(secs "$t0" "$t1")
  used_machine=$machine
  return 0
}

machines=(microvm pc)
[[ -n ${STRATA_QEMU_MACHINE:-} ]] && machines=("$STRATA_QEMU_MACHINE")
ran=""
for m in "${machines[@]}"; do
  if boot "$m"; then
    ran=1
    break
  fi
  say "falling back from -M $m"
done
[[ -n $ran ]] || die "the guest did not boot with -M ${machines[*]}"

# ---- 4. verdict -----------------------------------------------------------------------------
clean=$(tr -d '\r' < "$log")
guest_times=$(grep -a 'strata-guest: /guest/main exited' <<< "$clean" | sed 's/^.*strata-guest: //' || true)
npass=$(grep -ac '^CHECK [^ ]* PASS' <<< "$clean" || true)
nskip=$(grep -ac '^CHECK [^ ]* SKIP' <<< "$clean" || true)
nfail=$(grep -ac '^CHECK [^ ]* FAIL' <<< "$clean" || true)
say "-M $used_machine: init after ${boot_time:-?} s, guest finished after $total_time s (${guest_times:-no exit line})"
say "$npass passed, $nskip skipped, $nfail failed"
problems=()
((nfail == 0)) || problems+=("$nfail checks failed")
((npass > 0)) || problems+=("no check passed")
grep -aq '^ALL-DONE' <<< "$clean" || problems+=("no ALL-DONE line")
if ((${#problems[@]})); then
  say "serial log (last 60 lines):"
  tail -n 60 <<< "$clean" | sed 's/^/  | /'
  die "${problems[*]}"
fi
say "PASS"
