#!/usr/bin/env bash
# Hostile images from a real registry (Debian's docker-registry) whose config's rootfs.diff_ids
# do not match their layers (every blob digest is right: only the diff_id lies, as containerd
# and podman refuse it). `strata image pull` must fail non-zero with an error naming the layer
# and both digests, and leave nothing in the store: no record, blob, unpacked layer (not even
# the honest layer pulled beside the bad one), staging directory, ingest file or lock file. An
# honest image made by the same generator pulls, so the failures are the check's, not the
# generator's; and a lying image that names the honest image's already-unpacked blob is refused
# too, the honest image staying as it was. (The images hold a file or two, no program: nothing
# here runs a container.)
#
# The images are built here (python3 tarfile + hashlib into an OCI layout) and pushed with
# skopeo; nothing binary is committed. Runs in a network namespace of its own: the registry
# listens on its loopback.
source "$(dirname "$0")/lib.sh"
in_own_netns "$0" "$@"
source "$(dirname "$0")/lib_image.sh"
BIN=${STRATA_BIN_DIR:?}

work=$(mktemp -d /tmp/strata-e2e-diffid.XXXXXX)
REGISTRY_PID=
cleanup() {
  [[ -n $REGISTRY_PID ]] && kill "$REGISTRY_PID" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

port=$(free_port)
start_registry "$work/reg" "$port" || exit 1
REG=127.0.0.1:$port

# make_hostile_layout LAYOUT: tags good, evil, evil2, liar; prints "name digest" lines for the
# layer blobs and diff_ids the checks below name.
make_hostile_layout() {
  python3 - "$1" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile

layout = sys.argv[1]
os.makedirs(f"{layout}/blobs/sha256", exist_ok=True)
sha = lambda b: "sha256:" + hashlib.sha256(b).hexdigest()

def blob(data):
    open(f"{layout}/blobs/sha256/{sha(data)[7:]}", "wb").write(data)
    return {"digest": sha(data), "size": len(data)}

def layer_tar(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()

manifests = []
def image(tag, layers, diff_ids):
    descs = [dict(mediaType="application/vnd.oci.image.layer.v1.tar+gzip", **blob(gzip.compress(l, mtime=0)))
             for l in layers]
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/nothing-to-run"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": dict(mediaType="application/vnd.oci.image.config.v1+json",
                               **blob(json.dumps(config).encode())),
                "layers": descs}
    manifests.append(dict(mediaType="application/vnd.oci.image.manifest.v1+json",
                          annotations={"org.opencontainers.image.ref.name": tag},
                          **blob(json.dumps(manifest).encode())))
    return descs

good = layer_tar({"etc/good": b"an honest layer\n"})
evil = layer_tar({"etc/evil": b"what the registry serves\n"})
claimed = layer_tar({"etc/evil": b"what the config claims\n"})
good_blob = image("good", [good], [sha(good)])[0]["digest"]
evil_blob = image("evil", [evil], [sha(claimed)])[0]["digest"]
image("evil2", [good, evil], [sha(good), sha(claimed)])   # an honest layer, then the bad one
image("liar", [good], [sha(claimed)])                     # the honest blob, a lying diff_id
json.dump({"schemaVersion": 2, "manifests": manifests}, open(f"{layout}/index.json", "w"))
open(f"{layout}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
print("good_blob", good_blob)
print("good_diff", sha(good))
print("evil_blob", evil_blob)
print("evil_diff", sha(evil))
print("claimed", sha(claimed))
PY
}

declare -A D
while read -r name digest; do D[$name]=$digest; done < <(make_hostile_layout "$work/layout")
[[ -n ${D[claimed]:-} ]] || { echo "could not build the test images"; exit 1; }
for tag in good evil evil2 liar; do
  push_layout "$work/layout" "$tag" "$REG/hostile/diffid:$tag" || { echo "skopeo could not push $tag"; exit 1; }
done

# leftovers ROOT: every file or directory the image store holds under ROOT.
leftovers() {
  find "$1/images" "$1/blobs/sha256" "$1/layers/sha256" "$1/layers/tmp" "$1/ingest" -mindepth 1 2>/dev/null
}

# --- a fresh store: each hostile pull fails and stores nothing ------------------------------
R=$work/root
S=(timeout 120 "$BIN/strata" --root "$R")
err=$("${S[@]}" image pull -q "$REG/hostile/diffid:evil" 2>&1 >/dev/null)
expect_eq "pull of an image whose diff_id lies: exit 125" 125 "$?"
echo "$err"
check "... the error says diff_id mismatch" grep -q "diff_id mismatch" <<<"$err"
check "... and names the layer" grep -qF "layer ${D[evil_blob]}" <<<"$err"
check "... the digest of its content" grep -qF "${D[evil_diff]}" <<<"$err"
check "... and the config's diff_id" grep -qF "${D[claimed]}" <<<"$err"
expect_eq "... nothing is left in the store" "" "$(leftovers "$R")"
check "... the store's directories are there (the check looked at the right place)" \
  test -d "$R/blobs/sha256" -a -d "$R/layers/sha256" -a -d "$R/ingest" -a -d "$R/images"

"${S[@]}" image pull -q "$REG/hostile/diffid:evil2" >/dev/null 2>"$work/evil2.err"
expect_eq "pull of an honest layer plus a lying one: exit 125" 125 "$?"
check "... diff_id mismatch" grep -q "diff_id mismatch" "$work/evil2.err"
expect_eq "... nothing left, not even the honest layer's directory" "" "$(leftovers "$R")"

"${S[@]}" run --rm --network none "$REG/hostile/diffid:evil" >/dev/null 2>"$work/run.err"
expect_eq "strata run of it (pulls first): exit 125" 125 "$?"
check "... diff_id mismatch" grep -q "diff_id mismatch" "$work/run.err"
expect_eq "... nothing left" "" "$(leftovers "$R")"
expect_eq "... no image listed" "" "$("${S[@]}" image ls -q 2>&1)"

# --- the honest image pulls; a lying one naming its unpacked blob is refused ----------------
out=$("${S[@]}" image pull -q "$REG/hostile/diffid:good" 2>"$work/good.err")
expect_eq "the honest image from the same generator pulls" 0 "$?"
check "... its layer is unpacked" test -f "$R/layers/sha256/${D[good_blob]#sha256:}/etc/good"
expect_eq "... its diff_id is recorded beside it" "${D[good_diff]}" \
  "$(cat "$R/layers/sha256/${D[good_blob]#sha256:}.diff_id" 2>/dev/null)"
check "... no lock file is left (layers or ingest)" test -z "$(find "$R/layers" "$R/ingest" -name '*.lock')"
before=$(cd "$R" && find images blobs layers ingest -mindepth 1 | sort)
err=$("${S[@]}" image pull -q "$REG/hostile/diffid:liar" 2>&1 >/dev/null)
expect_eq "pull of a lying image whose blob is already unpacked: exit 125" 125 "$?"
check "... diff_id mismatch naming the honest digest" grep -qF "${D[good_diff]}" <<<"$err"
check "... and the lie" grep -qF "${D[claimed]}" <<<"$err"
expect_eq "... the store is as it was" "$before" "$(cd "$R" && find images blobs layers ingest -mindepth 1 | sort)"
expect_eq "... only the honest image is listed" "$REG/hostile/diffid:good" \
  "$("${S[@]}" image ls --format json | jq -r '.[].Names[]')"
expect_eq "... and it is still whole (image inspect looks it up, its layer checked)" "${D[good_diff]}" \
  "$("${S[@]}" image inspect "$REG/hostile/diffid:good" | jq -r '.[0].RootFS.Layers[0]')"

finish
