#!/usr/bin/env bash
# make demo: the main job of strata today. A busybox container through strata-runtime, with a
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
