# Helpers for image e2e tests and benchmarks: a real registry (Debian's docker-registry,
# distribution 2.8) on 127.0.0.1, and OCI image layouts made from the busybox rootfs, pushed to
# it with skopeo.

# free_port: a TCP port nothing listens on now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 20000))
}

# start_registry DIR PORT [HTPASSWD]: serves DIR/storage on 127.0.0.1:PORT; REGISTRY_PID is set.
start_registry() {
  local dir=$1 port=$2 htpasswd=${3:-}
  mkdir -p "$dir/storage"
  {
    echo "version: 0.1"
    echo "log: {level: error}"
    echo "storage: {filesystem: {rootdirectory: $dir/storage}, delete: {enabled: true}}"
    echo "http: {addr: 127.0.0.1:$port}"
    if [[ -n $htpasswd ]]; then
      echo "auth: {htpasswd: {realm: strata-test, path: $htpasswd}}"
    fi
  } >"$dir/config.yml"
  docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
  REGISTRY_PID=$!
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/v2/"; then return 0; fi
    sleep 0.05
  done
  echo "registry on port $port did not start:" >&2
  cat "$dir/registry.log" >&2
  return 1
}

# start_token_registry DIR PORT USERS_FILE: a registry on 127.0.0.1:PORT that takes bearer
# tokens only (distribution's `auth: token`), and the token server it names as its realm
# (token_server.py, its users "user:password" lines in USERS_FILE, its log DIR/token.log);
# REGISTRY_PID and TOKEN_PID are set.
start_token_registry() {
  local dir=$1 port=$2 users=$3 tport
  tport=$(free_port)
  mkdir -p "$dir/storage"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=strata-test-token-issuer \
    -keyout "$dir/token.key" -out "$dir/token.crt" 2>/dev/null || return 1
  python3 "$(dirname "${BASH_SOURCE[0]}")/token_server.py" "$tport" "$dir/token.key" "$dir/token.crt" \
    strata-test-issuer "$users" >"$dir/token.log" 2>&1 &
  TOKEN_PID=$!
  {
    echo "version: 0.1"
    echo "log: {level: error}"
    echo "storage: {filesystem: {rootdirectory: $dir/storage}, delete: {enabled: true}}"
    echo "http: {addr: 127.0.0.1:$port}"
    echo "auth: {token: {realm: \"http://127.0.0.1:$tport/token\", service: strata-test-registry,"
    echo "  issuer: strata-test-issuer, rootcertbundle: $dir/token.crt}}"
  } >"$dir/config.yml"
  docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
  REGISTRY_PID=$!
  for _ in $(seq 1 100); do
    if [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/") == 401 ]] &&
      curl -s -o /dev/null "http://127.0.0.1:$tport/token"; then return 0; fi
    sleep 0.05
  done
  echo "token registry on port $port (token server on $tport) did not start:" >&2
  cat "$dir/registry.log" "$dir/token.log" >&2
  return 1
}

# _blob LAYOUT FILE: moves FILE into LAYOUT/blobs/sha256 and prints its digest and size.
_blob() {
  local layout=$1 file=$2 hex size
  hex=$(sha256sum "$file" | cut -d' ' -f1)
  size=$(stat -c %s "$file")
  mv "$file" "$layout/blobs/sha256/$hex"
  echo "sha256:$hex $size"
}

# make_layout LAYOUT TAG CMD_JSON LAYER_DIR...: an OCI image layout with one gzip layer per
# directory (bottom first), a config with diff_ids, Cmd and Env, tagged TAG; LAYOUT_VOLUMES (a
# JSON object such as {"/data":{}}) adds the config's Volumes, LAYOUT_HEALTHCHECK (a JSON
# object such as {"Test":["CMD","true"]}) its Healthcheck, LAYOUT_WORKDIR its WorkingDir (default
# /) and LAYOUT_USER its User (a JSON string, as hostile as a test wants).
make_layout() {
  local layout=$1 tag=$2 cmd=$3
  shift 3
  mkdir -p "$layout/blobs/sha256"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
  local layers_json="" diffs_json="" tmp
  tmp=$(mktemp -d)
  for dir in "$@"; do
    tar --numeric-owner --sort=name --mtime=@0 -C "$dir" -cf "$tmp/layer.tar" .
    local diff
    diff="sha256:$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)"
    gzip -n -c "$tmp/layer.tar" >"$tmp/layer.tgz"
    read -r digest size < <(_blob "$layout" "$tmp/layer.tgz")
    layers_json+="${layers_json:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"$digest\",\"size\":$size}"
    diffs_json+="${diffs_json:+,}\"$diff\""
  done
  cat >"$tmp/config.json" <<EOF
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin","STRATA_IMAGE=$tag"],"Cmd":$cmd,"WorkingDir":"${LAYOUT_WORKDIR:-/}"${LAYOUT_USER:+,\"User\":$LAYOUT_USER},"ExposedPorts":{"80/tcp":{}}${LAYOUT_VOLUMES:+,\"Volumes\":$LAYOUT_VOLUMES}${LAYOUT_HEALTHCHECK:+,\"Healthcheck\":$LAYOUT_HEALTHCHECK}},"rootfs":{"type":"layers","diff_ids":[$diffs_json]}}
EOF
  read -r cdigest csize < <(_blob "$layout" "$tmp/config.json")
  cat >"$tmp/manifest.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$cdigest","size":$csize},"layers":[$layers_json]}
EOF
  read -r mdigest msize < <(_blob "$layout" "$tmp/manifest.json")
  cat >"$layout/index.json" <<EOF
{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"$mdigest","size":$msize,"annotations":{"org.opencontainers.image.ref.name":"$tag"}}]}
EOF
  rm -rf "$tmp"
}

# make_test_layers DIR ROOTFS: DIR/base (the busybox rootfs) and DIR/upper, which deletes
# /etc/motd-strata (a whiteout) and replaces /opt/data (an opaque directory) of the base.
make_test_layers() {
  local dir=$1 rootfs=$2
  mkdir -p "$dir/base" "$dir/upper/etc" "$dir/upper/opt/data"
  cp -a "$rootfs"/. "$dir/base/"
  rm -f "$dir/base/.stamp"
  echo "deleted by the upper layer" >"$dir/base/etc/motd-strata"
  mkdir -p "$dir/base/opt/data"
  echo old >"$dir/base/opt/data/old-file"
  echo kept >"$dir/base/opt/kept"
  : >"$dir/upper/etc/.wh.motd-strata"
  : >"$dir/upper/opt/data/.wh..wh..opq"
  echo new >"$dir/upper/opt/data/new-file"
  echo "from the upper layer" >"$dir/upper/etc/upper-file"
}

# push_layout LAYOUT TAG DEST: skopeo copy to docker://DEST.
push_layout() {
  skopeo copy --quiet --dest-tls-verify=false "oci:$1:$2" "docker://$3"
}
