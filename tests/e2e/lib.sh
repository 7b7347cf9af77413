# Shared helpers for the e2e scripts: a check counter and a final summary line that ctest and
# CI read ("N passed, N failed").
set -uo pipefail
PASSED=0
FAILED=0
check() {  # check NAME CMD...: runs CMD, records PASS/FAIL
  local name=$1
  shift
  if "$@"; then
    echo "PASS $name"
    PASSED=$((PASSED + 1))
  else
    echo "FAIL $name"
    FAILED=$((FAILED + 1))
  fi
}
expect_eq() {  # expect_eq NAME EXPECTED ACTUAL
  if [[ "$2" == "$3" ]]; then
    echo "PASS $1"
    PASSED=$((PASSED + 1))
  else
    echo "FAIL $1: expected [$2], got [$3]"
    FAILED=$((FAILED + 1))
  fi
}
# have_kvm / require_kvm: strata-vmm needs a usable /dev/kvm. ENVIRONMENT.md's machines have one
# (kvm_pvm); some machines of the same kind do not (no kvm device in /proc/misc). A test that
# cannot run without it ends with exit status 77, which ctest reports as "Skipped", never as
# passed, and says why.
have_kvm() { [[ -r /dev/kvm && -w /dev/kvm ]]; }
kvm_absence() {
  if grep -qw kvm /proc/misc 2>/dev/null; then echo "kvm is registered but /dev/kvm is not usable"; else echo "no kvm device in /proc/misc"; fi
}
require_kvm() {
  have_kvm && return 0
  echo "SKIP $(basename "$0"): /dev/kvm does not exist on this machine ($(kvm_absence)), so strata-vmm cannot run; nothing was checked"
  exit 77
}
finish() {
  echo "e2e: $PASSED passed, $FAILED failed"
  [[ $FAILED -eq 0 ]]
}
# use_podman_conf DIR: writes DIR/containers.conf with what podman needs on these machines
# (ENVIRONMENT.md: cgroupfs, the file events logger, netavark, ulimits under the hard limits)
# and points CONTAINERS_CONF at it.
use_podman_conf() {
  cat >"$1/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "netavark"
CONF
  export CONTAINERS_CONF=$1/containers.conf
}
# in_own_netns SCRIPT ARGS...: re-executes SCRIPT in a network namespace of its own (bridges,
# nftables tables and ports are per namespace, so the host's networking is never touched),
# then, inside, brings its loopback up. Call it as `in_own_netns "$0" "$@"` before anything else.
in_own_netns() {
  if [[ -z ${STRATA_OWN_NETNS:-} ]]; then
    exec unshare --net env STRATA_OWN_NETNS=1 bash "$@"
  fi
  ip link set lo up
}
