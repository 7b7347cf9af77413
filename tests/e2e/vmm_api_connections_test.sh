#!/usr/bin/env bash
# What API clients can hold of strata-vmm (issue 10, item 7): with its descriptors used up by
# idle connections (ulimit -n low), accept() fails with EMFILE and the monitor must pause, not
# spin: CPU stays low and the log small, and it serves again once clients go. Connections are
# capped (the 11th is answered 503 "Too many open connections", as Firecracker's), and a
# request sent only in part is answered 408 and closed after the request timeout (10 s).
# Needs no /dev/kvm: the API is served by a monitor that has no VM.
source "$(dirname "$0")/lib.sh"
src=${STRATA_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
bin=${STRATA_BIN_DIR:-$src/build/bin}
work=$(mktemp -d /tmp/strata-vmm-conns.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  [[ -n ${KEEP:-} ]] || rm -rf "$work"
}
trap cleanup EXIT

# start_vmm NAME NOFILE: a monitor under `ulimit -n NOFILE`, logging to $work/NAME.log
start_vmm() {
  (ulimit -n "$2" && exec "$bin/strata-vmm" --api-sock "$work/$1.sock" --log-path "$work/$1.log" \
    >"$work/$1.out" 2>"$work/$1.err" </dev/null) &
  PIDS+=($!)
  eval "${1}_pid=$!"
  for _ in $(seq 100); do [[ -S $work/$1.sock ]] && return 0; sleep 0.05; done
  return 1
}
answers() { [[ $(curl -s -m 5 -o /dev/null -w '%{http_code}' --unix-socket "$work/$1.sock" http://localhost/) == 200 ]]; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime, in clock ticks
hz=$(getconf CLK_TCK)

# --- EMFILE: 40 idle clients against 12 descriptors ---------------------------------------------
start_vmm a 12
check "a monitor under ulimit -n 12 serves" answers a
python3 - "$work/a.sock" "$work/a.clients" <<'PY' &
import os, socket, sys, time
# 40 connections that send nothing: the first take the monitor's last descriptors, the rest
# wait in the listen backlog while its accept() fails with EMFILE. Held until the file goes.
held = []
for _ in range(40):
    s = socket.socket(socket.AF_UNIX)
    s.setblocking(False)
    try:
        s.connect(sys.argv[1])
    except BlockingIOError:
        pass
    held.append(s)
open(sys.argv[2], "w").close()
while os.path.exists(sys.argv[2]):
    time.sleep(0.05)
PY
clients=$!
for _ in $(seq 100); do [[ -e $work/a.clients ]] && break; sleep 0.05; done
sleep 1
t0=$(cpu_ticks "$a_pid")
sleep 5
t1=$(cpu_ticks "$a_pid")
used_ms=$(((t1 - t0) * 1000 / hz))
log_bytes=$(stat -c %s "$work/a.log")
echo "EMFILE: the monitor used ${used_ms} ms of CPU in 5 s; its log is ${log_bytes} bytes"
check "out of descriptors, the monitor does not spin (${used_ms} ms of CPU in 5 s, under 500)" test "$used_ms" -lt 500
check "the log stays small (${log_bytes} bytes, under 16 KiB)" test "$log_bytes" -lt 16384
check "it says why it does not accept" grep -q "accept: Too many open files" "$work/a.log"
check "and that it tries again after a pause" grep -q "trying again in 100 ms" "$work/a.log"
rm -f "$work/a.clients"
wait "$clients"
ok=0
for _ in $(seq 40); do answers a && { ok=1; break; }; sleep 0.25; done
check "once the clients are gone, it answers again" test "$ok" = 1
kill "$a_pid"
wait "$a_pid" 2>/dev/null

# --- the connection cap and the request timeout ---------------------------------------------------
start_vmm b 1024
out=$(python3 - "$work/b.sock" <<'PY'
import json, socket, sys, time
path = sys.argv[1]

def connect():
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    return s

def read_all(s, timeout):
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return data, True  # closed by the monitor
            data += chunk
    except socket.timeout:
        return data, False

# Ten idle connections fill the monitor; each has been accepted once a request on it answers.
idle = []
for _ in range(10):
    s = connect()
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(5)
    s.recv(4096)
    idle.append(s)
extra = connect()
data, closed = read_all(extra, 5)
print("eleventh:", data.split(b"\r\n", 1)[0].decode(), "closed" if closed else "open",
      "full" if b"Too many open connections" in data else "-")
idle.pop().close()
time.sleep(0.3)
again = connect()
again.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
data, _ = read_all(again, 1)
print("after one left:", data.split(b"\r\n", 1)[0].decode())
again.close()
for s in idle:
    s.close()
time.sleep(0.3)

# Half a request: the header never ends.
half = connect()
half.sendall(b"PUT /machine-config HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n")
t = time.time()
data, closed = read_all(half, 30)
print("half header: %s after %.0f s, %s" % (data.split(b"\r\n", 1)[0].decode(), time.time() - t,
                                           "closed" if closed else "open"))
# A header, then part of its body.
part = connect()
part.sendall(b"PUT /machine-config HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n{\"vcpu")
t = time.time()
data, closed = read_all(part, 30)
body = data.split(b"\r\n\r\n", 1)[-1]
print("half body: %s after %.0f s, %s, %s" % (data.split(b"\r\n", 1)[0].decode(), time.time() - t,
                                             "closed" if closed else "open",
                                             json.loads(body).get("fault_message", "") if body else ""))
PY
)
echo "$out"
check "the eleventh connection is answered 503 and closed" grep -q "^eleventh: HTTP/1.1 503 Service Unavailable closed full$" <<<"$out"
check "a connection is served again once one of the ten left" grep -q "^after one left: HTTP/1.1 200 OK$" <<<"$out"
check "a header never finished: 408 and closed after 10 s" grep -Eq "^half header: HTTP/1.1 408 Request Timeout after (10|11|12) s, closed$" <<<"$out"
check "a body never finished: 408 and closed after 10 s, saying why" \
  grep -Eq "^half body: HTTP/1.1 408 Request Timeout after (10|11|12) s, closed, The request was not received in full within 10000 ms" <<<"$out"
check "the monitor still answers" answers b
check "the refusal is logged" grep -q "refusing one more" "$work/b.log"
kill "$b_pid"
wait "$b_pid" 2>/dev/null
finish
