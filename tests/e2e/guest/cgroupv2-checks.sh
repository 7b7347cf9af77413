#!/bin/sh
# The cgroup v2 resource checks, run inside a QEMU guest as /guest/main by the initramfs's /init
# (scripts/make-guest-initramfs.sh), after it mounted cgroup2 alone on /sys/fs/cgroup and enabled
# the controllers. Driven by tests/e2e/cgroupv2_qemu_test.sh, which reads the serial console.
#
# Every check goes through /bin/strata-runtime with bundles over the busybox rootfs at /rootfs,
# and is proven from inside the container where it can be (its cgroup namespace and cgroup2
# mount), else from the host-side files under /sys/fs/cgroup/<cgroupsPath>. One line per check:
#   CHECK <name> PASS [value] | CHECK <name> FAIL <detail> | CHECK <name> SKIP <reason>
# The script exits 0 once every check ran; failures are in the CHECK lines.
# busybox sh only: no bash, and jq is the only program besides busybox and the runtime.
export PATH=/bin
CG=/sys/fs/cgroup
B=/run/bundles

oneline() { printf '%s' "$*" | tr '\n\r\t' '   ' | sed 's/  */ /g; s/ $//' | cut -c1-500; }
pass() { echo "CHECK $1 PASS${2:+ $(oneline "$2")}"; }
fail() { echo "CHECK $1 FAIL $(oneline "$2")"; }
skip() { echo "CHECK $1 SKIP $(oneline "$2")"; }
# expect NAME WANT GOT [CONTEXT]
expect() {
  if [ "$2" = "$3" ]; then pass "$1" "$3"; else fail "$1" "want \"$2\", got \"$3\"${4:+ ($4)}"; fi
}
# A cgroup file's contents on one line, or the error reading it.
val() { oneline "$(cat "$1" 2>&1)"; }
# The runtime, bounded: a hang is a failure, never a stuck guest.
rt() { timeout 60 strata-runtime "$@"; }
status_of() { rt state "$1" 2>/dev/null | jq -r .status 2>/dev/null || echo "(no state)"; }
# wait_for SECONDS COMMAND...: polls every 0.1 s until COMMAND succeeds.
wait_for() {
  local tries=$(($1 * 10))
  shift
  while [ $tries -gt 0 ]; do
    "$@" && return 0
    sleep 0.1
    tries=$((tries - 1))
  done
  return 1
}
procs_empty() { [ -z "$(cat "$1/cgroup.procs" 2>/dev/null)" ]; }
is_stopped() { [ "$(status_of "$1")" = stopped ]; }
# bundle NAME JQ-FILTER: $B/NAME/config.json, the base config changed by the filter.
bundle() {
  mkdir -p "$B/$1"
  jq "$2" "$B/base.json" > "$B/$1/config.json" || fail "bundle.$1" "jq filter failed: $2"
}

# ---- setup ------------------------------------------------------------------------------
mkdir -p "$B"
# /dev/kmsg is the device of the devices checks; a restricted dmesg would refuse it for another
# reason (CAP_SYSLOG) than the device cgroup.
echo 0 > /proc/sys/kernel/dmesg_restrict
rt spec -b "$B" || fail spec "strata-runtime spec failed"
jq '.process.terminal = false | .root = {path: "/rootfs", readonly: true} | .hostname = "guest"' \
  "$B/config.json" > "$B/base.json" || fail spec "jq on the spec failed"

# ---- the host: only cgroup2 ---------------------------------------------------------------
# statfs type of the mount: CGROUP2_SUPER_MAGIC is 0x63677270.
fstype=$(stat -f -c %t $CG)
v1=$(grep -c ' cgroup ' /proc/mounts)
if [ "$fstype" = 63677270 ] && [ "$v1" = 0 ]; then
  pass v2.host "cgroup2 on $CG, no v1 hierarchy; root offers: $(val $CG/cgroup.controllers)"
else
  fail v2.host "$CG has filesystem type 0x$fstype (cgroup2 is 0x63677270), $v1 cgroup v1 mounts"
fi

# ---- the init is born in its cgroup (clone3 CLONE_INTO_CGROUP): no migration on v2 --------
bundle born '.process.args = ["true"]'
out=$(timeout 60 strata-runtime --debug run --bundle "$B/born" born < /dev/null 2>&1)
case "$out" in
  *"born in its cgroup"*) pass v2.clone-into-cgroup "created with CLONE_INTO_CGROUP" ;;
  *) fail v2.clone-into-cgroup "$out" ;;
esac

# ---- "res": every resource of the spec, mapped to v2 files --------------------------------
bundle res '.process.args = ["sleep", "3600"]
  | .linux.resources.memory = {limit: 67108864, reservation: 33554432, swap: 100663296}
  | .linux.resources.cpu = {shares: 512, quota: 50000, period: 100000, cpus: "1", mems: "0"}
  | .linux.resources.pids = {limit: 32}
  | .linux.resources.blockIO = {weight: 500}'
D=$CG/strata/res
if rt create --bundle "$B/res" res < /dev/null > "$B/res/out" 2>&1 && rt start res >> "$B/res/out" 2>&1; then
  pass lifecycle.create-start "status $(status_of res)"
else
  fail lifecycle.create-start "$(cat "$B/res/out")"
fi
saved=$(jq -c '{v: .cgroupVersion, p: .cgroupPaths}' /run/strata-runtime/res/state.json 2>&1)
if [ "$saved" = '{"v":2,"p":{"":"/sys/fs/cgroup/strata/res"}}' ] && [ -f $D/memory.max ]; then
  pass v2.backend "state $saved, $D/memory.max exists"
else
  fail v2.backend "state $saved; $(ls $D 2>&1 | head -c 200)"
fi
ctl=" $(val $D/cgroup.controllers) "
missing=""
for c in cpu cpuset memory pids; do
  case $ctl in *" $c "*) ;; *) missing="$missing $c" ;; esac
done
if [ -z "$missing" ]; then pass v2.controllers "$ctl"; else fail v2.controllers "missing$missing in$ctl"; fi

expect memory.limit 67108864 "$(val $D/memory.max)" memory.max
expect memory.reservation 33554432 "$(val $D/memory.low)" memory.low
# memory.swap.max counts swap alone: memory+swap 96 MiB - memory 64 MiB.
expect memory.swap 33554432 "$(val $D/memory.swap.max)" memory.swap.max
# cpu.weight = 1 + ((shares - 2) * 9999) / 262142
expect cpu.shares $((1 + (512 - 2) * 9999 / 262142)) "$(val $D/cpu.weight)" cpu.weight
expect cpu.quota-period "50000 100000" "$(val $D/cpu.max)" cpu.max
expect cpuset.cpus 1 "$(val $D/cpuset.cpus)" cpuset.cpus
expect cpuset.mems 0 "$(val $D/cpuset.mems)" cpuset.mems
expect pids.limit 32 "$(val $D/pids.max)" pids.max
case $ctl in
  *" io "*)
    if [ -f $D/io.bfq.weight ]; then
      expect blkio.weight "default 500" "$(val $D/io.bfq.weight)" io.bfq.weight
    elif [ -f $D/io.weight ]; then
      # io.weight = 1 + (weight - 10) * 9999 / 990
      expect blkio.weight "default $((1 + (500 - 10) * 9999 / 990))" "$(val $D/io.weight)" io.weight
    else
      skip blkio.weight "the io controller has no io.weight here (no BFQ, no blk-iocost)"
    fi
    ;;
  *) skip blkio.weight "no io controller in $D/cgroup.controllers" ;;
esac

# The same from inside: the cgroup namespace shows the container's cgroup as its root, and the
# cgroup2 mount of the config shows the container's own files.
expect cgroupns.proc-self-cgroup "0::/" "$(rt exec res cat /proc/self/cgroup 2>&1)" "exec res cat /proc/self/cgroup"
expect cgroupns.mount "67108864 32" "$(rt exec res cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max 2>&1 | tr '\n' ' ' | sed 's/ $//')" \
  "memory.max pids.max read inside"
expect cpuset.enforced 1 "$(rt exec res sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status 2>&1)" \
  "Cpus_allowed_list inside"

# ---- update --------------------------------------------------------------------------------
if out=$(rt update --memory 128M --pids-limit 64 --cpu-quota 20000 res 2>&1); then
  expect update.memory 134217728 "$(val $D/memory.max)" "memory.max after update --memory 128M"
  expect update.pids 64 "$(val $D/pids.max)" "pids.max after update --pids-limit 64"
  expect update.cpu-quota "20000 100000" "$(val $D/cpu.max)" "cpu.max after update --cpu-quota 20000"
  expect update.inside "134217728 64" "$(rt exec res cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max 2>&1 | tr '\n' ' ' | sed 's/ $//')"
else
  fail update "$out"
fi

# ---- pause / resume: cgroup.freeze -----------------------------------------------------------
frozen() { sed -n 's/^frozen //p' $D/cgroup.events; }
if out=$(rt pause res 2>&1); then
  expect pause.state paused "$(status_of res)"
  expect pause.frozen 1 "$(frozen)" "cgroup.events"
else
  fail pause "$out"
fi
if out=$(rt resume res 2>&1); then
  expect resume.state running "$(status_of res)"
  expect resume.frozen 0 "$(frozen)" "cgroup.events"
else
  fail resume "$out"
fi

# ---- kill --all, then delete ----------------------------------------------------------------
rt exec -d res sleep 3600 < /dev/null > /dev/null 2>&1
n=$(wc -l < $D/cgroup.procs)
if out=$(rt kill --all res KILL 2>&1); then
  if wait_for 10 procs_empty $D && wait_for 10 is_stopped res; then
    pass kill.all "$n processes killed, status stopped"
  else
    fail kill.all "left in cgroup.procs: $(val $D/cgroup.procs); status $(status_of res)"
  fi
else
  fail kill.all "$out"
fi
if out=$(rt delete res 2>&1) && [ ! -e $D ] && [ ! -e /run/strata-runtime/res ]; then
  pass delete.removes-cgroup "$D gone"
else
  fail delete.removes-cgroup "$out; $(ls -d $D /run/strata-runtime/res 2>&1)"
fi

# ---- delete --force of a running container with an explicit cgroupsPath ---------------------
bundle forced '.process.args = ["sleep", "3600"] | .linux.cgroupsPath = "/e2e/forced"
  | .linux.resources.pids = {limit: 10}'
F=$CG/e2e/forced
if rt run -d --bundle "$B/forced" forced < /dev/null > "$B/forced/out" 2>&1; then
  pid=$(rt state forced | jq -r .pid)
  expect cgroups-path "$pid 10" "$(val $F/cgroup.procs) $(val $F/pids.max)" "$F"
  if out=$(rt delete --force forced 2>&1) && [ ! -e $F ] && ! kill -0 "$pid" 2>/dev/null; then
    pass delete.force "running container killed, $F gone"
  else
    fail delete.force "$out; $(ls -d $F 2>&1); pid $pid $(kill -0 "$pid" 2>&1 && echo alive)"
  fi
else
  fail delete.force "run -d: $(cat "$B/forced/out")"
fi

# ---- pids.max enforced: forks beyond the limit get EAGAIN -----------------------------------
# The container's sh (1) runs an inner sh (2) that starts sleeps until fork(2) fails; the inner sh
# dies of it ("can't fork"), and the outer reports with builtins only (no fork needed).
bundle pids '.process.args = ["sh", "-c", "sh -c '"'"'i=0; while [ $i -lt 30 ]; do sleep 60 & i=$((i+1)); echo spawned $i; done'"'"' 2>&1; echo inner-exit=$?; while read -r l; do echo pids.events $l; done < /sys/fs/cgroup/pids.events"]
  | .linux.resources.pids = {limit: 8}'
out=$(rt run --bundle "$B/pids" pids < /dev/null 2>&1)
spawned=$(echo "$out" | sed -n 's/^spawned //p' | tail -n 1)
events=$(echo "$out" | sed -n 's/^pids.events max //p')
case $out in
  *"Resource temporarily unavailable"*)
    if [ "${spawned:-0}" -le 6 ] && [ "${events:-0}" -ge 1 ]; then
      pass pids.enforced "limit 8: $spawned sleeps started, then EAGAIN; pids.events max $events"
    else
      fail pids.enforced "spawned ${spawned:-0} (want <= 6), pids.events max ${events:-?}: $out"
    fi
    ;;
  *) fail pids.enforced "no EAGAIN: $out" ;;
esac

# ---- memory.max enforced: a process allocating past it is OOM-killed -------------------------
# dd's 64 MiB buffer, filled from /dev/zero, in a 32 MiB cgroup with no swap allowed.
bundle oom '.process.args = ["dd", "if=/dev/zero", "of=/dev/null", "bs=67108864", "count=1"]
  | .linux.resources.memory = {limit: 33554432, swap: 33554432}'
rt run --keep --bundle "$B/oom" oom < /dev/null > "$B/oom/out" 2>&1
rc=$?
oom_kill=$(sed -n 's/^oom_kill //p' $CG/strata/oom/memory.events 2>/dev/null)
if [ $rc -eq 137 ] && [ "${oom_kill:-0}" -ge 1 ]; then
  pass memory.enforced "exit 137, memory.events oom_kill $oom_kill, memory.peak $(val $CG/strata/oom/memory.peak)"
else
  fail memory.enforced "exit $rc, oom_kill ${oom_kill:-?}: $(cat "$B/oom/out")"
fi
rt delete --force oom > /dev/null 2>&1

# ---- devices: the BPF program of linux.resources.devices -------------------------------------
# /dev/kmsg (c 1:11) comes from linux.devices and is allowed "rm" only: opening it for reading
# works, for writing is refused with EPERM by the program (nothing else refuses it: dmesg_restrict
# is off). mknod of c 1:3 shows the default devices' "rwm" (and CAP_MKNOD). The default devices
# (null, zero, full, random, urandom, tty, ptmx, pts) are allowed whatever the config's list says,
# as runc does, so /dev/full cannot be denied through the config and is read as a default one.
bundle dev '.process.args = ["sh", "-c", "true < /dev/kmsg && echo kmsg-read=ok; true > /dev/kmsg || echo kmsg-write=denied; mknod /dev/null2 c 1 3 && echo mknod-null=ok; echo x > /dev/null && echo null-write=ok; head -c 1 /dev/full | wc -c | sed s/^/full-read=/"]
  | .linux.devices = [{path: "/dev/kmsg", type: "c", major: 1, minor: 11, fileMode: 438, uid: 0, gid: 0}]
  | .linux.resources.devices += [{allow: true, type: "c", major: 1, minor: 11, access: "rm"}]'
out=$(rt run --bundle "$B/dev" dev < /dev/null 2>&1)
for want in kmsg-read=ok kmsg-write=denied mknod-null=ok null-write=ok full-read=1; do
  name=devices.${want%%=*}
  case $out in
    *"$want"*) pass "$name" "$want" ;;
    *) fail "$name" "want $want: $out" ;;
  esac
done
case $out in
  *"/dev/kmsg: Operation not permitted"*) pass devices.eperm "the refusal is EPERM" ;;
  *) fail devices.eperm "no EPERM on /dev/kmsg: $out" ;;
esac

# ---- the cgroup namespace as the probe sees it -----------------------------------------------
bundle probe '.process.args = ["/bin/probe"]'
cg=$(rt run --bundle "$B/probe" probe < /dev/null 2>&1 | jq -r .cgroup 2>&1)
expect cgroupns.probe "0::/" "$(oneline "$cg")" "probe's /proc/self/cgroup"

# ---- nothing left behind ---------------------------------------------------------------------
left="$(rt list -q 2>&1) $(find $CG/strata $CG/e2e -mindepth 1 -type d 2>/dev/null)"
left=$(oneline "$left")
if [ -z "$left" ]; then pass cleanup "no container, no cgroup left"; else fail cleanup "left: $left"; fi
exit 0
