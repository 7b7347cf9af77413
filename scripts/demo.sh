#!/usr/bin/env bash
# make demo: the main jobs of strata today. First a busybox container through strata-runtime, with a
# 64 MiB memory limit, printing its hostname, its memory limit (read from its own cgroup) and
# its effective capabilities; then proof that nothing was left behind.
set -euo pipefail
build=${1:-build}
bin=$(cd "$build/bin" && pwd)
rootfs=$(cd "$build/rootfs" && pwd)
work=$(mktemp -d /tmp/strata-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/state
cd "$work"
"$bin/strata-runtime" spec
script='echo "hostname:       $(hostname)"
echo "memory limit:   $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max) bytes"
echo "effective caps: $(grep CapEff /proc/self/status | cut -f2)"'
jq --arg r "$rootfs" --arg s "$script" '
  .root.path = $r | .process.terminal = false | .hostname = "strata-demo"
  | .linux.resources.memory = {"limit": 67108864}
  | .process.args = ["sh", "-c", $s]' config.json > config.new && mv config.new config.json
echo "== strata-runtime run demo (bundle $work, rootfs $rootfs)"
start=$(date +%s%N)
"$bin/strata-runtime" --root "$root" run demo
end=$(date +%s%N)
echo "== the container ran and was deleted in $(((end - start) / 1000000)) ms"
echo "== state left in --root: $(ls "$root" | grep -v '^\.' || echo none); cgroups left: $(find /sys/fs/cgroup -maxdepth 3 -name demo | wc -l)"

# Part two: `strata run` from an image in a local registry (Debian's docker-registry), an HTTP
# server on a published port, fetched with curl; all in a network namespace of its own, so the
# demo never touches the machine's own networking.
echo
echo "== strata run: an image from a local registry, serving HTTP on a published port"
unshare --net bash -s "$bin" "$rootfs" "$work" <<'PART2'
set -euo pipefail
bin=$1 rootfs=$2 work=$3
here=$(cd "$(dirname "$(readlink -f "$bin/strata")")/../.." && pwd)
source "$here/tests/e2e/lib_image.sh"
ip link set lo up
S=("$bin/strata" --root "$work/strata")
port=$(free_port)
start_registry "$work/reg" "$port" >/dev/null
# (set -e also applies inside the trap: every step must not fail, or the rest is skipped.)
trap 'kill $REGISTRY_PID 2>/dev/null || true; "${S[@]}" rm -f web >/dev/null 2>&1 || true
  grep -o "$work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true' EXIT
mkdir -p "$work/layers/base" "$work/layers/www/srv"
cp -a "$rootfs"/. "$work/layers/base/"
echo "hello from a strata container" >"$work/layers/www/srv/index.html"
make_layout "$work/layout" v1 '["httpd","-f","-p","80","-h","/srv"]' "$work/layers/base" "$work/layers/www"
push_layout "$work/layout" v1 "127.0.0.1:$port/demo/web:v1"
echo "\$ strata image pull 127.0.0.1:$port/demo/web:v1"
"${S[@]}" image pull "127.0.0.1:$port/demo/web:v1" >/dev/null
echo "\$ strata run -d --name web -p 8080:80 127.0.0.1:$port/demo/web:v1"
"${S[@]}" run -d --name web -p 8080:80 "127.0.0.1:$port/demo/web:v1"
"${S[@]}" ps
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:8080/ && break; sleep 0.1; done
echo "\$ curl http://127.0.0.1:8080/"
curl -s http://127.0.0.1:8080/
"${S[@]}" rm -f web >/dev/null
echo "== removed: containers left: $("${S[@]}" ps -aq | wc -l), veths left: $(ip -br link | grep -c '^veth' || true)"
PART2
