#!/usr/bin/env bash
# strata-vmm and the host paths its API and command line take (issue 10, item 8): a FIFO, a
# device or a directory where a file is expected gets a 400 naming what the path is, at once,
# and the API keeps answering; a FIFO is accepted where Firecracker accepts one (logger,
# metrics) without waiting for a reader. Needs no /dev/kvm: each check happens before a VM
# would be built, and a monitor without a VM serves its API.
source "$(dirname "$0")/lib.sh"
src=${STRATA_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
bin=${STRATA_BIN_DIR:-$src/build/bin}
work=$(mktemp -d /tmp/strata-vmm-files.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# start_vmm NAME [ARGS...]: a monitor serving $work/NAME.sock; its pid in NAME_pid
start_vmm() {
  local name=$1
  shift
  "$bin/strata-vmm" --api-sock "$work/$name.sock" --id "$name" "$@" >"$work/$name.out" 2>"$work/$name.err" </dev/null &
  PIDS+=($!)
  eval "${name}_pid=$!"
  for _ in $(seq 100); do [[ -S $work/$name.sock ]] && return 0; sleep 0.05; done
  return 1
}
# api NAME METHOD PATH [BODY]: prints "<status> <body>"; a request taking over 5 s is "000".
api() {
  local out
  out=$(curl -s -m 5 --unix-socket "$work/$1.sock" -X "$2" "http://localhost$3" \
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
answers() { [[ $(status_of "$(api "$1" GET /)") == 200 ]]; }
# ends_within PID SECONDS: the process is gone within SECONDS
ends_within() {
  for _ in $(seq $(($2 * 20))); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
  return 1
}

mkfifo "$work/fifo" "$work/log.fifo" "$work/metrics.fifo"
mkdir "$work/dir"
printf 'not a kernel' >"$work/file"

# --- PUT /logger and PUT /metrics: a FIFO with no reader is taken, nothing waits ------------------
start_vmm a
r=$(api a PUT /logger "{\"log_path\": \"$work/log.fifo\", \"level\": \"Debug\"}")
expect_eq "PUT /logger with a FIFO nobody reads: 204 at once" 204 "$(status_of "$r")"
check "and the API still answers after it" answers a
expect_fault "an unknown path is still refused, and logged to the FIFO" "$(api a GET /strata-probe-path)" "strata-probe-path"
# The FIFO holds the log lines written meanwhile (O_RDWR keeps them while nobody reads).
logged=$(python3 - "$work/log.fifo" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
try:
    print(os.read(fd, 65536).decode(errors="replace"))
except BlockingIOError:
    pass
PY
)
check "the log line reached the FIFO" grep -q strata-probe-path <<<"$logged"
# Fill the FIFO: with nobody reading, logging drops lines instead of blocking the API thread.
for i in $(seq 400); do api a GET "/fill-the-log-fifo-with-a-long-path-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" >/dev/null; done
check "with the log FIFO full, the API still answers" answers a
r=$(api a PUT /metrics "{\"metrics_path\": \"$work/metrics.fifo\"}")
expect_eq "PUT /metrics with a FIFO nobody reads: 204 (Firecracker accepts it)" 204 "$(status_of "$r")"
expect_fault "a socket as log_path" "$(api a PUT /logger "{\"log_path\": \"$work/a.sock\"}")" "not a regular file (a socket)"
expect_fault "a directory as log_path" "$(api a PUT /logger "{\"log_path\": \"$work/dir\"}")" "EISDIR"

# --- files that are read: regular files only ---------------------------------------------------
expect_fault "a FIFO as kernel" "$(api a PUT /boot-source "{\"kernel_image_path\": \"$work/fifo\"}")" "not a regular file (a FIFO)"
expect_fault "/dev/zero as kernel" "$(api a PUT /boot-source '{"kernel_image_path": "/dev/zero"}')" "not a regular file (a character device)"
expect_fault "a directory as kernel" "$(api a PUT /boot-source "{\"kernel_image_path\": \"$work/dir\"}")" "not a regular file (a directory)"
expect_fault "a FIFO as initrd" "$(api a PUT /boot-source "{\"kernel_image_path\": \"$work/file\", \"initrd_path\": \"$work/fifo\"}")" "not a regular file (a FIFO)"
expect_fault "a FIFO as a read-only drive" "$(api a PUT /drives/d1 "{\"drive_id\": \"d1\", \"path_on_host\": \"$work/fifo\", \"is_root_device\": false, \"is_read_only\": true}")" "not a regular file or a block device (a FIFO)"
expect_fault "a FIFO as a writable drive" "$(api a PUT /drives/d2 "{\"drive_id\": \"d2\", \"path_on_host\": \"$work/fifo\", \"is_root_device\": false, \"is_read_only\": false}")" "not a regular file or a block device (a FIFO)"
expect_fault "/dev/zero as a drive" "$(api a PUT /drives/d3 '{"drive_id": "d3", "path_on_host": "/dev/zero", "is_root_device": false, "is_read_only": true}')" "(a character device)"
check "after all that, the API answers" answers a
r=$(api a GET /vm/config)
expect_eq "and none of the refused resources was kept" "0 []" \
  "$(jq -r '.drives | length' <<<"${r#* }") [$(jq -r '."boot-source".kernel_image_path // ""' <<<"${r#* }")]"
kill "$a_pid"
check "SIGTERM ends it" ends_within "$a_pid" 5

# --- PUT /snapshot/load: the state file is a regular file of bounded size ------------------------
start_vmm b
expect_fault "a FIFO as snapshot_path" "$(api b PUT /snapshot/load "{\"snapshot_path\": \"$work/fifo\", \"mem_file_path\": \"$work/file\"}")" "not a regular file (a FIFO)"
check "the API answers after it" answers b
expect_fault "/dev/zero as snapshot_path" "$(api b PUT /snapshot/load "{\"snapshot_path\": \"/dev/zero\", \"mem_file_path\": \"$work/file\"}")" "not a regular file (a character device)"
truncate -s 64M "$work/huge.json"
expect_fault "a 64 MiB snapshot_path" "$(api b PUT /snapshot/load "{\"snapshot_path\": \"$work/huge.json\", \"mem_file_path\": \"$work/file\"}")" "larger than"
rss_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$b_pid/status")
check "the monitor read none of it (RSS ${rss_kib} KiB < 32 MiB)" test "$rss_kib" -lt 32768
check "the API answers after them" answers b
kill "$b_pid"
check "SIGTERM still ends it" ends_within "$b_pid" 5
check "and its socket is removed" test ! -e "$work/b.sock"

# --- the command line ---------------------------------------------------------------------------
start_vmm c --log-path "$work/log.fifo"
check "--log-path a FIFO nobody reads: the API is served" answers c
kill "$c_pid"
check "and SIGTERM ends it" ends_within "$c_pid" 5
timeout 10 "$bin/strata-vmm" --no-api --config-file "$work/fifo" >/dev/null 2>"$work/cf.err" </dev/null
expect_eq "--config-file a FIFO: exit 152 at once" 152 "$?"
check "naming the FIFO" grep -q "not a regular file (a FIFO)" "$work/cf.err"
timeout 10 "$bin/strata-vmm" --no-api --config-file /dev/zero >/dev/null 2>"$work/cf.err" </dev/null
expect_eq "--config-file /dev/zero: exit 152" 152 "$?"
check "naming the device" grep -q "not a regular file (a character device)" "$work/cf.err"
cat >"$work/vm.json" <<JSON
{"boot-source": {"kernel_image_path": "$work/fifo"}, "machine-config": {"vcpu_count": 1, "mem_size_mib": 32}}
JSON
timeout 10 "$bin/strata-vmm" --no-api --config-file "$work/vm.json" >/dev/null 2>"$work/cf.err" </dev/null
expect_eq "a config file whose kernel is a FIFO: exit 152" 152 "$?"
check "naming it" grep -q "not a regular file (a FIFO)" "$work/cf.err"
cat >"$work/vm2.json" <<JSON
{"boot-source": {"kernel_image_path": "$work/file"}, "logger": {"log_path": "$work/dir"}}
JSON
timeout 10 "$bin/strata-vmm" --no-api --config-file "$work/vm2.json" >/dev/null 2>"$work/cf.err" </dev/null
expect_eq "a config file whose logger is a directory: exit 152" 152 "$?"
check "naming the logger" grep -q "logger" "$work/cf.err"
check "no monitor left" test -z "$(pgrep -f "strata-vmm --api-sock $work" || true)"
finish
