#!/usr/bin/env bash
# strata vm run --bundle: an OCI bundle (config.json + the busybox rootfs) run as a micro-VM's
# workload with the guest kernel of guest/kernel/build.sh and strata-init, its exit code
# returned to the host.
#
# What boots the guest: a full Linux boot cannot run under this host's KVM (PVM: the
# instruction emulator stops the kernel, ENVIRONMENT.md), so the complete path (the ext4 image
# of the rootfs, the initramfs, the command line strata writes, the console report, the exit
# code) runs with QEMU standing in for the monitor: STRATA_VMM=tests/e2e/qemu_as_vmm.sh, which
# boots the Firecracker config strata wrote under `-M microvm -accel tcg`. Then the same bundle
# under strata-vmm itself: where KVM can run Linux guests (vmx/svm and no PVM) it must give the
# same exit code; here it must end with a clear error and leave nothing behind, and the test
# says why it could not boot.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
src=${STRATA_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
bin=${STRATA_BIN_DIR:-$src/build/bin}
rootfs=${STRATA_ROOTFS_DIR:-$src/build/rootfs}
work=$(mktemp -d /tmp/strata-vm-bundle.XXXXXX)
trap 'rm -rf "$work"' EXIT
say() { echo "vm_bundle: $*"; }

say "guest kernel: guest/kernel/build.sh (a first build takes minutes; then it is cached)"
kdir=$("$src/guest/kernel/build.sh" 2> >(sed 's/^/  /' >&2) | tail -n 1)
[[ -f $kdir/vmlinux ]] || { echo "FAIL guest/kernel/build.sh gave no kernel"; exit 1; }

# The bundle: the busybox rootfs plus a marker, config.json from strata-runtime spec.
make_bundle() {  # make_bundle DIR JQ-FILTER
  mkdir -p "$1"
  [[ -d $1/rootfs ]] || { cp -a "$rootfs" "$1/rootfs" && echo "bundle-marker" >"$1/rootfs/etc/strata-marker"; }
  (cd "$1" && rm -f config.json && "$bin/strata-runtime" spec)
  jq "$2" "$1/config.json" >"$1/c.json" && mv "$1/c.json" "$1/config.json"
}
make_bundle "$work/b" '.process.terminal = false | .hostname = "bundle-vm" | .process.env += ["FOO=bar baz"]
  | .process.cwd = "/tmp" | .process.args = ["sh", "-c",
    "echo in-the-vm $(cat /etc/strata-marker) $(hostname) $FOO $(pwd) uid=$(id -u); exit 7"]'
R=$work/root
S=(timeout --foreground 300 "$bin/strata" --root "$R")
Q=(env STRATA_VMM="$src/tests/e2e/qemu_as_vmm.sh")
nothing_left() {  # no VM directory, no temp file in the cache, no monitor
  [[ -z $(ls "$R/vms" 2>/dev/null) ]] && [[ -z $(find "$R/vm-cache" -name '.tmp-*' 2>/dev/null) ]] &&
    ! pgrep -f "qemu-system-x86_64 .*$work" >/dev/null && ! pgrep -f "strata-vmm --api-sock api.sock --id bvm" >/dev/null
}

# ---- under QEMU (the monitor swapped for STRATA_VMM) ----------------------------------------
out=$("${Q[@]}" "${S[@]}" vm run --name bvm --bundle "$work/b" 2>"$work/err")
code=$?
expect_eq "bundle: the workload's exit code is returned" 7 "$code"
out=$(tr -d '\r' <<<"$out")
check "bundle: rootfs, hostname, env, cwd, user of config.json in the VM" \
  grep -qx "in-the-vm bundle-marker bundle-vm bar baz /tmp uid=0" <<<"$out"
check "bundle: strata-init's report on the console" grep -qx "strata-init: exit 7" <<<"$out"
check "bundle: the rootfs was imaged (progress line)" grep -q "imaging the bundle's rootfs" "$work/err"
expect_eq "bundle: one cached rootfs image" 1 "$(ls "$R/vm-cache/rootfs" | wc -l)"
expect_eq "bundle: one cached initramfs" 1 "$(ls "$R/vm-cache/initramfs" | wc -l)"
check "bundle: nothing left after the run" nothing_left
((FAILED == 0)) || { say "stderr:"; sed 's/^/  | /' "$work/err"; say "console:"; tail -20 <<<"$out" | sed 's/^/  | /'; }

image=$(ls "$R/vm-cache/rootfs"/*.ext4)
ino=$(stat -c %i "$image")
"${Q[@]}" "${S[@]}" vm run --name bvm --bundle "$work/b" >/dev/null 2>"$work/err"
expect_eq "bundle again: same exit code" 7 "$?"
check "bundle again: the cached image was reused (no imaging)" bash -c "! grep -q imaging '$work/err'"
expect_eq "bundle again: same image file" "$ino" "$(stat -c %i "$image")"
# Detached: a watcher relays the console into console.log and records the exit code.
id=$("${Q[@]}" "${S[@]}" vm run -d --name dvm --bundle "$work/b")
expect_eq "bundle -d: exit 0, prints the id" "0 64" "$? ${#id}"
for _ in $(seq 300); do grep -q "dvm .*Exited" <<<"$("${S[@]}" vm ls)" && break; sleep 0.1; done
check "bundle -d: vm ls shows the workload's exit code" grep -q "dvm .*Exited (7)" <<<"$("${S[@]}" vm ls)"
check "bundle -d: vm logs shows its output" grep -q "^in-the-vm bundle-marker" <<<"$("${S[@]}" vm logs dvm | tr -d '\r')"
"${S[@]}" vm rm dvm
check "bundle -d: nothing left after vm rm" nothing_left
# The VM wrote into its own copy: the cached image is untouched by a run that writes.
make_bundle "$work/b" '.process.terminal = false | .process.args = ["sh", "-c", "echo scribble > /etc/strata-marker; sync; exit 0"]'
"${Q[@]}" "${S[@]}" vm run --name bvm --bundle "$work/b" >/dev/null 2>&1
expect_eq "a writing workload: exit 0" 0 "$?"
check "the cached image still holds the original file" bash -c "debugfs -R 'cat /etc/strata-marker' '$image' 2>/dev/null | grep -qx bundle-marker"
touch "$work/b/rootfs/etc/new-file"
"${Q[@]}" "${S[@]}" vm run --name bvm --bundle "$work/b" >/dev/null 2>"$work/err"
check "a changed rootfs is imaged again" grep -q "imaging the bundle's rootfs" "$work/err"
expect_eq "two cached images now" 2 "$(ls "$R/vm-cache/rootfs" | wc -l)"

make_bundle "$work/b" '.process.terminal = false | .root.readonly = true | .process.args = ["sh", "-c",
  "touch /x 2>/dev/null && echo writable || echo read-only-root"]'
out=$("${Q[@]}" "${S[@]}" vm run --name bvm --bundle "$work/b" 2>/dev/null | tr -d '\r')
check "root.readonly: the root is mounted read-only" grep -qx "read-only-root" <<<"$out"

make_bundle "$work/b" '.process.terminal = false | .process.args = ["/no/such/program"]'
out=$("${Q[@]}" "${S[@]}" vm run --name bvm --bundle "$work/b" 2>"$work/err" | tr -d '\r')
expect_eq "a missing program: exit 127 (as podman)" 127 "$?"
check "a missing program: strata-init's step line" grep -q "strata-init: exec /no/such/program: ENOENT" <<<"$out"
check "a missing program: the error names the step" grep -q 'failed at step "exec"' "$work/err"
check "nothing left after the failures" nothing_left

# ---- bad input: a clear error, exit 125, nothing left -------------------------------------------
bad() {  # bad NAME EXPECTED-TEXT ARGS...
  local name=$1 text=$2
  shift 2
  local err
  err=$("$@" 2>&1 >/dev/null)
  local code=$?
  expect_eq "$name: exit 125" 125 "$code"
  check "$name: the error says \"$text\"" grep -q -- "$text" <<<"$err"
  check "$name: nothing left" nothing_left
}
bad "no bundle" "config.json" "${S[@]}" vm run --bundle "$work/none"
mkdir -p "$work/empty" && cp "$work/b/config.json" "$work/empty/"
bad "no rootfs" "is not a directory" "${S[@]}" vm run --bundle "$work/empty"
make_bundle "$work/b" '.process.args = []'
bad "empty args" "args" "${S[@]}" vm run --bundle "$work/b"
make_bundle "$work/b" '.process.terminal = false | .process.env += ["BIG=\("x" * 1900)"]'
bad "an env too big for the command line" "kernel command line" "${S[@]}" vm run --bundle "$work/b"
make_bundle "$work/b" '.process.terminal = false'
bad "no guest kernel" "no guest kernel" env STRATA_CACHE_DIR="$work/nocache" "${S[@]}" vm run --bundle "$work/b"
bad "a monitor that is not there" "exec" env STRATA_VMM=/no/such/vmm "${S[@]}" vm run --bundle "$work/b"

# ---- under strata-vmm (KVM) --------------------------------------------------------------------
make_bundle "$work/b" '.process.terminal = false | .process.args = ["sh", "-c", "echo in-the-vm; exit 7"]'
if ! have_kvm; then
  say "SKIP the strata-vmm part: /dev/kvm does not exist on this machine ($(kvm_absence)); the guest path was proven under QEMU above"
elif grep -qwE 'vmx|svm' /proc/cpuinfo && [[ ! -d /sys/module/kvm_pvm ]]; then
  out=$("${S[@]}" vm run --name bvm --bundle "$work/b" 2>"$work/err" | tr -d '\r')
  expect_eq "strata-vmm: the workload's exit code (vsock report)" 7 "$?"
  check "strata-vmm: the workload's output" grep -qx "in-the-vm" <<<"$out"
else
  say "strata-vmm cannot boot Linux here: /dev/kvm is $( [[ -d /sys/module/kvm_pvm ]] && echo 'PVM (kvm_pvm)' || echo 'without vmx/svm'), whose instruction emulator stops a Linux kernel (ENVIRONMENT.md); the guest path was proven under QEMU above"
  # It must still end by itself with a clear error (the emulator's internal error) and leave
  # nothing behind, not hang.
  timeout --foreground 240 "$bin/strata" --root "$R" vm run --name bvm --bundle "$work/b" >"$work/out" 2>"$work/err"
  code=$?
  expect_eq "strata-vmm here: strata reports its own error (125)" 125 "$code"
  check "strata-vmm here: the error says the workload did not report" grep -q "ended before its workload reported" "$work/err"
  check "strata-vmm here: strata-vmm's report names the KVM internal error" grep -qi "internal error" "$work/err"
  check "strata-vmm here: nothing left" nothing_left
  ((FAILED == 0)) || { say "stderr:"; tail -20 "$work/err" | sed 's/^/  | /'; }
fi
finish
