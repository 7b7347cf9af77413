#!/usr/bin/env bash
# strata vm: micro-VMs from the user's CLI (each a strata-vmm process driven over its API),
# with the project's test guests: a foreground run returns the guest's outcome, a detached VM is
# listed, paused, snapshotted, stopped and restored into a new VM that counts on, and bad input
# leaves nothing behind.
source "$(dirname "$0")/lib.sh"
require_kvm
src=${STRATA_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
bin=${STRATA_BIN_DIR:-$src/build/bin}
guests=${STRATA_GUEST_DIR:-$bin/../guest}
work=$(mktemp -d /tmp/strata-vm-test.XXXXXX)
S=(timeout 60 "$bin/strata" --root "$work/root")
trap '"$bin/strata" --root "$work/root" vm rm -f $("$bin/strata" --root "$work/root" vm ls -q) >/dev/null 2>&1; rm -rf "$work"' EXIT

out=$("${S[@]}" vm run --kernel "$guests/hello.elf")
expect_eq "vm run: the guest's exit" 0 "$?"
check "vm run: the console reached the terminal" grep -q hello <<<"$out"
expect_eq "vm run: nothing left after a foreground run" "" "$(ls "$work/root/vms")"

id=$("${S[@]}" vm run -d --name c1 --kernel "$guests/counter.elf" --cmdline "console=ttyS0 delay=100")
check "vm run -d prints the id" test ${#id} -eq 64
for _ in $(seq 100); do grep -q "count 3" "$work/root/vms/${id:0:12}/console.log" 2>/dev/null && break; sleep 0.1; done
check "the detached VM runs (console.log)" grep -q "count 3" "$work/root/vms/${id:0:12}/console.log"
check "vm ls shows it Running" grep -q "c1 .*Running" <<<"$("${S[@]}" vm ls)"
"${S[@]}" vm pause c1
check "vm pause" grep -q "c1 .*Paused" <<<"$("${S[@]}" vm ls)"
check "vm snapshot" "${S[@]}" vm snapshot c1 "$work/snap"
check "the snapshot keeps a paused VM paused" grep -q "c1 .*Paused" <<<"$("${S[@]}" vm ls)"
last=$(grep -o 'count [0-9]*' "$work/root/vms/${id:0:12}/console.log" | tail -1 | cut -d' ' -f2)
"${S[@]}" vm stop c1
check "vm stop" grep -q "c1 .*Exited" <<<"$("${S[@]}" vm ls)"
id2=$("${S[@]}" vm restore -d --name c2 "$work/snap")
for _ in $(seq 100); do grep -q "count $((last + 2))" "$work/root/vms/${id2:0:12}/console.log" 2>/dev/null && break; sleep 0.1; done
expect_eq "vm restore: it counts on from where it was" "$((last + 1))" \
  "$(grep -o 'count [0-9]*' "$work/root/vms/${id2:0:12}/console.log" | head -1 | cut -d' ' -f2)"
"${S[@]}" vm rm c2 2>/dev/null
check "vm rm refuses a running VM" grep -q "c2" <<<"$("${S[@]}" vm ls)"
"${S[@]}" vm rm -f c2 && "${S[@]}" vm rm c1
expect_eq "vm rm -f / rm" "" "$("${S[@]}" vm ls -q)"
check "no monitor left" test -z "$(pgrep -f "strata-vmm --api-sock $work" || true)"

err=$("${S[@]}" vm run --kernel "$work/nonexistent" 2>&1)
expect_eq "a missing kernel: exit code" 152 "$?"
check "a missing kernel: the error names it" grep -q "$work/nonexistent" <<<"$err"
expect_eq "a missing kernel leaves no VM" "" "$(ls "$work/root/vms")"
err=$("${S[@]}" vm restore "$work/nosnap" 2>&1)
check "restore without a snapshot is refused" grep -q "vm.snap missing" <<<"$err"
finish
