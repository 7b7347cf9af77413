#!/usr/bin/env bash
# Image archives against podman: `strata image save` (docker-archive) is accepted by `podman
# load` with the same image id (oci-archive with the same manifest digest); `podman save`
# (docker-archive, oci-archive, oci-dir) is loaded by `strata image load` and runs; `strata
# image import` of the busybox rootfs runs; `strata export` of a running container holds what
# the container wrote; a tampered or truncated archive stores nothing.
#
# Runs in a network namespace of its own: the registry it starts listens on that loopback.
source "$(dirname "$0")/lib.sh"
in_own_netns "$0" "$@"
source "$(dirname "$0")/lib_image.sh"
BIN=${STRATA_BIN_DIR:?}
ROOTFS=${STRATA_ROOTFS_DIR:?}
command -v podman >/dev/null || { echo "podman missing: run scripts/install-deps.sh"; exit 1; }

work=$(mktemp -d /tmp/strata-e2e-archive.XXXXXX)
S=(timeout 120 "$BIN/strata" --root "$work/root")
use_podman_conf "$work"
P=(timeout 120 podman --root "$work/podman" --runroot "$work/podman-run" --tmpdir "$work/podman-tmp")
REGISTRY_PID=
cleanup() {
  for id in $("${S[@]}" ps -aq 2>/dev/null); do "${S[@]}" rm -f "$id" >/dev/null 2>&1; done
  "${P[@]}" rm -af -t 0 >/dev/null 2>&1
  "${P[@]}" system reset -f >/dev/null 2>&1 || true
  [[ -n $REGISTRY_PID ]] && kill "$REGISTRY_PID" 2>/dev/null
  grep -o "$work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

port=$(free_port)
start_registry "$work/reg" "$port" || exit 1
REG=127.0.0.1:$port
mkdir -p "$work/layers/base" "$work/layers/app/etc"
cp -a "$ROOTFS"/. "$work/layers/base/" && rm -f "$work/layers/base/.stamp"
echo "archived file" >"$work/layers/app/etc/archive-marker"
make_layout "$work/layout" v1 '["cat","/etc/archive-marker"]' "$work/layers/base" "$work/layers/app"
push_layout "$work/layout" v1 "$REG/test/archive:v1" || exit 1
IMG=$REG/test/archive:v1
"${S[@]}" image pull -q "$IMG" >/dev/null
check "strata pulls the test image" test $? -eq 0
config_digest=$(jq -r '.manifests[0].digest' "$work/layout/index.json")
config_digest=$(jq -r '.config.digest' "$work/layout/blobs/sha256/${config_digest#sha256:}")

# --- strata save -> podman load ---------------------------------------------------------
"${S[@]}" image save -o "$work/strata-docker.tar" "$IMG"
check "strata image save (docker-archive)" test $? -eq 0
check "archive has manifest.json" bash -c "tar -tf '$work/strata-docker.tar' | grep -qx manifest.json"
out=$("${P[@]}" load -i "$work/strata-docker.tar" 2>&1)
check "podman load accepts strata's docker-archive" grep -q "Loaded image" <<<"$out"
pid=$("${P[@]}" image inspect --format '{{.Id}}' "$IMG" 2>/dev/null)
expect_eq "podman sees the same image id (config digest)" "${config_digest#sha256:}" "$pid"
"${S[@]}" image save --format oci-archive -o "$work/strata-oci.tar" "$IMG"
check "strata image save (oci-archive)" test $? -eq 0
"${P[@]}" rmi -f "$IMG" >/dev/null 2>&1
out=$("${P[@]}" load -i "$work/strata-oci.tar" 2>&1)
check "podman load accepts strata's oci-archive" grep -q "Loaded image: $IMG" <<<"$out"
expect_eq "podman keeps the manifest digest of strata's oci-archive" \
  "$(jq -r '.manifests[0].digest' "$work/layout/index.json")" \
  "$("${P[@]}" image inspect --format '{{.Digest}}' "$IMG" 2>/dev/null)"
"${S[@]}" image save --format oci-archive "$IMG" >"$work/stdout.tar"
check "strata image save to stdout" bash -c "tar -tf '$work/stdout.tar' | grep -qx index.json"
# script(1) gives the command a terminal as stdout.
out=$(script -qec "timeout --foreground 10 $BIN/strata --root $work/root image save $IMG" /dev/null </dev/null 2>&1)
check "save to a terminal is refused" test $? -ne 0
check "the refusal says why" grep -q "terminal" <<<"$out"

# --- podman save -> strata load -> strata run -------------------------------------------
for fmt in docker-archive oci-archive oci-dir; do
  "${P[@]}" tag "$IMG" "localhost/from-podman:$fmt" >/dev/null
  "${P[@]}" save --format "$fmt" -o "$work/podman-$fmt" "localhost/from-podman:$fmt" 2>/dev/null
  check "podman save $fmt" test $? -eq 0
  out=$("${S[@]}" image load -i "$work/podman-$fmt" 2>&1)
  check "strata image load of podman's $fmt" grep -q "^Loaded image: " <<<"$out"
  name=$(sed -n 's/^Loaded image: //p' <<<"$out" | head -1)
  expect_eq "the name of podman's $fmt is kept" "localhost/from-podman:$fmt" "$name"
  out=$("${S[@]}" run --rm --network none "$name" cat /etc/archive-marker 2>&1)
  expect_eq "strata run of the image loaded from podman's $fmt" "archived file" "$out"
done
out=$("${S[@]}" image load <"$work/podman-docker-archive" 2>&1)
check "strata image load from stdin" grep -q "^Loaded image: " <<<"$out"

# --- a tampered archive stores nothing --------------------------------------------------
blobs_before=$(ls "$work/root/blobs/sha256" | wc -l)
python3 - "$work/strata-docker.tar" "$work/tampered.tar" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
i = data.find(b"archived file")
data[i] ^= 0x20
open(sys.argv[2], "wb").write(data)
PY
"${S[@]}" image rm "$IMG" >/dev/null 2>&1
blobs_before=$(ls "$work/root/blobs/sha256" | wc -l)
images_before=$("${S[@]}" image ls -q | sort | tr '\n' ' ')
err=$("${S[@]}" image load -i "$work/tampered.tar" 2>&1)
check "a tampered archive is refused" test $? -ne 0
check "the error names the digest mismatch" grep -q "digest" <<<"$err"
expect_eq "no image stored" "$images_before" "$("${S[@]}" image ls -q | sort | tr '\n' ' ')"
expect_eq "no blob stored" "$blobs_before" "$(ls "$work/root/blobs/sha256" | wc -l)"
head -c 20000 "$work/strata-docker.tar" >"$work/truncated.tar"
"${S[@]}" image load -i "$work/truncated.tar" >/dev/null 2>&1
check "a truncated archive is refused" test $? -ne 0
expect_eq "no blob stored after truncation" "$blobs_before" "$(ls "$work/root/blobs/sha256" | wc -l)"

# --- import / export --------------------------------------------------------------------
iid=$(tar -C "$ROOTFS" -c . | "${S[@]}" image import - localhost/imported:busybox)
check "strata image import prints the image id" grep -qE '^[0-9a-f]{64}$' <<<"$iid"
out=$("${S[@]}" run --rm --network none localhost/imported:busybox sh -c 'echo imported-ok')
expect_eq "the imported rootfs runs" imported-ok "$out"
"${S[@]}" run -d --name exp --network none localhost/imported:busybox \
  sh -c 'echo written-inside >/written; sleep 300' >/dev/null
for _ in $(seq 1 50); do
  "${S[@]}" exec exp test -f /written 2>/dev/null && break
  sleep 0.1
done
"${S[@]}" export -o "$work/export.tar" exp
check "strata export of a running container" test $? -eq 0
expect_eq "the export holds the file the container wrote" written-inside \
  "$(tar -xOf "$work/export.tar" ./written 2>/dev/null)"
check "the export holds the image's files" bash -c "tar -tf '$work/export.tar' | grep -qx './bin/busybox'"
"${S[@]}" rm -f exp >/dev/null
err=$("${S[@]}" export -o "$work/export2.tar" exp 2>&1)
check "export of a removed container fails" test $? -ne 0
check "no partial export file" test ! -e "$work/export2.tar"

finish
