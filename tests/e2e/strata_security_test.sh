#!/usr/bin/env bash
# `strata run` makes containers in-process (src/oci), so the CVE-2019-5736 class is about the
# strata binary itself: a program whose interpreter is /proc/self/exe must not get the kernel to
# run strata inside the container (it runs the sealed exec stub, which refuses), the strata
# binary stays as it was, and a container whose processes may hold CAP_SYS_PTRACE is made by a
# strata re-executed from an unwritable view of its binary (exe_guard.h). Bad input leaves
# nothing behind.
source "$(dirname "$0")/lib.sh"
in_own_netns "$0" "$@"
BIN=${STRATA_BIN_DIR:?}
ROOTFS=${STRATA_ROOTFS_DIR:?}

work=$(mktemp -d /tmp/strata-sec.XXXXXX)
# A copy of strata and its monitor: the attack aims at the binary that made the container.
mkdir -p "$work/bin"
cp "$BIN/strata" "$BIN/strata-monitor" "$work/bin/"
S=(timeout 120 "$work/bin/strata" --root "$work/root")
cleanup() {
  for id in $("${S[@]}" ps -aq 2>/dev/null); do "${S[@]}" rm -f "$id" >/dev/null 2>&1; done
  grep -o "$work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
sum_before=$(sha256sum "$work/bin/strata" | cut -d' ' -f1)

cp -a "$ROOTFS" "$work/rootfs"
printf '#!/proc/self/exe update\n' >"$work/rootfs/bin/upd"
chmod 755 "$work/rootfs/bin/upd"
# An ELF program whose interpreter (PT_INTERP) is /proc/self/exe: the host's /bin/true, patched.
python3 - /bin/true "$work/rootfs/bin/elfupd" <<'PY'
import struct, sys
elf = bytearray(open(sys.argv[1], "rb").read())
phoff, = struct.unpack_from("<Q", elf, 32)
phentsize, phnum = struct.unpack_from("<HH", elf, 54)
for i in range(phnum):
    ph = phoff + i * phentsize
    if struct.unpack_from("<I", elf, ph)[0] == 3:  # PT_INTERP
        off, = struct.unpack_from("<Q", elf, ph + 8)
        size, = struct.unpack_from("<Q", elf, ph + 32)
        path = b"/proc/self/exe"
        elf[off:off + size] = path + b"\0" * (size - len(path))
open(sys.argv[2], "wb").write(elf)
PY
chmod 755 "$work/rootfs/bin/elfupd"
R=(run --network none --rootfs "$work/rootfs")

for prog in /bin/upd /bin/elfupd; do
  err=$("${S[@]}" "${R[@]}" --rm "$prog" 2>&1 >/dev/null)
  expect_eq "$prog as the init's program: exit 127" 127 "$?"
  check "$prog: the kernel ran the sealed exec stub, not strata" grep -q "strata exec stub: not a program to run" <<<"$err"
done
"${S[@]}" "${R[@]}" -d --name victim sleep 300 >/dev/null
for prog in /bin/upd /bin/elfupd; do
  err=$("${S[@]}" exec victim "$prog" 2>&1 >/dev/null)
  expect_eq "$prog through strata exec: exit 127" 127 "$?"
  check "$prog through strata exec: the stub, not strata" grep -q "strata exec stub: not a program to run" <<<"$err"
done
expect_eq "the strata binary is unchanged" "$sum_before" "$(sha256sum "$work/bin/strata" | cut -d' ' -f1)"

# CAP_SYS_PTRACE: strata re-executes itself from an unwritable copy before making the container
# (and before exec into it); the container works as usual.
out=$("${S[@]}" --debug "${R[@]}" --rm --cap-add SYS_PTRACE sh -c 'grep CapEff /proc/self/status' 2>"$work/ptrace.err")
check "a container with --cap-add SYS_PTRACE runs" grep -q "CapEff" <<<"$out"
check "... made by a strata running from an unwritable copy of itself" \
  grep -q "re-executing from an unwritable copy" "$work/ptrace.err"
"${S[@]}" "${R[@]}" -d --name traced --cap-add SYS_PTRACE sleep 300 >/dev/null
check "run -d with SYS_PTRACE" test $? -eq 0
out=$("${S[@]}" --debug exec traced sh -c 'echo exec-ok' 2>"$work/ptrace-exec.err")
expect_eq "exec into it" exec-ok "$out"
check "... also from an unwritable copy" grep -q "re-executing from an unwritable copy" "$work/ptrace-exec.err"
mon=$("${S[@]}" inspect traced | jq -r '.[0].State.ConmonPid')
check "its monitor is the installed strata-monitor" grep -q "^$work/bin/strata-monitor$" <<<"$(readlink /proc/$mon/exe)"
"${S[@]}" restart -t 0 traced >/dev/null
expect_eq "restart of it (the monitor's cleanup re-executes too)" running "$("${S[@]}" inspect traced | jq -r '.[0].State.Status')"
out=$("${S[@]}" --debug "${R[@]}" --rm sh -c 'echo plain' 2>"$work/plain.err")
expect_eq "a plain container" plain "$out"
check "... needs no re-exec" test "$(grep -c "re-executing" "$work/plain.err")" -eq 0

"${S[@]}" rm -f victim traced >/dev/null
expect_eq "no container left" "" "$("${S[@]}" ps -aq)"
expect_eq "no monitor left" "" "$(pgrep -f "strata-monitor.*$work" || true)"
expect_eq "no mount left" "0" "$(grep -c "$work/root/containers" /proc/self/mountinfo)"
expect_eq "the strata binary is still unchanged" "$sum_before" "$(sha256sum "$work/bin/strata" | cut -d' ' -f1)"
finish
