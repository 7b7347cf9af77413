#!/usr/bin/env bash
# podman as a real client of strata-runtime: `podman --runtime <built strata-runtime>` runs,
# execs, pauses, stops and removes containers made from the busybox rootfs (podman import).
# podman runs with the settings ENVIRONMENT.md gives for these machines (cgroupfs manager,
# file events logger, netavark, nofile/nproc ulimits that fit the hard limits here).
source "$(dirname "$0")/lib.sh"
BIN=${STRATA_BIN_DIR:?}
ROOTFS=${STRATA_ROOTFS_DIR:?}
command -v podman >/dev/null || { echo "podman missing: run scripts/install-deps.sh"; exit 1; }

work=$(mktemp -d /tmp/strata-podman.XXXXXX)
use_podman_conf "$work"
P=(timeout 120 podman --root "$work/storage" --runroot "$work/run" --runtime "$BIN/strata-runtime")
cleanup() {
  "${P[@]}" rm -af -t 0 >/dev/null 2>&1
  "${P[@]}" system reset -f >/dev/null 2>&1 || true
  # podman's storage leaves overlay mounts under --root until unmounted
  grep -o "$work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

echo "e2e: importing the busybox rootfs into podman"
tar -C "$ROOTFS" -c . | "${P[@]}" import - localhost/strata-busybox:latest >/dev/null || { echo "podman import failed"; exit 1; }
IMG=localhost/strata-busybox:latest

out=$("${P[@]}" run --rm --network none $IMG sh -c 'echo hello-from-strata; exit 3')
code=$?
expect_eq "run --rm exit code propagates" 3 "$code"
expect_eq "run --rm output" hello-from-strata "$out"
# PID 1 of a pid namespace ignores signals it has no handler for, even from itself: kill it
# from outside, as a user would.
"${P[@]}" run -d --name strata-e2e-kill --network none $IMG sleep 1000 >/dev/null
"${P[@]}" kill -s KILL strata-e2e-kill >/dev/null
expect_eq "death by SIGKILL is 137" 137 "$("${P[@]}" wait strata-e2e-kill)"
"${P[@]}" rm strata-e2e-kill >/dev/null
out=$("${P[@]}" run --rm --network none --memory 64m $IMG cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>&1)
expect_eq "podman --memory reaches the cgroup" 67108864 "$out"
out=$("${P[@]}" run --rm --network none --hostname podhost $IMG hostname)
expect_eq "podman --hostname" podhost "$out"

cid=$("${P[@]}" run -d --name strata-e2e $IMG sleep 1000)
check "run -d" test -n "$cid"
expect_eq "status running" running "$("${P[@]}" inspect -f '{{.State.Status}}' strata-e2e)"
out=$("${P[@]}" exec strata-e2e sh -c 'echo exec-ok; cat /proc/1/cmdline | tr "\0" " "')
expect_eq "exec output" "exec-ok
sleep 1000 " "$out"
"${P[@]}" exec strata-e2e sh -c 'exit 7'
expect_eq "exec exit code" 7 "$?"
out=$("${P[@]}" exec -t strata-e2e sh -c 'test -t 0 && echo tty')
expect_eq "exec -t gets a terminal" tty "$(echo "$out" | tr -d '\r')"
out=$("${P[@]}" exec --user 65534:65534 strata-e2e id -u)
expect_eq "exec --user" 65534 "$out"
check "exec has eth0 from netavark" "${P[@]}" exec strata-e2e sh -c 'ip addr show eth0 | grep -q "inet "'

check "pause" "${P[@]}" pause strata-e2e
expect_eq "status paused" paused "$("${P[@]}" inspect -f '{{.State.Status}}' strata-e2e)"
check "unpause" "${P[@]}" unpause strata-e2e
expect_eq "status running again" running "$("${P[@]}" inspect -f '{{.State.Status}}' strata-e2e)"
check "stop" "${P[@]}" stop -t 1 strata-e2e
expect_eq "status exited" exited "$("${P[@]}" inspect -f '{{.State.Status}}' strata-e2e)"
check "start again" "${P[@]}" start strata-e2e
check "stop again" "${P[@]}" stop -t 1 strata-e2e
check "rm" "${P[@]}" rm strata-e2e
expect_eq "no containers left" "" "$("${P[@]}" ps -aq)"

# Nothing left behind by the runtime: no cgroup named after the container, no state.
left=$(find /sys/fs/cgroup -maxdepth 4 -name "*${cid:0:12}*" 2>/dev/null | head -3)
expect_eq "no cgroup left for the container" "" "$left"
left=$(find "$work/run" -path "*strata*" -name state.json 2>/dev/null | head -3)
expect_eq "no runtime state left" "" "$left"
finish
