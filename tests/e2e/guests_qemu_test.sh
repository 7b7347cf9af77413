#!/usr/bin/env bash
# The project's test guests (guest/tests: hello.elf, virtio.elf, counter.elf, hostile.elf)
# under QEMU with software emulation: `qemu-system-x86_64 -M microvm -accel tcg -kernel X.elf`
# boots them through their PVH note, the same entry strata-vmm uses. What this proves is the
# guests themselves (boot, serial, virtio-mmio v2 drivers, power off), so that a failure under
# strata-vmm points at the monitor.
#
#   hello    "hello" on the serial port, QEMU exits 1 (isa-debug-exit value 0: (0<<1)|1)
#   blk      sector 0 pattern read, guest's write lands in the host file, serial (GET_ID);
#            then read-only: the write is refused (IOERR) and the file is unchanged
#   net+rng  a broadcast frame (ethertype 0x88b5) seen on a tap by a python raw-socket peer, its
#            answer frame seen by the guest; 32 random bytes; strata.test= filtering
#   counter  "count N" lines go up one by one while it runs; max= ends it
#   hostile  garbage in every virtqueue of blk and net: the guest reaches "HOSTILE DONE" and
#            "still alive N" and QEMU neither hangs nor dies (QEMU prints virtio errors)
#   none     virtio.elf with no devices ends at once
# Not here: vsock (no vhost-vsock on these hosts; QEMU has no user-space vsock device), so
# virtio.elf's vsock part runs only under strata-vmm. hostile.elf is not given a virtio-rng
# device: QEMU 7.2 takes ~30 s to fill its 0xffffffff-byte buffer (no error, just slow).
#
# QEMU microvm does not append virtio_mmio.device= to a PVH kernel's command line (only to a
# bzImage's), so the guests find QEMU's devices at microvm's fixed slots (0xfeb00000 + n*0x200);
# under strata-vmm they read virtio_mmio.device=4K@0xd0000000:5 ... from the command line.
# QEMU's virtio-mmio is legacy (version 1) unless -global virtio-mmio.force-legacy=false.
#
# Runs in a network namespace of its own (for the tap). Every QEMU run is under timeout(1).
# Env: STRATA_GUEST_DIR (the built *.elf; default $STRATA_BIN_DIR/../guest), STRATA_BIN_DIR,
# STRATA_SOURCE_DIR (set by ctest); STRATA_KEEP_GUEST=1 keeps the work directory (serial logs).
source "$(dirname "$0")/lib.sh"
in_own_netns "$0" "$@"
src=${STRATA_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
bin=${STRATA_BIN_DIR:-$src/build/bin}
guests=${STRATA_GUEST_DIR:-$bin/../guest}

say() { echo "guests_qemu: $*"; }
for tool in qemu-system-x86_64 python3 timeout ip sha256sum; do
  command -v $tool >/dev/null || {
    say "FAIL: $tool missing (scripts/install-deps.sh)"
    exit 1
  }
done
for g in hello virtio counter hostile; do
  [[ -f $guests/$g.elf ]] || {
    say "FAIL: no $guests/$g.elf (build target test_guests; set STRATA_GUEST_DIR)"
    exit 1
  }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/strata-guests-qemu.XXXXXX")
TAP=sgtap0
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  ip link del "$TAP" 2>/dev/null
  if [[ ${STRATA_KEEP_GUEST:-0} == 1 ]]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run_guest NAME SECONDS ELF [QEMU ARGS...]: serial to $work/NAME.log; sets RC and ELAPSED.
run_guest() {
  local name=$1 secs=$2 elf=$3
  shift 3
  local t0 t1
  t0=$(date +%s%N)
  timeout -k 5 "$secs" qemu-system-x86_64 -M microvm -accel tcg -m 128 -nodefaults -no-user-config \
    -display none -no-reboot -serial "file:$work/$name.log" -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -global virtio-mmio.force-legacy=false -kernel "$guests/$elf" "$@" </dev/null >"$work/$name.qemu" 2>&1
  RC=$?
  t1=$(date +%s%N)
  ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
  tr -d '\r' <"$work/$name.log" >"$work/$name.txt"
  say "$name: $elf ran ${ELAPSED} s, QEMU status $RC"
  TIMES+=("$name ${ELAPSED}s")
}
TIMES=()
has() { grep -qaF -- "$2" "$work/$1.txt"; }
show() { sed 's/^/  | /' "$work/$1.txt"; }

# ---- hello --------------------------------------------------------------------------------
run_guest hello 30 hello.elf
show hello
check "hello: greeting" has hello "hello from strata test guest"
expect_eq "hello: QEMU exit status 1 (guest wrote 0 to isa-debug-exit)" 1 "$RC"

# ---- virtio-blk, read-write ---------------------------------------------------------------
make_disk() {
  python3 - "$1" <<'PY'
import sys
d = bytearray(1024 * 1024)
d[0:16] = b"STRATA-PATTERN-0"
open(sys.argv[1], "wb").write(d)
PY
}
make_disk "$work/rw.img"
run_guest blk 60 virtio.elf -append "strata.test=blk" \
  -drive id=d0,file="$work/rw.img",format=raw,if=none -device virtio-blk-device,drive=d0,serial=strata-test-disk
show blk
check "blk: sector 0 pattern read" has blk 'blk: sector 0: "STRATA-PATTERN-0" hex 53 54 52 41'
check "blk: write reported" has blk 'blk: wrote sector 1: "strata-guest-wrote 1", flushed, read back ok'
check "blk: serial from GET_ID" has blk 'blk: serial "strata-test-disk"'
check "blk: result OK" has blk 'blk: OK'
check "blk: VIRTIO DONE" has blk 'VIRTIO DONE'
expect_eq "blk: QEMU exit status" 1 "$RC"
expect_eq "blk: guest's write is in the host file" "strata-guest-wrote 1" \
  "$(dd if="$work/rw.img" bs=1 skip=512 count=20 2>/dev/null)"

# ---- virtio-blk, read-only ----------------------------------------------------------------
make_disk "$work/ro.img"
before=$(sha256sum <"$work/ro.img")
run_guest blk_ro 60 virtio.elf -append "strata.test=blk" \
  -drive id=d0,file="$work/ro.img",format=raw,if=none,readonly=on -device virtio-blk-device,drive=d0
show blk_ro
check "blk ro: sector 0 pattern read" has blk_ro 'blk: sector 0: "STRATA-PATTERN-0"'
check "blk ro: write refused" has blk_ro 'blk: read-only enforced: write to sector 1 returned IOERR'
check "blk ro: result OK" has blk_ro 'blk: OK'
expect_eq "blk ro: host file unchanged" "$before" "$(sha256sum <"$work/ro.img")"
expect_eq "blk ro: QEMU exit status" 1 "$RC"

# ---- virtio-net on a tap, virtio-rng ------------------------------------------------------
cat >"$work/netpeer.py" <<'PY'
# Waits for the guest's 0x88b5 frame on the tap, records it, answers with "strata-host-frame".
import socket, sys, time
ifname, out, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88b5))
s.bind((ifname, 0x88b5))
s.settimeout(0.2)
open(out + ".ready", "w").close()
end = time.time() + timeout
while time.time() < end:
    try:
        f = s.recv(2048)
    except socket.timeout:
        continue
    if len(f) < 14 or f[12:14] != b"\x88\xb5":
        continue
    with open(out, "w") as o:
        o.write("dst=%s src=%s payload=%s\n" % (f[0:6].hex(":"), f[6:12].hex(":"),
                f[14:].rstrip(b"\0").decode("ascii", "replace")))
    reply = f[6:12] + bytes.fromhex("020000aabbcc") + b"\x88\xb5" + b"strata-host-frame"
    reply += b"\0" * (60 - len(reply))
    for _ in range(3):
        s.send(reply)
        time.sleep(0.05)
    break
PY
if ip tuntap add dev "$TAP" mode tap && ip link set "$TAP" up; then
  sysctl -qw "net.ipv6.conf.$TAP.disable_ipv6=1" 2>/dev/null
  python3 "$work/netpeer.py" "$TAP" "$work/peer.out" 90 &
  PIDS+=($!)
  for _ in $(seq 100); do [[ -e $work/peer.out.ready ]] && break; sleep 0.1; done
  run_guest net 60 virtio.elf -append "strata.test=net,rng strata.net_rx_ms=3000" \
    -netdev tap,id=n0,ifname="$TAP",script=no,downscript=no -device virtio-net-device,netdev=n0,mac=52:54:00:5a:5a:02 \
    -device virtio-rng-device
  show net
  check "net: guest sent its frame" has net 'net: sent broadcast frame, ethertype 0x88b5, 60 bytes, payload "strata-guest-frame"'
  expect_eq "net: host saw the guest's frame on the tap" \
    "dst=ff:ff:ff:ff:ff:ff src=52:54:00:5a:5a:02 payload=strata-guest-frame" "$(cat "$work/peer.out" 2>/dev/null)"
  check "net: guest received the host's frame" has net 'ethertype 0x88b5, 60 bytes, payload "strata-host-frame"'
  check "net: result OK" has net 'net: OK'
  check "rng: 32 bytes" grep -qaE '^rng: 32 bytes: ([0-9a-f]{2} ){31}[0-9a-f]{2}$' "$work/net.txt"
  check "rng: result OK" has net 'rng: OK'
  check "net+rng: VIRTIO DONE" has net 'VIRTIO DONE'
  expect_eq "net+rng: QEMU exit status" 1 "$RC"
else
  check "net: tap $TAP created" false
fi

# strata.test= picks the parts: only rng runs, the blk device is left alone.
make_disk "$work/filter.img"
run_guest filter 60 virtio.elf -append "strata.test=rng" -device virtio-rng-device \
  -drive id=d0,file="$work/filter.img",format=raw,if=none -device virtio-blk-device,drive=d0
show filter
check "filter: blk skipped" has filter 'blk: skipped (not in strata.test)'
check "filter: rng ran" has filter 'rng: OK'
check "filter: summary" has filter 'virtio: 2 device(s): 1 ok, 0 failed, 0 timeout, 1 skipped'
expect_eq "filter: blk image untouched" "" "$(dd if="$work/filter.img" bs=1 skip=512 count=20 2>/dev/null | tr -d '\0')"

# ---- no devices -------------------------------------------------------------------------------
run_guest none 30 virtio.elf
check "none: no devices found" has none 'virtio: 0 device(s)'
check "none: VIRTIO DONE" has none 'VIRTIO DONE'
expect_eq "none: QEMU exit status" 1 "$RC"

# ---- counter ----------------------------------------------------------------------------------
run_guest counter 3 counter.elf -append "delay=100"
tail -n 3 "$work/counter.txt" | sed 's/^/  | /'
expect_eq "counter: killed by timeout while counting" 124 "$RC"
counts=$(grep -a '^count [0-9]*$' "$work/counter.txt" | awk '{print $2}')
n=$(echo "$counts" | grep -c .)
check "counter: at least 5 lines in ~3 s (got $n)" test "$n" -ge 5
expect_eq "counter: counts are 1..N in order" "$(seq 1 "$n" | tr '\n' ' ')" "$(echo "$counts" | tr '\n' ' ')"
run_guest counter_max 30 counter.elf -append "delay=50 max=3"
check "counter max=3: ends with COUNTER DONE" has counter_max 'COUNTER DONE'
check "counter max=3: count 3" has counter_max 'count 3'
expect_eq "counter max=3: QEMU exit status" 1 "$RC"

# ---- hostile ----------------------------------------------------------------------------------
make_disk "$work/hostile.img"
run_guest hostile 180 hostile.elf -append "hostile.alive=3 hostile.alive_ms=200" \
  -drive id=d0,file="$work/hostile.img",format=raw,if=none -device virtio-blk-device,drive=d0 \
  -netdev user,id=n0,restrict=on -device virtio-net-device,netdev=n0
grep -av ' q[0-9]: ' "$work/hostile.txt" | sed 's/^/  | /'
say "hostile: $(grep -ac ' q[0-9]: ' "$work/hostile.txt") garbage cases reported; QEMU printed $(wc -l <"$work/hostile.qemu") lines of complaints"
check "hostile: HOSTILE DONE" has hostile 'HOSTILE DONE'
check "hostile: still alive 3" has hostile 'still alive 3'
expect_eq "hostile: QEMU neither hung nor crashed (exit status 1)" 1 "$RC"

say "timings (QEMU start to exit, TCG): ${TIMES[*]}"
finish
