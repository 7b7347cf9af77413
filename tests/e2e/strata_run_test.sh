#!/usr/bin/env bash
# `strata` against a real registry (Debian's docker-registry): pull with whiteouts and opaque
# directories honoured, layer sharing, push round-trip checked by skopeo, basic auth with
# `strata login`, `strata run` with published ports, networks and name resolution, the
# lifecycle after kill -9 of the CLI and of the monitor, bad input that stores nothing, and no
# residue (veth, nft rule, lease, mount, cgroup) after `strata rm`.
#
# The whole script runs in a network namespace of its own (bridges, nft tables and ports are
# per namespace), so it never touches the host's networking or a real strata0.
source "$(dirname "$0")/lib.sh"
in_own_netns "$0" "$@"
source "$(dirname "$0")/lib_image.sh"
BIN=${STRATA_BIN_DIR:?}
ROOTFS=${STRATA_ROOTFS_DIR:?}
# A "LAN" address of this test host, for the published-port check from a non-loopback address.
ip link add e2e0 type veth peer name e2e1 && ip addr add 192.0.2.10/24 dev e2e0 &&
  ip link set e2e0 up && ip link set e2e1 up

work=$(mktemp -d /tmp/strata-e2e.XXXXXX)
cgroups_before=$(ls /sys/fs/cgroup/memory/strata 2>/dev/null | grep -E '^[0-9a-f]{64}$')
S=(timeout 120 "$BIN/strata" --root "$work/root")
# The default network's subnet is configurable (podman's default_subnet): this run uses its own.
export STRATA_DEFAULT_SUBNET=10.89.77.0/24
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

echo "e2e: building two images that share the busybox base layer"
make_test_layers "$work/layers" "$ROOTFS"
mkdir -p "$work/layers/other/etc" && echo other >"$work/layers/other/etc/other-file"
make_layout "$work/layout1" v1 '["sh","-c","echo hi from image"]' "$work/layers/base" "$work/layers/upper"
make_layout "$work/layout2" v2 '["cat","/etc/other-file"]' "$work/layers/base" "$work/layers/other"
push_layout "$work/layout1" v1 "$REG/test/busybox:v1" || exit 1
push_layout "$work/layout2" v2 "$REG/test/other:v2" || exit 1
mkdir -p "$work/layers/vol/data/sub" && echo seeded-by-image >"$work/layers/vol/data/sub/seed"
ln -s /etc "$work/layers/vol/escape"  # a VOLUME through a symlink must not seed from the host's /etc
LAYOUT_VOLUMES='{"/data":{},"/escape":{}}' make_layout "$work/layout5" v5 '["sh","-c","cat /data/sub/seed"]' \
  "$work/layers/base" "$work/layers/vol"
push_layout "$work/layout5" v5 "$REG/test/vol:v5" || exit 1

jq_true() { jq -e "$1" >/dev/null; }
# wait_exit NAME CODE: the container has exited with CODE (within 5 s).
wait_exit() {
  for _ in $(seq 50); do
    [[ $("${S[@]}" inspect "$1" | jq -r '.[0].State | "\(.Status) \(.ExitCode)"') == "exited $2" ]] && return 0
    sleep 0.1
  done
  return 1
}

# --- images ---------------------------------------------------------------------------
out=$("${S[@]}" image pull "$REG/test/busybox:v1" 2>"$work/pull.err")
check "image pull succeeds" test $? -eq 0
check "pull prints the image id" grep -qE '^[0-9a-f]{64}$' <<<"$out"
check "pull shows progress lines" grep -q "Copying blob" "$work/pull.err"
base_layer=$(jq -r '.manifests[0].digest' "$work/layout1/index.json")
base_layer=$(jq -r '.layers[0].digest' "$work/layout1/blobs/sha256/${base_layer#sha256:}")
base_dir="$work/root/layers/sha256/${base_layer#sha256:}"
check "base layer unpacked" test -x "$base_dir/bin/busybox"
inode_before=$(stat -c %i "$base_dir")

out=$("${S[@]}" run --rm --network none "$REG/test/busybox:v1")
expect_eq "run uses the image's Cmd" "hi from image" "$out"
out=$("${S[@]}" run --rm --network none "$REG/test/busybox:v1" sh -c \
  'test -e /etc/motd-strata && echo present; ls /opt/data; cat /opt/kept; echo $STRATA_IMAGE')
expect_eq "whiteout and opaque directory honoured" "$(printf 'new-file\nkept\nv1')" "$out"

# On a terminal: a bar per blob, redrawn in place (a store of its own, so that it downloads).
out=$(SHELL=/bin/sh script -qec "timeout --foreground 60 $BIN/strata --root $work/ttyroot image pull $REG/test/busybox:v1" /dev/null | tr -d '\r')
check "pull on a terminal draws full bars" grep -q 'Copying blob [0-9a-f]\{12\} \[=\{30\}\]' <<<"$out"
check "... redrawn in place (cursor up, erase line)" grep -q $'\033\\[[0-9]*A' <<<"$out"
check "... and no plain progress lines" test "$(grep -c 'Copying blob [0-9a-f]\{12\}$' <<<"$out")" -eq 0
rm -rf "$work/ttyroot"
"${S[@]}" image pull "$REG/test/other:v2" >/dev/null 2>"$work/pull2.err"
check "second image reuses the shared layer" grep -q "${base_layer:7:12} Already exists" "$work/pull2.err"
expect_eq "shared layer not unpacked again (same directory)" "$inode_before" "$(stat -c %i "$base_dir")"
out=$("${S[@]}" run --rm --network none "$REG/test/other:v2")
expect_eq "second image runs" other "$out"
check "image ls lists both" test "$("${S[@]}" image ls -q | wc -l)" -eq 2

"${S[@]}" image push "$REG/test/busybox:v1" "$REG/copy/busybox:v1" 2>/dev/null
check "image push succeeds" test $? -eq 0
src_digest=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REG/test/busybox:v1")
dst_digest=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REG/copy/busybox:v1")
expect_eq "pushed manifest digest matches (skopeo inspect)" "$src_digest" "$dst_digest"
src_layers=$(skopeo inspect --tls-verify=false --format '{{.Layers}}' "docker://$REG/test/busybox:v1")
dst_layers=$(skopeo inspect --tls-verify=false --format '{{.Layers}}' "docker://$REG/copy/busybox:v1")
expect_eq "pushed layer digests match" "$src_layers" "$dst_layers"

# --- basic auth and login -----------------------------------------------------------------
aport=$(free_port)
htpasswd -Bbn alice s3cret >"$work/htpasswd"
start_registry "$work/areg" "$aport" "$work/htpasswd" || exit 1
REG_PIDS+=("$REGISTRY_PID")
skopeo copy --quiet --dest-tls-verify=false --dest-creds alice:s3cret "oci:$work/layout1:v1" \
  "docker://127.0.0.1:$aport/private/busybox:v1"
export REGISTRY_AUTH_FILE=$work/auth.json
err=$("${S[@]}" image pull "127.0.0.1:$aport/private/busybox:v1" 2>&1 >/dev/null)
check "pull without credentials fails with 401" grep -q "401" <<<"$err"
"${S[@]}" login -u alice -p wrong "127.0.0.1:$aport" >/dev/null 2>&1
check "login with a wrong password fails" test $? -ne 0
check "failed login stores nothing" test ! -e "$work/auth.json"
"${S[@]}" login -u alice -p s3cret "127.0.0.1:$aport" >/dev/null
check "login succeeds" test $? -eq 0
check "auth.json written in podman's format" jq -e '.auths["127.0.0.1:'"$aport"'"].auth' "$work/auth.json"
"${S[@]}" image pull -q "127.0.0.1:$aport/private/busybox:v1" >/dev/null
check "pull with stored credentials" test $? -eq 0
check "skopeo reads strata's auth.json" skopeo inspect --tls-verify=false --authfile "$work/auth.json" \
  "docker://127.0.0.1:$aport/private/busybox:v1"
unset REGISTRY_AUTH_FILE

# --- bearer-token auth: a registry that takes tokens only, and the token server it names -------
tport=$(free_port)
echo "alice:t0ken-pass" >"$work/token-users"
start_token_registry "$work/treg" "$tport" "$work/token-users" || exit 1
REG_PIDS+=("$REGISTRY_PID" "$TOKEN_PID")
skopeo copy --quiet --dest-tls-verify=false --dest-creds alice:t0ken-pass "oci:$work/layout1:v1" \
  "docker://127.0.0.1:$tport/private/busybox:v1"
check "skopeo pushed through the token server" grep -q "^alice repository:private/busybox:pull,push" "$work/treg/token.log"
export REGISTRY_AUTH_FILE=$work/token-auth.json
err=$("${S[@]}" image pull "127.0.0.1:$tport/private/busybox:v1" 2>&1 >/dev/null)
expect_eq "token registry: an anonymous pull fails" 125 "$?"
check "... with the registry's 401" grep -q "401" <<<"$err"
check "... after asking the token server anonymously" grep -q "^- repository:private/busybox:pull" "$work/treg/token.log"
err=$("${S[@]}" login -u alice -p wrong "127.0.0.1:$tport" 2>&1)
check "token registry: login with a wrong password fails" test $? -ne 0
check "... and stores nothing" test ! -e "$work/token-auth.json"
"${S[@]}" login -u alice -p t0ken-pass "127.0.0.1:$tport" >/dev/null
check "token registry: login succeeds" test $? -eq 0
out=$("${S[@]}" run --rm --network none "127.0.0.1:$tport/private/busybox:v1")
expect_eq "token registry: pull with the stored credentials and run" "hi from image" "$out"
check "... the token server was asked with alice's credentials" \
  grep -q "^alice repository:private/busybox:pull" "$work/treg/token.log"
"${S[@]}" image push "127.0.0.1:$tport/private/busybox:v1" "127.0.0.1:$tport/copy/busybox:v1" 2>/dev/null
check "token registry: push with a token" test $? -eq 0
check "... for which the token server granted push" grep -qE "^alice repository:copy/busybox:.*push" "$work/treg/token.log"
expect_eq "... skopeo sees the same manifest" \
  "$(skopeo inspect --tls-verify=false --creds alice:t0ken-pass --format '{{.Digest}}' "docker://127.0.0.1:$tport/private/busybox:v1")" \
  "$(skopeo inspect --tls-verify=false --creds alice:t0ken-pass --format '{{.Digest}}' "docker://127.0.0.1:$tport/copy/busybox:v1")"
unset REGISTRY_AUTH_FILE

# --- containers, ports, networks ----------------------------------------------------------------
IMG=$REG/test/busybox:v1
"${S[@]}" run -d --name web -p 18080:80 "$IMG" sh -c \
  'echo hello-from-httpd >/tmp/index.html; httpd -f -p 80 -h /tmp' >/dev/null
check "run -d" test $? -eq 0
for _ in $(seq 50); do curl -s -m 1 -o /dev/null http://127.0.0.1:18080/index.html && break; sleep 0.1; done
expect_eq "published port from the host's loopback" hello-from-httpd "$(curl -s -m 3 http://127.0.0.1:18080/index.html)"
expect_eq "published port from the host's address" hello-from-httpd "$(curl -s -m 3 http://192.0.2.10:18080/index.html)"
check "ps shows the port" grep -q "0.0.0.0:18080->80/tcp" <<<"$("${S[@]}" ps)"
check "the default network has the configured subnet" grep -q '^10\.89\.77\.' <<<"$("${S[@]}" inspect web | jq -r '.[0].NetworkSettings.IPAddress')"
err=$("${S[@]}" --default-subnet 10.89.78.0/24 run --rm "$IMG" true 2>&1)
check "another default subnet is refused while containers are on the network" \
  grep -q "cannot be changed while containers are attached" <<<"$err"
# stats: one sample with --no-stream, a sample a second otherwise (podman's default).
out=$("${S[@]}" stats --no-stream --format json web)
expect_eq "stats --no-stream: one sample of the named container" "1 web" "$(jq -s length <<<"$out") $(jq -r '.[0].name' <<<"$out")"
check "stats: memory and pids from its cgroup" jq_true '.[0].mem_usage > 0 and .[0].pids >= 1' <<<"$out"
check "stats table: a row for the container" grep -q "^[0-9a-f]\{12\} *web " <<<"$("${S[@]}" stats --no-stream web)"
out=$(timeout 3.5 "$BIN/strata" --root "$work/root" stats --format json web)
check "stats streams a sample a second" test "$(jq -s length <<<"$out")" -ge 3
err=$("${S[@]}" stats --no-stream --format yaml web 2>&1)
expect_eq "stats --format yaml: exit 125" 125 "$?"
# Names resolve through /etc/hosts (probe reads it like glibc's files module; Debian's
# busybox-static wget cannot resolve names at all).
out=$("${S[@]}" run --rm "$IMG" sh -c 'wget -q -O - http://$(probe resolve web)/index.html')
expect_eq "a peer on the default network resolves the name" hello-from-httpd "$out"

count_before=$("${S[@]}" ps -aq | wc -l)
err=$("${S[@]}" run -d --name clash -p 18080:80 "$IMG" true 2>&1)
check "a port in use is refused" grep -q "18080" <<<"$err"
expect_eq "the refused container left no record" "$count_before" "$("${S[@]}" ps -aq | wc -l)"

"${S[@]}" network create blue >/dev/null && "${S[@]}" network create red >/dev/null
check "network create" test $? -eq 0
"${S[@]}" run -d --name b1 --network blue "$IMG" sh -c 'echo b1 >/tmp/index.html; httpd -f -p 80 -h /tmp' >/dev/null
check "run -d --network blue" test $? -eq 0
out=$("${S[@]}" run --rm --network blue "$IMG" sh -c 'for i in 1 2 3 4 5; do timeout 2 wget -q -O - http://$(probe resolve b1)/index.html && break; sleep 0.2; done')
expect_eq "same network: reachable by name" b1 "$out"
b1_ip=$("${S[@]}" inspect b1 | jq -r '.[0].NetworkSettings.IPAddress')
out=$("${S[@]}" run --rm --network red "$IMG" sh -c "timeout 3 wget -q -O - http://$b1_ip/index.html || echo unreachable")
expect_eq "other network: isolated" unreachable "$out"
# ... while the red network itself works: its container reaches a server of the host's through
# its gateway.
mkdir -p "$work/hostweb" && echo host-says-hi >"$work/hostweb/index.html"
busybox httpd -f -p 18099 -h "$work/hostweb" &
REG_PIDS+=($!)
out=$("${S[@]}" run --rm --network red "$IMG" sh -c 'gw=$(ip route | sed -n "s/^default via \([0-9.]*\).*/\1/p"); for i in 1 2 3 4 5; do timeout 2 wget -q -O - http://$gw:18099/index.html && exit; sleep 0.2; done; echo unreachable')
expect_eq "other network: not cut off (reaches the host through its gateway)" host-says-hi "$out"
check "network ls" grep -q blue <<<"$("${S[@]}" network ls)"

# --- stdin and terminals ------------------------------------------------------------------
expect_eq "run -i feeds stdin" "piped-in" "$(echo piped-in | "${S[@]}" run --rm -i --network none "$IMG" cat)"
# Typed once the container runs, as a user would. The CLI runs under `timeout --foreground`:
# plain timeout(1) moves its command into a background process group, and a CLI that puts the
# terminal in raw mode from there is stopped by SIGTTOU. script(1) runs $SHELL: /bin/sh (as on
# CI) does not exec timeout, so there the run hung; bash does, which hid it locally.
type_when_running() {
  for _ in $(seq 100); do
    [[ $("${S[@]}" inspect it 2>/dev/null | jq -r '.[0].State.Status') == running ]] && break
    sleep 0.1
  done
  sleep 0.2
  printf 'echo typed-$((40+2))\nexit 5\n'
  sleep 1
}
out=$(type_when_running | SHELL=/bin/sh script -qec "timeout --foreground 60 $BIN/strata --root $work/root run --rm -it --name it --network none $IMG sh" /dev/null)
code=$?
check "run -it: the shell got the typed line" grep -q "typed-42" <<<"$out"
grep -q "typed-42" <<<"$out" || printf '%s\n' "$out" | od -c | tail -20
expect_eq "run -it: exit code" 5 "$code"
out=$(script -qec "${S[*]} run --rm -t --network none $IMG tty" /dev/null | tr -d '\r')
check "run -t: the process has a terminal" grep -q "^/dev/pts/" <<<"$out"

# --- run flags, exec, kill, logs, ps json, image tag/inspect, pull by digest -------------------
echo "FROM_FILE=file-value" >"$work/env.list"
mkdir -p "$work/mnt" && echo mounted >"$work/mnt/m"
out=$("${S[@]}" run --rm --network none -e A=1 --env-file "$work/env.list" --workdir /w --entrypoint sh \
  --mount "type=bind,source=$work/mnt,target=/mnt/x,readonly" "$IMG" \
  -c 'echo $A $FROM_FILE $(pwd) $(cat /mnt/x/m); touch /mnt/x/no 2>/dev/null || echo ro')
expect_eq "-e, --env-file, --workdir, --entrypoint, --mount ...,readonly" "1 file-value /w mounted ro" \
  "$(tr '\n' ' ' <<<"$out" | sed 's/ $//')"
"${S[@]}" run -d --name ex --network none "$IMG" \
  sh -c 'trap "exit 9" USR1; echo line1; echo line2; echo line3; while :; do sleep 0.1; done' >/dev/null
out=$("${S[@]}" exec -e X=42 -w /tmp -u 1000:1000 ex sh -c 'echo $X $(pwd) $(id -u):$(id -g)')
expect_eq "exec with -e, -w, -u" "42 /tmp 1000:1000" "$out"
"${S[@]}" exec ex sh -c 'exit 7'
expect_eq "exec: the exit code of the command" 7 "$?"
for _ in $(seq 30); do [[ $("${S[@]}" logs ex | wc -l) -ge 3 ]] && break; sleep 0.1; done
expect_eq "logs --tail 2" "line2 line3" "$("${S[@]}" logs --tail 2 ex | tr '\n' ' ' | sed 's/ $//')"
"${S[@]}" logs -f ex >"$work/follow.out" &
fpid=$!
sleep 0.3
check "logs -f follows a running container" kill -0 $fpid
check "ps --format json: the container, running" \
  jq_true '.[] | select(.Names[0] == "ex") | .State == "running"' <<<"$("${S[@]}" ps --format json)"
"${S[@]}" kill -s SIGUSR1 ex >/dev/null
check "kill -s SIGUSR1: its trap ends it with 9" wait_exit ex 9
wait $fpid
expect_eq "logs -f ended with the container, after its output" "line1 line2 line3" "$(tr '\n' ' ' <"$work/follow.out" | sed 's/ $//')"
"${S[@]}" rm ex >/dev/null
"${S[@]}" image tag "$IMG" localhost/mine:tagged
check "image tag adds a name" grep -q "^localhost/mine *tagged" <<<"$("${S[@]}" image ls)"
expect_eq "image inspect shows its config" '["sh","-c","echo hi from image"]' \
  "$("${S[@]}" image inspect localhost/mine:tagged | jq -c '.[0].Config.Cmd')"
digest=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$IMG")
out=$("${S[@]}" run --rm --network none "$REG/test/busybox@$digest" echo by-digest)
expect_eq "pull and run by digest" by-digest "$out"

# --- image export and export of a stopped container: merged filesystems as tars ---------------
"${S[@]}" image export -o "$work/img.tar" "$IMG"
check "image export" test $? -eq 0
list=$(tar -tf "$work/img.tar")
check "image export: the upper layer's files" grep -qx "./opt/data/new-file" <<<"$list"
expect_eq "image export: whiteouts applied, no markers left" "0 0 0" \
  "$(grep -cx "./etc/motd-strata" <<<"$list") $(grep -cx "./opt/data/old-file" <<<"$list") $(grep -c '\.wh\.' <<<"$list")"
"${S[@]}" run --name expd --network none "$IMG" sh -c 'echo changed >/opt/kept; rm /bin/true'
"${S[@]}" export -o "$work/ctr.tar" expd
check "export of a stopped container" test $? -eq 0
expect_eq "... holds what it wrote" changed "$(tar -xOf "$work/ctr.tar" ./opt/kept)"
expect_eq "... and not what it deleted" 0 "$(tar -tf "$work/ctr.tar" | grep -cx './bin/true')"
expect_eq "... and mounted nothing on the host" 0 "$(grep -c strata-export /proc/self/mountinfo)"
check "... and left no temporary directory" test -z "$(ls -d /tmp/strata-export.* 2>/dev/null)"
"${S[@]}" rm expd >/dev/null
err=$("${S[@]}" image export -o "$work/none.tar" localhost/nope:1 2>&1)
check "image export of an unknown image: an error, no file" test $? -eq 125 -a ! -e "$work/none.tar"

# --- an image removed (rmi -f, prune) while a container uses it ------------------------------
"${S[@]}" run -d --name pinned --network none "$REG/test/other:v2" sleep 300 >/dev/null
other_layer=$(jq -r '.manifests[0].digest' "$work/layout2/index.json")
other_layer=$(jq -r '.layers[1].digest' "$work/layout2/blobs/sha256/${other_layer#sha256:}")
"${S[@]}" rmi "$REG/test/other:v2" >/dev/null 2>&1
expect_eq "rmi of an image a container uses is refused" 125 "$?"
"${S[@]}" rmi -f "$REG/test/other:v2" >/dev/null && "${S[@]}" image prune >/dev/null
check "rmi -f and prune" test $? -eq 0
check "... keep the layer the container runs on" test -d "$work/root/layers/sha256/${other_layer#sha256:}"
expect_eq "... and the container still reads it" other "$("${S[@]}" exec pinned cat /etc/other-file)"
"${S[@]}" restart -t 0 pinned >/dev/null
expect_eq "... and starts again from it" other "$("${S[@]}" exec pinned cat /etc/other-file)"
"${S[@]}" rm -f pinned >/dev/null && "${S[@]}" image prune >/dev/null
check "once the container is gone, prune removes the layer" test ! -e "$work/root/layers/sha256/${other_layer#sha256:}"

# --- the image's VOLUMEs: anonymous volumes seeded from the image -----------------------------
out=$("${S[@]}" run --name vol --network none "$REG/test/vol:v5" sh -c \
  'cat /data/sub/seed; grep -c " /data " /proc/mounts; echo written-in-volume >/data/new')
expect_eq "an image VOLUME is a mount seeded with the image's files" "seeded-by-image 1" "$(tr '\n' ' ' <<<"$out" | sed 's/ $//')"
vol_id=$("${S[@]}" inspect vol | jq -r '.[0].Id')
check "the volume lives in the container's directory" \
  grep -qx written-in-volume "$work/root/containers/$vol_id/volumes/0/new"
check "the image's unpacked layers are untouched" test -z "$(find "$work/root/layers/sha256" -path '*/data/new')"
# /escape -> /etc is followed inside the root, as podman's copy-up follows it: the image's own
# /etc seeds the volume, never the host's.
check "a VOLUME through a symlink is seeded from the image's own target" \
  test -e "$work/root/containers/$vol_id/volumes/1/passwd"
check "... never from the host's" test ! -e "$work/root/containers/$vol_id/volumes/1/debian_version"
mkdir -p "$work/hostdata"
out=$("${S[@]}" run --rm --network none -v "$work/hostdata:/data" "$REG/test/vol:v5" sh -c 'ls -A /data | wc -l')
expect_eq "-v over the VOLUME's path replaces it (no seed)" 0 "$out"
out=$("${S[@]}" run --rm --network none -v "$work/hostdata:/data/sub" "$REG/test/vol:v5" sh -c 'ls -A /data/sub | wc -l')
expect_eq "-v below a VOLUME is mounted over it, not hidden by it" 0 "$out"
"${S[@]}" rm vol >/dev/null
check "rm removes the anonymous volume with the container" test ! -e "$work/root/containers/$vol_id"

# --- restart policy ----------------------------------------------------------------------
"${S[@]}" run --restart on-failure:2 --name flaky --network none "$IMG" \
  sh -c 'echo x >>/var/attempts; echo "attempt $(wc -l </var/attempts)"; exit 3' >/dev/null
expect_eq "restart policy: the foreground run reports the first exit" 3 "$?"
for _ in $(seq 100); do [[ $("${S[@]}" logs flaky | grep -c attempt) -ge 3 ]] && break; sleep 0.1; done
sleep 0.5
# The same container each time: its writable layer keeps what the earlier runs wrote.
expect_eq "on-failure:2 runs it three times, keeping its filesystem" "attempt 1 attempt 2 attempt 3" \
  "$("${S[@]}" logs flaky | tr '\n' ' ' | sed 's/ $//')"
expect_eq "restart count" 2 "$("${S[@]}" inspect flaky | jq '.[0].State.RestartCount')"
# logs --since/--until, with the three attempts' own timestamps (podman's forms).
t2=$("${S[@]}" logs -t flaky | sed -n 2p | cut -d' ' -f1)
expect_eq "logs --since an RFC 3339 time" "attempt 2 attempt 3" "$("${S[@]}" logs --since "$t2" flaky | tr '\n' ' ' | sed 's/ $//')"
expect_eq "logs --until an RFC 3339 time" "attempt 1 attempt 2" "$("${S[@]}" logs --until "$t2" flaky | tr '\n' ' ' | sed 's/ $//')"
expect_eq "logs --since a duration" 3 "$("${S[@]}" logs --since 1h flaky | wc -l)"
expect_eq "logs --since Unix seconds in the future" 0 "$("${S[@]}" logs --since "$(($(date +%s) + 60))" flaky | wc -l)"
err=$("${S[@]}" logs --since yesterday flaky 2>&1)
expect_eq "logs --since garbage: exit 125" 125 "$?"
check "logs --since garbage: the error names the flag" grep -q -- "--since yesterday" <<<"$err"
"${S[@]}" rm -f flaky >/dev/null

# --- kill -9 of the monitor and of the CLI ----------------------------------------------------
"${S[@]}" run -d --name orphan "$IMG" sleep 300 >/dev/null
mon=$("${S[@]}" inspect orphan | jq -r '.[0].State.ConmonPid')
init=$("${S[@]}" inspect orphan | jq -r '.[0].State.Pid')
kill -9 "$mon"
sleep 0.2
# Its init still runs: it is reported running (as podman does when conmon is killed), with a note.
check "ps (without -a) reports the container whose monitor was killed as up" \
  grep -q "Up .*monitor gone.* orphan$" <<<"$("${S[@]}" ps)"
expect_eq "inspect says running" running "$("${S[@]}" inspect orphan | jq -r '.[0].State.Status')"
"${S[@]}" rm -f orphan >/dev/null
check "rm -f cleans a container whose monitor was killed" test $? -eq 0
gone() { [[ ! -e /proc/$1 ]] || grep -q ') Z' "/proc/$1/stat"; }
check "... and its init is gone" gone "$init"

veths_before_fg=$(ip -br link | grep -c "^veth")
"$BIN/strata" --root "$work/root" run --name fg "$IMG" sh -c 'echo started; sleep 300' >/dev/null &
cli=$!
for _ in $(seq 50); do "${S[@]}" logs fg 2>/dev/null | grep -q started && break; sleep 0.1; done
kill -9 $cli
wait $cli 2>/dev/null
check "container outlives kill -9 of the CLI" grep -q "Up" <<<"$("${S[@]}" ps --format table | grep fg)"
expect_eq "logs still served" started "$("${S[@]}" logs fg)"
"${S[@]}" stop -t 1 fg >/dev/null
check "stop after the CLI died" grep -q "Exited" <<<"$("${S[@]}" ps -a | grep fg)"
fg_id=$("${S[@]}" inspect fg | jq -r '.[0].Id')
expect_eq "a stopped container holds no veth, rule or mount" "$veths_before_fg 0 0" \
  "$(ip -br link | grep -c "^veth") $(nft list ruleset | grep -c "strata:c:$fg_id") $(grep -c "$work/root/containers/$fg_id" /proc/self/mountinfo)"

# --- rm leaves nothing ---------------------------------------------------------------------
for c in web b1 fg; do "${S[@]}" rm -f "$c" >/dev/null; done
expect_eq "no container left" "" "$("${S[@]}" ps -aq)"
expect_eq "no veth left" "" "$(ip -br link | grep "^veth")"
expect_eq "no container nft rule left" "0" "$(nft list ruleset | grep -c 'strata:c:')"
expect_eq "no lease left" "" "$(ls "$work"/root/networks/*/attachments/ 2>/dev/null | grep -v ':$' | grep .)"
expect_eq "no mount left" "0" "$(grep -c "$work/root/containers" /proc/self/mountinfo)"
expect_eq "no container cgroup left" "$cgroups_before" "$(ls /sys/fs/cgroup/memory/strata 2>/dev/null | grep -E '^[0-9a-f]{64}$')"
expect_eq "no monitor left" "" "$(pgrep -f "strata-monitor.*$work" || true)"
"${S[@]}" network rm blue red >/dev/null
check "network rm" test $? -eq 0
out=$("${S[@]}" --default-subnet 10.89.78.0/24 run --rm "$IMG" sh -c 'ip -4 addr show eth0')
check "with no container on it, the default network takes a new configured subnet" grep -q "inet 10\.89\.78\." <<<"$out"

# --- bad input stores nothing ----------------------------------------------------------------
blobs_before=$(ls "$work/root/blobs/sha256" | wc -l)
err=$("${S[@]}" image pull "Bad/Name" 2>&1)
check "an unparsable name is refused" grep -q 'invalid image reference "Bad/Name"' <<<"$err"
err=$("${S[@]}" image pull "$REG/test/busybox:nope" 2>&1)
check "404 is reported" grep -q "404" <<<"$err"
# A registry that serves a layer whose bytes do not match its digest.
mkdir -p "$work/layers/corrupt" && head -c 65536 /dev/urandom >"$work/layers/corrupt/random"
make_layout "$work/layout3" v3 '["true"]' "$work/layers/corrupt"
push_layout "$work/layout3" v3 "$REG/test/corrupt:v3"
layer3=$(jq -r '.manifests[0].digest' "$work/layout3/index.json")
layer3=$(jq -r '.layers[0].digest' "$work/layout3/blobs/sha256/${layer3#sha256:}")
data="$work/reg/storage/docker/registry/v2/blobs/sha256/${layer3:7:2}/${layer3#sha256:}/data"
size=$(stat -c %s "$data")
head -c "$size" /dev/urandom >"$data"
err=$("${S[@]}" image pull "$REG/test/corrupt:v3" 2>&1)
check "a blob whose digest does not match is refused" grep -q "digest mismatch" <<<"$err"
check "the corrupt image is not stored" test -z "$("${S[@]}" image ls | grep corrupt)"
check "the corrupt blob is not stored" test ! -e "$work/root/blobs/sha256/${layer3#sha256:}"
# A layer that tries to escape with ../
mkdir -p "$work/evil"
python3 - "$work/evil/layer.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w") as t:
    data = b"pwned\n"
    info = tarfile.TarInfo("../escaped-file")
    info.size = len(data)
    t.addfile(info, io.BytesIO(data))
PY
mkdir -p "$work/layout4/blobs/sha256"
make_layout "$work/layout4" v4 '["true"]' "$work/layers/other"
# Swap the layer for the evil tar (digest, diff_id and sizes rewritten by a second layout pass).
python3 - "$work/layout4" "$work/evil/layer.tar" <<'PY'
import gzip, hashlib, json, os, sys
layout, tar = sys.argv[1], sys.argv[2]
raw = open(tar, "rb").read()
gz = gzip.compress(raw, mtime=0)
def put(b):
    h = hashlib.sha256(b).hexdigest()
    open(f"{layout}/blobs/sha256/{h}", "wb").write(b)
    return "sha256:" + h, len(b)
idx = json.load(open(f"{layout}/index.json"))
m = json.load(open(f"{layout}/blobs/sha256/" + idx["manifests"][0]["digest"][7:]))
cfg = json.load(open(f"{layout}/blobs/sha256/" + m["config"]["digest"][7:]))
ld, ls = put(gz)
cfg["rootfs"]["diff_ids"] = ["sha256:" + hashlib.sha256(raw).hexdigest()]
cd, cs = put(json.dumps(cfg).encode())
m["layers"][0].update(digest=ld, size=ls)
m["config"].update(digest=cd, size=cs)
md, ms = put(json.dumps(m).encode())
idx["manifests"][0].update(digest=md, size=ms)
json.dump(idx, open(f"{layout}/index.json", "w"))
PY
push_layout "$work/layout4" v4 "$REG/test/evil:v4"
err=$("${S[@]}" image pull "$REG/test/evil:v4" 2>&1)
check "a layer with ../ is refused" grep -q "escapes" <<<"$err"
check "nothing was written outside" test ! -e "$work/root/layers/escaped-file" -a ! -e "$work/root/layers/tmp/escaped-file"
check "the evil image is not stored" test -z "$("${S[@]}" image ls | grep evil)"
check "no partial layer directory left" test -z "$(ls "$work/root/layers/tmp")"
expect_eq "bad pulls stored no blob" "$blobs_before" "$(ls "$work/root/blobs/sha256" | wc -l)"

finish
