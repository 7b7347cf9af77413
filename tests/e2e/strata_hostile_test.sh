#!/usr/bin/env bash
# Hostile images and containers (issue 10 of the adversarial review): images built here (never
# committed), pushed to a real registry and pulled by strata, and containers that prepare their
# own next start. Everything inside a container's rootfs is hostile at every start: its
# WorkingDir, its /etc/passwd and /etc/group, the paths a running container replaces. None of
# them may reach the host, hang strata, eat its memory or make a container run as root; every
# refusal is a clear error with nothing left behind. Also: the caller's terminal and files never
# reach a container (exec, run -i), numbers are range-checked, and a damaged record is listed and
# removable.
source "$(dirname "$0")/lib.sh"
in_own_netns "$0" "$@"
source "$(dirname "$0")/lib_image.sh"
BIN=${STRATA_BIN_DIR:?}
ROOTFS=${STRATA_ROOTFS_DIR:?}

work=$(mktemp -d /tmp/strata-hostile.XXXXXX)
host=$work/host  # the host's side: nothing may appear here
mkdir -p "$host/target" "$host/target3"
cgroups_before=$(ls /sys/fs/cgroup/memory/strata 2>/dev/null | grep -E '^[0-9a-f]{64}$')
S=(timeout 60 "$BIN/strata" --root "$work/root")
REG_PIDS=()
cleanup() {
  for id in $("${S[@]}" ps -aq 2>/dev/null); do "${S[@]}" rm -f "$id" >/dev/null 2>&1; done
  for p in "${REG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  grep -o "$work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

port=$(free_port)
start_registry "$work/reg" "$port" || exit 1
REG_PIDS+=("$REGISTRY_PID")
REG=127.0.0.1:$port

# no_residue NAME: nothing of the store's containers is mounted and no container cgroup is left.
no_residue() {
  expect_eq "$1: no mount left" 0 "$(grep -c "$work/root/containers" /proc/self/mountinfo)"
  expect_eq "$1: no container cgroup left" "$cgroups_before" \
    "$(ls /sys/fs/cgroup/memory/strata 2>/dev/null | grep -E '^[0-9a-f]{64}$')"
}
host_untouched() {
  expect_eq "$1: nothing created on the host" "" "$(find "$host" -mindepth 1 -not -name target -not -name target3)"
}

echo "e2e: building hostile images"
cp -a "$ROOTFS" "$work/base" && rm -f "$work/base/.stamp"
# 1. WorkingDir with "..": podman/docker resolve it inside the root.
mkdir -p "$work/l/empty"
LAYOUT_WORKDIR="/../../../../../../..$host/x/a/b" make_layout "$work/o1" v1 '["pwd"]' "$work/base" "$work/l/empty"
# 1b. WorkingDir through a layer symlink to a host path.
mkdir -p "$work/l/link" && ln -s "$host/target" "$work/l/link/app"
LAYOUT_WORKDIR=/app/y make_layout "$work/o1b" v1b '["pwd"]' "$work/base" "$work/l/link"
# 3. /etc/passwd -> /etc/shadow: the host's shadow file must never be read (its "root" line would
#    give a uid from its date field).
mkdir -p "$work/l/shadow/etc" && ln -s /etc/shadow "$work/l/shadow/etc/passwd"
LAYOUT_USER='"root"' make_layout "$work/o3" v3 '["id","-u"]' "$work/base" "$work/l/shadow"
# 3b. /etc/passwd -> /dev/zero and a group file too large to be real.
mkdir -p "$work/l/zero/etc" && ln -s /dev/zero "$work/l/zero/etc/passwd"
LAYOUT_USER='"www"' make_layout "$work/o3b" v3b '["id","-u"]' "$work/base" "$work/l/zero"
# 4. User 4294967295: (uid_t)-1 is "unchanged" to setresuid, i.e. root.
LAYOUT_USER='"4294967295"' make_layout "$work/o4" v4 '["id","-u"]' "$work/base" "$work/l/empty"
# 10. VOLUME /dev hides the container's /dev.
LAYOUT_VOLUMES='{"/dev":{}}' make_layout "$work/o10" v10 '["true"]' "$work/base" "$work/l/empty"
for i in 1 1b 3 3b 4 10; do
  push_layout "$work/o$i" "v$i" "$REG/hostile/i$i:v1" || exit 1
  "${S[@]}" pull "$REG/hostile/i$i:v1" >/dev/null 2>&1 || exit 1
done

echo "e2e: an image's WorkingDir stays inside the root"
out=$("${S[@]}" run --rm --network none "$REG/hostile/i1:v1" 2>&1)
expect_eq "WorkingDir /../..$host/x/a/b: the container runs there, inside its root" "$host/x/a/b" "$out"
out=$("${S[@]}" run --rm --network none "$REG/hostile/i1b:v1" 2>&1)
expect_eq "WorkingDir through a symlink to $host/target: resolved inside the root" "$host/target/y" "$out"
host_untouched "hostile WorkingDir"
expect_eq "the symlink's host target stays empty" "" "$(ls -A "$host/target")"

echo "e2e: a container replaces its working directory with a symlink to the host before its next start"
LAYOUT_WORKDIR=/w/a/b make_layout "$work/o2" v2 \
  '["sh","-c","if [ -e /w/a/done ]; then pwd; exit 0; fi; cd /; rm -rf /w; ln -s '"$host/target3"' /w; exit 1"]' \
  "$work/base" "$work/l/empty"
push_layout "$work/o2" v2 "$REG/hostile/i2:v1" || exit 1
"${S[@]}" run --network none --name planter "$REG/hostile/i2:v1" >/dev/null 2>&1
expect_eq "the first run planted the symlink and failed" 1 "$?"
"${S[@]}" start planter >/dev/null 2>&1
sleep 1
expect_eq "strata start: nothing created in the symlink's host target" "" "$(ls -A "$host/target3")"
# The policy restart (the monitor's cleanup, nobody typing) takes the same path.
"${S[@]}" run -d --network none --restart always --name planter2 "$REG/hostile/i2:v1" >/dev/null
for _ in $(seq 50); do
  [[ $("${S[@]}" inspect planter2 | jq -r '.[0].State.RestartCount') -ge 1 ]] && break
  sleep 0.1
done
check "--restart always restarted it" test "$("${S[@]}" inspect planter2 | jq -r '.[0].State.RestartCount')" -ge 1
expect_eq "--restart always: nothing created in the host target" "" "$(ls -A "$host/target3")"
"${S[@]}" rm -f planter planter2 >/dev/null

echo "e2e: the image's /etc/passwd and /etc/group are read inside the root, as regular files"
err=$("${S[@]}" run --rm --network none "$REG/hostile/i3:v1" 2>&1)
rc=$?
check "passwd -> /etc/shadow: refused (exit $rc)" test "$rc" -ne 0
check "... the root has no /etc/shadow, so there is no user root: [$err]" \
  grep -q 'user "root": no such user in the image'"'"'s /etc/passwd' <<<"$err"
err=$("${S[@]}" run --rm --network none "$REG/hostile/i3b:v1" 2>&1)
check "passwd -> /dev/zero: a clear error, no crash: [$err]" grep -q 'no such user' <<<"$err"
no_residue "refused users"

echo "e2e: a running container plants a FIFO, a device node and a huge file as /etc/passwd"
# A numeric user reads /etc/passwd too (its home and group): the next start must read it again.
"${S[@]}" run -d --network none --name planted -u 1000 "$REG/hostile/i1b:v1" sleep 300 >/dev/null
"${S[@]}" run -d --network none --name planted2 -u 1000 "$REG/hostile/i1b:v1" sleep 300 >/dev/null
"${S[@]}" exec -u 0 planted sh -c 'rm /etc/passwd && mkfifo /etc/passwd'
"${S[@]}" exec -u 0 planted2 sh -c 'rm /etc/passwd && mknod /etc/passwd c 1 5'
"${S[@]}" stop -t 0 planted planted2 >/dev/null
err=$(timeout 20 "$BIN/strata" --root "$work/root" start planted 2>&1)
rc=$?
check "start with a FIFO as /etc/passwd does not hang (exit $rc, not the timeout's 124)" test "$rc" -ne 124 -a "$rc" -ne 0
check "... and says what is wrong: [$err]" grep -q "/etc/passwd in the container's root: not a regular file (a FIFO)" <<<"$err"
err=$(timeout 20 "$BIN/strata" --root "$work/root" start planted2 2>&1)
rc=$?
check "start with /dev/zero's device node as /etc/passwd: an error, no crash (exit $rc)" test "$rc" -ne 124 -a "$rc" -ne 0 -a "$rc" -lt 128
check "... naming it: [$err]" grep -q "not a regular file (a character device)" <<<"$err"
expect_eq "the refused starts left neither container running" "false false" \
  "$("${S[@]}" inspect planted planted2 | jq -r '[.[].State.Running | tostring] | join(" ")')"
"${S[@]}" rm -f planted planted2 >/dev/null
no_residue "planted /etc/passwd"

echo "e2e: ids past 2147483647 are refused wherever they come from"
err=$("${S[@]}" run --rm --network none "$REG/hostile/i4:v1" 2>&1)
rc=$?
check "image User 4294967295: refused (exit $rc), never root: [$err]" test "$rc" -ne 0 -a "$err" != 0
check "... naming the range" grep -q "out of range (0 to 2147483647)" <<<"$err"
for u in 4294967295 0:4294967295 2147483648; do
  err=$("${S[@]}" run --rm --network none -u "$u" "$REG/hostile/i1b:v1" cat /proc/self/status 2>&1)
  check "-u $u: refused, never run: [$err]" grep -q "out of range (0 to 2147483647)" <<<"$err"
done
mkdir -p "$work/bundle/rootfs"
"$BIN/strata-runtime" spec --bundle "$work/bundle"
jq '.process.user.uid = 4294967295' "$work/bundle/config.json" >"$work/bundle/c.json" && mv "$work/bundle/c.json" "$work/bundle/config.json"
err=$("$BIN/strata-runtime" --root "$work/rt" create --bundle "$work/bundle" uidtest 2>&1)
rc=$?
check "strata-runtime: process.user.uid 4294967295 refused (exit $rc): [$err]" grep -q "process.user.uid: 4294967295 is out of range" <<<"$err"
no_residue "refused ids"

echo "e2e: numbers and names from flags are checked before anything is made"
for flag in "--cpus inf" "--cpus nan" "--cpus 1e308" "--cpus 1e-9" "--cpus -1" "-m 1" "--hostname a/b" \
  "--pids-limit -5" "--stop-timeout -3"; do
  # shellcheck disable=SC2086
  err=$("${S[@]}" run --rm --network none $flag "$REG/hostile/i1b:v1" true 2>&1)
  rc=$?
  check "$flag: exit $rc, a clear error: [$err]" test "$rc" -eq 125 -a -n "$err"
done
err=$("${S[@]}" run --rm --network none --cpus inf "$REG/hostile/i1b:v1" true 2>&1)
check "--cpus inf names docker's range" grep -q "the range of CPUs is from 0.01 to" <<<"$err"
err=$("${S[@]}" run --rm --network none -m 1 "$REG/hostile/i1b:v1" true 2>&1)
check "-m 1 names the 6MB minimum" grep -q "minimum memory limit allowed is 6MB" <<<"$err"
expect_eq "no container was recorded" "" "$("${S[@]}" ps -aq)"
err=$("${S[@]}" run --rm --network none "$REG/hostile/i10:v1" 2>&1)
check "an image VOLUME /dev: named as such: [$err]" grep -q "the image's VOLUME /dev: the runtime mounts /dev itself" <<<"$err"
out=$("${S[@]}" run --rm --network none --cap-add ALL "$REG/hostile/i1b:v1" grep CapEff /proc/self/status 2>&1)
check "--cap-add ALL: the capabilities strata holds (as podman): [$out]" grep -q "^CapEff:" <<<"$out"
if ! grep -q "^CapBnd:.*" /proc/self/status || [[ $(($(printf '%d' 0x"$(awk '/^CapBnd/{print $2}' /proc/self/status)") >> 24 & 1)) == 0 ]]; then
  err=$("${S[@]}" run --rm --network none --cap-add SYS_RESOURCE "$REG/hostile/i1b:v1" true 2>&1)
  check "--cap-add SYS_RESOURCE, not in this machine's bounding set: named: [$err]" \
    grep -q "CAP_SYS_RESOURCE is not in strata's own bounding set" <<<"$err"
fi
no_residue "refused flags"

echo "e2e: an image of 301 layers runs (the layers go to overlayfs one at a time)"
deep=()
for i in $(seq 1 300); do
  mkdir -p "$work/l/deep/$i/d" && echo "$i" >"$work/l/deep/$i/d/f$i"
  deep+=("$work/l/deep/$i")
done
make_layout "$work/odeep" deep '["sh","-c","ls /d | wc -l"]' "$work/base" "${deep[@]}"
push_layout "$work/odeep" deep "$REG/hostile/deep:v1" || exit 1
out=$("${S[@]}" run --rm --network none "$REG/hostile/deep:v1" 2>"$work/deep.err")
expect_eq "301 layers: every layer's file is there [$(tail -1 "$work/deep.err")]" 300 "$(tr -d ' ' <<<"$out")"
no_residue "301 layers"

echo "e2e: a damaged record is listed and removable"
"${S[@]}" run -d --name damaged "$REG/hostile/i1b:v1" sleep 300 >/dev/null
did=$("${S[@]}" inspect damaged | jq -r '.[0].Id')
jq '.config.cpus = null' "$work/root/containers/$did/container.json" >"$work/rec.json"
cp "$work/rec.json" "$work/root/containers/$did/container.json"
out=$("${S[@]}" ps -a)
check "ps -a shows it as damaged: [$out]" grep -q "Damaged (running; strata rm -f removes it)" <<<"$out"
err=$("${S[@]}" start damaged 2>&1)
err=$("${S[@]}" rm damaged 2>&1)
check "rm without -f refuses a running damaged container" test $? -ne 0
"${S[@]}" rm -f damaged >/dev/null
check "rm -f removes it" test $? -eq 0
expect_eq "... and it is gone" "" "$("${S[@]}" ps -aq)"
expect_eq "... with no veth left" "" "$(ip -br link | grep "^veth")"
expect_eq "... and no container nft rule" 0 "$(nft list ruleset 2>/dev/null | grep -c "strata:c:$did")"
no_residue "damaged record"

echo "e2e: the caller's terminal and files never reach a container"
"${S[@]}" run -d --network none --name victim "$REG/hostile/i1b:v1" sleep 300 >/dev/null
echo "the caller's file" >"$work/in.txt"
# (busybox readlink takes one path.) Prints fds 0-2, the session id and tty_nr, then its pid.
probe='for f in 0 1 2; do readlink /proc/self/fd/$f; done; cut -d" " -f6,7 /proc/$$/stat; echo $$'
# exec_probe NAME LINE...: checks a probe's output.
exec_probe() {
  local what=$1
  shift
  local lines=("$@") sid ttynr
  check "$what: stdin is /dev/null, not the caller's [${lines[0]:-}]" test "${lines[0]:-}" = /dev/null
  check "$what: stdout is a pipe of strata's, not the caller's [${lines[1]:-}]" grep -q '^pipe:' <<<"${lines[1]:-}"
  check "$what: stderr is a pipe too [${lines[2]:-}]" grep -q '^pipe:' <<<"${lines[2]:-}"
  read -r sid ttynr <<<"${lines[3]:-}"
  expect_eq "$what: the process leads its own session, with no controlling terminal" "${lines[4]:-x} 0" "$sid $ttynr"
}
mapfile -t lines < <("${S[@]}" exec victim sh -c "$probe" <"$work/in.txt" 2>"$work/exec.err")
exec_probe "exec from a script" "${lines[@]}"
# Under a real terminal (script(1) gives the command a pty as its stdin, stdout, stderr and
# controlling terminal): the container gets neither the terminal nor the session.
printf 'exec %q --root %q exec victim sh -c %q\n' "$BIN/strata" "$work/root" "$probe" >"$work/atty.sh"
mapfile -t lines < <(script -qec "bash $work/atty.sh" /dev/null | tr -d '\r')
exec_probe "exec at a terminal" "${lines[@]}"
out=$("${S[@]}" exec -i victim sh -c 'readlink /proc/self/fd/0; cat' <"$work/in.txt")
check "exec -i: stdin comes through a pipe [$out]" grep -q '^pipe:' <<<"$out"
check "... carrying the caller's input" grep -q "the caller's file" <<<"$out"
out=$("${S[@]}" run --rm -i --network none "$REG/hostile/i1b:v1" sh -c 'readlink /proc/self/fd/0; cat' <"$work/in.txt")
check "run -i: stdin comes through a pipe, not the caller's file [$out]" grep -q '^pipe:' <<<"$out"
check "... carrying the caller's input" grep -q "the caller's file" <<<"$out"
out=$(yes | head -c 300000 | "${S[@]}" run --rm -i --network none "$REG/hostile/i1b:v1" sh -c 'sleep 1; wc -c')
expect_eq "run -i: a container slow to read still gets all of its input" 300000 "$(tr -d ' ' <<<"$out")"
"${S[@]}" rm -f victim >/dev/null
no_residue "exec and run -i"

finish
