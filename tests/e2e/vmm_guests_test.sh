#!/usr/bin/env bash
# The project's test guests under strata-vmm on the KVM of these machines (PVM: guest code is
# emulated, so the guests are small on purpose; ENVIRONMENT.md). Each runs to its marker:
#   virtio.elf  blk: host data read by the guest, the guest's write in the host image, flush,
#               serial id; read-only enforced (IOERR, image unchanged); rng: 32 random bytes
#   virtio.elf  net: a frame from the guest reaches a tap (read with an AF_PACKET socket);
#               vsock: host-initiated (CONNECT 1234 on the uds, echoed) and guest-initiated
#               (to <uds>_5678) connections, both ways, with tests/e2e/vsock_host.py
#   hostile.elf garbage in every virtqueue: each device is marked NEEDS_RESET, the monitor logs
#               it, stays alive and answers its API while the guest runs on
source "$(dirname "$0")/lib.sh"
require_kvm
in_own_netns "$0" "$@"
src=${STRATA_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
bin=${STRATA_BIN_DIR:-$src/build/bin}
guests=${STRATA_GUEST_DIR:-$bin/../guest}
work=$(mktemp -d /tmp/strata-vmm-guests.XXXXXX)
trap 'pkill -f "strata-vmm --api-sock $work" 2>/dev/null; rm -rf "$work"' EXIT
vmm=("timeout" "60" "$bin/strata-vmm")

python3 -c "open('$work/disk.img','wb').write(b'STRATA-HOST-DATA'.ljust(1<<20, b'\0'))"
out=$("${vmm[@]}" --kernel "$guests/virtio.elf" --disk "$work/disk.img" --rng --cmdline console=ttyS0 </dev/null 2>"$work/err")
expect_eq "virtio.elf powers off" 0 "$?"
check "blk: the guest read the host's data" grep -q 'blk: sector 0: "STRATA-HOST-DATA"' <<<"$out"
check "blk: the guest wrote, flushed and read back" grep -q 'blk: wrote sector 1: "strata-guest-wrote 1", flushed, read back ok' <<<"$out"
expect_eq "blk: the write is in the host image" "strata-guest-wrote 1" "$(dd if="$work/disk.img" bs=512 skip=1 count=1 2>/dev/null | tr -d '\0 ' | head -c 40 | sed 's/wrote1/wrote 1/')"
check "blk: serial id is the drive id" grep -q 'blk: serial "drive0"' <<<"$out"
check "rng: random bytes" grep -q 'rng: OK' <<<"$out"
check "VIRTIO DONE" grep -q 'VIRTIO DONE' <<<"$out"

before=$(sha256sum <"$work/disk.img")
out=$("${vmm[@]}" --kernel "$guests/virtio.elf" --disk "$work/disk.img:ro" --cmdline "console=ttyS0 strata.test=blk" </dev/null 2>&1)
check "blk read-only: the write was refused" grep -q 'blk: read-only enforced: write to sector 1 returned IOERR' <<<"$out"
expect_eq "blk read-only: the image is unchanged" "$before" "$(sha256sum <"$work/disk.img")"

# net and vsock: a config file with a tap (in this test's own network namespace) and a vsock.
ip tuntap add dev vmtap0 mode tap && ip link set vmtap0 up
python3 - "$work/frame" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88b5))
s.bind(("vmtap0", 0))
s.settimeout(30)
try:
    data = s.recv(2000)
    open(sys.argv[1], "wb").write(data)
except OSError:
    pass
PY
sniffer=$!
python3 "$src/tests/e2e/vsock_host.py" "$work/v.sock" 40 >"$work/vsock_host.out" 2>&1 &
vhost=$!
cat >"$work/vm.json" <<JSON
{"boot-source": {"kernel_image_path": "$guests/virtio.elf", "boot_args": "console=ttyS0 strata.test=net,vsock"},
 "machine-config": {"vcpu_count": 1, "mem_size_mib": 32},
 "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "vmtap0", "guest_mac": "06:00:ac:10:00:02"}],
 "vsock": {"guest_cid": 3, "uds_path": "$work/v.sock"}}
JSON
sleep 0.3
out=$(timeout 90 "$bin/strata-vmm" --no-api --config-file "$work/vm.json" </dev/null 2>"$work/nv.err")
expect_eq "virtio.elf with net and vsock powers off" 0 "$?"
check "net: the guest sent its frame" grep -q 'net: sent broadcast frame' <<<"$out"
wait $sniffer
check "net: the frame reached the tap" grep -q "strata-guest-frame" "$work/frame"
check "net: from the configured MAC" test "$(head -c 12 "$work/frame" | od -An -tx1 | tr -d ' \n' | cut -c13-24)" = "0600ac100002"
wait $vhost
check "vsock: the host's CONNECT was echoed by the guest" grep -q "host-initiated echo: echo-me" "$work/vsock_host.out"
check "vsock: the guest's connection reached <uds>_5678" grep -q "guest-initiated message: ping-from-guest" "$work/vsock_host.out"
check "vsock: the guest got the host's reply" grep -q 'vsock: reply from port 5678: "pong-from-host"' <<<"$out"
check "vsock: OK" grep -q 'vsock: OK' <<<"$out"
check "the vsock socket is removed at exit" test ! -e "$work/v.sock"
ip link del vmtap0 2>/dev/null

# hostile.elf with the API up: the API answers while the guest attacks and afterwards.
"$bin/strata-vmm" --api-sock "$work/h.sock" >"$work/h.out" 2>"$work/h.err" </dev/null &
pid=$!
for _ in $(seq 50); do [[ -S $work/h.sock ]] && break; sleep 0.05; done
api() { curl -s --unix-socket "$work/h.sock" -X "$1" "http://localhost$2" ${3:+-d "$3"} -w ' %{http_code}'; }
api PUT /boot-source "{\"kernel_image_path\": \"$guests/hostile.elf\", \"boot_args\": \"console=ttyS0 hostile.alive=40 hostile.alive_ms=300\"}" >/dev/null
api PUT /drives/d "{\"drive_id\": \"d\", \"path_on_host\": \"$work/disk.img\", \"is_root_device\": false, \"is_read_only\": false}" >/dev/null
api PUT /entropy '{}' >/dev/null
api PUT /actions '{"action_type": "InstanceStart"}' >/dev/null
answered=0
for _ in $(seq 600); do
  [[ $(api GET /) == *'"state":"Running"'*200 ]] && answered=$((answered + 1))
  grep -q 'still alive 2' "$work/h.out" && break
  sleep 0.1
done
check "the API answered during the attack" test "$answered" -gt 5
check "the guest reached HOSTILE DONE" grep -q 'HOSTILE DONE' "$work/h.out"
check "blk was marked NEEDS_RESET" grep -q 'blk@.*status 0x4f (NEEDS_RESET)' "$work/h.out"
check "rng was marked NEEDS_RESET" grep -q 'rng@.*status 0x4f (NEEDS_RESET)' "$work/h.out"
check "the monitor logged the failure" grep -q 'virtio-blk d: device needs reset' "$work/h.err"
check "both devices work after a reset" test "$(grep -c 'afterwards: read.* works' "$work/h.out")" -eq 2
check "the API still answers" grep -q '200$' <<<"$(api GET /)"
kill "$pid"
wait "$pid" 2>/dev/null
check "the monitor was alive to the end" test -n "$(grep 'still alive' "$work/h.out")"
finish
