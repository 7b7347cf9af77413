#!/usr/bin/env bash
# strata-vmm as a Firecracker client sees it: curl --unix-socket in the order Firecracker's
# getting-started guide uses (boot-source, machine-config, drives, actions InstanceStart), then
# pause, snapshot/create, a new process with snapshot/load, and the error cases the issue lists,
# each a 400 with a fault_message while the monitor keeps serving. Guests: the project's own
# (guest/tests), which run under the KVM of these machines.
source "$(dirname "$0")/lib.sh"
require_kvm
src=${STRATA_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
bin=${STRATA_BIN_DIR:-$src/build/bin}
guests=${STRATA_GUEST_DIR:-$bin/../guest}
work=$(mktemp -d /tmp/strata-vmm-api.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# start_vmm NAME: a monitor serving $work/NAME.sock, console in $work/NAME.out
start_vmm() {
  "$bin/strata-vmm" --api-sock "$work/$1.sock" --id "$1" >"$work/$1.out" 2>"$work/$1.err" </dev/null &
  PIDS+=($!)
  eval "${1}_pid=$!"
  for _ in $(seq 50); do [[ -S $work/$1.sock ]] && return 0; sleep 0.05; done
  return 1
}
# api SOCK METHOD PATH [BODY]: prints "<status> <body>"
api() {
  local out
  out=$(curl -s --unix-socket "$work/$1.sock" -X "$2" "http://localhost$3" -H 'Accept: application/json' \
    -H 'Content-Type: application/json' ${4:+-d "$4"} -w ' %{http_code}')
  echo "${out##* } ${out% *}"
}
status_of() { echo "${1%% *}"; }
# expect_fault NAME RESPONSE WORDS: a 400 whose fault_message contains WORDS
expect_fault() {
  local code=${2%% *} body=${2#* }
  if [[ $code == 400 ]] && jq -e --arg w "$3" '.fault_message | contains($w)' <<<"$body" >/dev/null 2>&1; then
    echo "PASS $1"
    PASSED=$((PASSED + 1))
  else
    echo "FAIL $1: expected 400 with \"$3\", got [$2]"
    FAILED=$((FAILED + 1))
  fi
}
wait_for() {  # wait_for FILE PATTERN SECONDS
  for _ in $(seq $((${3} * 20))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  return 1
}

python3 -c "open('$work/disk.img','wb').write(b'STRATA-HOST-DATA'.ljust(1<<20, b'\0'))"

# --- Firecracker's order: configure, start ------------------------------------------------
start_vmm a
check "the API socket appears" test -S "$work/a.sock"
r=$(api a GET /)
expect_eq "GET / before boot" "200 Not started" "$(status_of "$r") $(jq -r .state <<<"${r#* }")"
expect_eq "PUT /boot-source" 204 "$(status_of "$(api a PUT /boot-source "{\"kernel_image_path\": \"$guests/counter.elf\", \"boot_args\": \"console=ttyS0 delay=100\"}")")"
expect_eq "PUT /machine-config" 204 "$(status_of "$(api a PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 64}')")"
expect_eq "PUT /drives/rootfs" 204 "$(status_of "$(api a PUT /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$work/disk.img\", \"is_root_device\": true, \"is_read_only\": false}")")"
r=$(api a GET /machine-config)
expect_eq "GET /machine-config" "200 64" "$(status_of "$r") $(jq -r .mem_size_mib <<<"${r#* }")"

# --- bad requests: each a 400, and the monitor keeps serving -------------------------------
expect_fault "malformed JSON" "$(api a PUT /machine-config '{"vcpu_count": 1,')" ""
expect_fault "an unknown field" "$(api a PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 64, "turbo": true}')" "turbo"
expect_fault "0 MiB of memory" "$(api a PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 0}')" "mem"
expect_fault "oversized memory" "$(api a PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 1000000000}')" "mem"
expect_fault "a missing kernel" "$(api a PUT /boot-source '{"kernel_image_path": "/nonexistent/vmlinux"}')" "/nonexistent/vmlinux"
expect_fault "a file that is not a kernel" "$(api a PUT /boot-source "{\"kernel_image_path\": \"$work/disk.img\"}")" "not a kernel"
expect_fault "a second root device" "$(api a PUT /drives/other "{\"drive_id\": \"other\", \"path_on_host\": \"$work/disk.img\", \"is_root_device\": true, \"is_read_only\": true}")" "root"
expect_fault "path id and body id differ" "$(api a PUT /drives/x "{\"drive_id\": \"y\", \"path_on_host\": \"$work/disk.img\", \"is_root_device\": false, \"is_read_only\": true}")" ""
expect_fault "an unknown path" "$(api a GET /no/such/thing)" "Invalid request method and/or path"
r=$(api a GET /machine-config)
expect_eq "the bad requests changed nothing" "64" "$(jq -r .mem_size_mib <<<"${r#* }")"

expect_eq "InstanceStart" 204 "$(status_of "$(api a PUT /actions '{"action_type": "InstanceStart"}')")"
check "the guest runs (count on the console)" wait_for "$work/a.out" "count 3" 20
expect_fault "InstanceStart twice" "$(api a PUT /actions '{"action_type": "InstanceStart"}')" "after starting"
expect_fault "boot-source after start" "$(api a PUT /boot-source "{\"kernel_image_path\": \"$guests/hello.elf\"}")" "after starting"

# --- pause, snapshot, restore in a new process ---------------------------------------------
expect_eq "PATCH /vm Paused" 204 "$(status_of "$(api a PATCH /vm '{"state": "Paused"}')")"
r=$(api a GET /)
expect_eq "state Paused" "Paused" "$(jq -r .state <<<"${r#* }")"
expect_eq "PUT /snapshot/create" 204 "$(status_of "$(api a PUT /snapshot/create "{\"snapshot_type\": \"Full\", \"snapshot_path\": \"$work/snap.json\", \"mem_file_path\": \"$work/snap.mem\"}")")"
last=$(grep -o 'count [0-9]*' "$work/a.out" | tail -1 | cut -d' ' -f2)
sleep 0.5
expect_eq "paused: no count after the pause" "$last" "$(grep -o 'count [0-9]*' "$work/a.out" | tail -1 | cut -d' ' -f2)"
kill "$a_pid"
wait "$a_pid" 2>/dev/null
check "SIGTERM removes the socket" test ! -e "$work/a.sock"

start_vmm b
expect_eq "PUT /snapshot/load" 204 "$(status_of "$(api b PUT /snapshot/load "{\"snapshot_path\": \"$work/snap.json\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$work/snap.mem\"}, \"resume_vm\": true}")")"
check "the restored guest counts on" wait_for "$work/b.out" "count $((last + 2))" 20
first=$(grep -o 'count [0-9]*' "$work/b.out" | head -1 | cut -d' ' -f2)
expect_eq "it continues from where it was" "$((last + 1))" "$first"
r=$(api b GET /vm/config)
expect_eq "GET /vm/config after a load" "200 rootfs" "$(status_of "$r") $(jq -r '.drives[0].drive_id' <<<"${r#* }")"
# A snapshot of the restored VM: its untouched pages still live in the first memory file, and
# the second file must carry them (a third process restores it and counts on).
api b PATCH /vm '{"state": "Paused"}' >/dev/null
expect_eq "snapshot of a restored VM" 204 "$(status_of "$(api b PUT /snapshot/create "{\"snapshot_type\": \"Full\", \"snapshot_path\": \"$work/snap2.json\", \"mem_file_path\": \"$work/snap2.mem\"}")")"
last2=$(grep -o 'count [0-9]*' "$work/b.out" | tail -1 | cut -d' ' -f2)
kill "$b_pid"
wait "$b_pid" 2>/dev/null
start_vmm c
expect_eq "load the second snapshot" 204 "$(status_of "$(api c PUT /snapshot/load "{\"snapshot_path\": \"$work/snap2.json\", \"mem_file_path\": \"$work/snap2.mem\", \"resume_vm\": true}")")"
check "the twice-restored guest counts on" wait_for "$work/c.out" "count $((last2 + 2))" 20
expect_eq "from where the second snapshot was" "$((last2 + 1))" "$(grep -o 'count [0-9]*' "$work/c.out" | head -1 | cut -d' ' -f2)"
kill "$c_pid"
wait "$c_pid" 2>/dev/null

# --- PATCH /drives/{id} on a running VM: the guest reads the new backing file -------------------
python3 -c "open('$work/disk2.img','wb').write(b'STRATA-SWAPPED!!'.ljust(1<<20, b'\0'))"
cp "$work/disk.img" "$work/disk1.img"
start_vmm d
api d PUT /boot-source "{\"kernel_image_path\": \"$guests/virtio.elf\", \"boot_args\": \"console=ttyS0 strata.test=blk strata.blk_reread_ms=3000\"}" >/dev/null
api d PUT /drives/data "{\"drive_id\": \"data\", \"path_on_host\": \"$work/disk1.img\", \"is_root_device\": false, \"is_read_only\": false}" >/dev/null
api d PUT /actions '{"action_type": "InstanceStart"}' >/dev/null
wait_for "$work/d.out" "reading sector 0 again" 20
expect_eq "PATCH /drives/data to another file while the guest runs" 204 \
  "$(status_of "$(api d PATCH /drives/data "{\"drive_id\": \"data\", \"path_on_host\": \"$work/disk2.img\"}")")"
wait_for "$work/d.out" "VIRTIO DONE" 20
check "the guest read the old file first" grep -q 'blk: sector 0: "STRATA-HOST-DATA"' "$work/d.out"
check "and the new one after the PATCH" grep -q 'blk: sector 0 again: "STRATA-SWAPPED!!"' "$work/d.out"
wait "$d_pid" 2>/dev/null

# --- SendCtrlAltDel (firecracker-go-sdk's Shutdown): the keys through the i8042 --------------
start_vmm k
expect_fault "SendCtrlAltDel before InstanceStart" "$(api k PUT /actions '{"action_type": "SendCtrlAltDel"}')" "before"
api k PUT /boot-source "{\"kernel_image_path\": \"$guests/counter.elf\", \"boot_args\": \"console=ttyS0 delay=50\"}" >/dev/null
api k PUT /actions '{"action_type": "InstanceStart"}' >/dev/null
wait_for "$work/k.out" "count 2" 20
expect_eq "PUT /actions SendCtrlAltDel" 204 "$(status_of "$(api k PUT /actions '{"action_type": "SendCtrlAltDel"}')")"
wait_for "$work/k.out" ctrl-alt-del 10
expect_eq "the guest read Ctrl, Alt, Del from the i8042 (set-2 scancodes)" "kbd 14 kbd 11 kbd e0 kbd 71 " \
  "$(grep -o 'kbd [0-9a-f]*' "$work/k.out" | tr '\n' ' ')"
check "the guest started its shutdown on Del" grep -q ctrl-alt-del "$work/k.out"
for _ in $(seq 100); do kill -0 "$k_pid" 2>/dev/null || break; sleep 0.05; done
wait "$k_pid"
expect_eq "the guest's shutdown ended the monitor (exit 0)" 0 "$?"

# --- the serial console elsewhere: PUT /serial (a file), --console pty ---------------------------
start_vmm s
expect_eq "PUT /serial" 204 "$(status_of "$(api s PUT /serial "{\"serial_out_path\": \"$work/serial.log\"}")")"
api s PUT /boot-source "{\"kernel_image_path\": \"$guests/hello.elf\", \"boot_args\": \"console=ttyS0\"}" >/dev/null
expect_eq "InstanceStart with the console in a file" 204 "$(status_of "$(api s PUT /actions '{"action_type": "InstanceStart"}')")"
wait "$s_pid"
check "the guest's console went to serial_out_path" grep -q hello "$work/serial.log"
check "and not to stdout" bash -c "! grep -q hello '$work/s.out'"
start_vmm s2
api s2 PUT /serial '{"serial_out_path": "/proc/strata-no-such-dir/x"}' >/dev/null
api s2 PUT /boot-source "{\"kernel_image_path\": \"$guests/hello.elf\"}" >/dev/null
expect_fault "an unwritable serial_out_path fails InstanceStart, naming it" \
  "$(api s2 PUT /actions '{"action_type": "InstanceStart"}')" "/proc/strata-no-such-dir/x"
kill "$s2_pid"
wait "$s2_pid" 2>/dev/null
"$bin/strata-vmm" --kernel "$guests/counter.elf" --cmdline "console=ttyS0 delay=50 max=400" --console pty \
  >"$work/pty.out" 2>"$work/pty.err" </dev/null &
pty_vmm=$!
PIDS+=($pty_vmm)
wait_for "$work/pty.err" "console on /dev/pts/" 5
pts=$(sed -n 's|^strata-vmm: console on \(/dev/pts/[0-9]*\)$|\1|p' "$work/pty.err")
check "--console pty names its terminal" test -c "$pts"
check "--console pty: the guest's lines arrive on it" bash -c "timeout 10 grep -m1 -q 'count [0-9]' '$pts'"
check "--console pty: nothing on stdout" test ! -s "$work/pty.out"
kill "$pty_vmm"
wait "$pty_vmm" 2>/dev/null

# --- the socket appears already listening: a client that connects the moment it exists ------
refused=$(python3 - "$bin/strata-vmm" "$work" <<'PY'
import os, socket, subprocess, sys, time
vmm, work = sys.argv[1], sys.argv[2]
refused = 0
for i in range(40):
    path = os.path.join(work, "race%d.sock" % i)
    p = subprocess.Popen([vmm, "--api-sock", path], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    while not os.path.exists(path):
        time.sleep(0.0002)
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
    except ConnectionRefusedError:
        refused += 1
    s.close()
    p.terminate()
    p.wait()
print(refused)
PY
)
expect_eq "40 clients connecting as soon as the socket exists: none refused" 0 "$refused"

# --- a config file, no API: the hello guest ------------------------------------------------
cat >"$work/vm.json" <<JSON
{"boot-source": {"kernel_image_path": "$guests/hello.elf", "boot_args": "console=ttyS0"},
 "machine-config": {"vcpu_count": 1, "mem_size_mib": 32}}
JSON
out=$(timeout 30 "$bin/strata-vmm" --no-api --config-file "$work/vm.json" </dev/null)
code=$?
expect_eq "--config-file --no-api boots and powers off" 0 "$code"
check "the hello guest greeted" grep -q hello <<<"$out"
echo '{"boot-source": {"kernel_image_path": "/nonexistent"}}' >"$work/bad.json"
err=$(timeout 30 "$bin/strata-vmm" --no-api --config-file "$work/bad.json" 2>&1 </dev/null)
expect_eq "a bad config file: exit 152" 152 "$?"
check "a bad config file: the error names the kernel" grep -q /nonexistent <<<"$err"
check "no monitor left" test -z "$(pgrep -f "strata-vmm --api-sock $work" || true)"
finish
