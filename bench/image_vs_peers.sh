#!/usr/bin/env bash
# bench/image_vs_peers: strata vs podman (and skopeo for pulls) against the same local
# registry and image, alternating in one run; prints medians and ratios.
#   pull:      `strata image pull` vs `podman pull` vs `skopeo copy` to an OCI dir, cold each time
#   run --rm:  `strata run --rm IMAGE true` vs `podman run --rm IMAGE true` (default network)
#   50 -d:     50 containers started with -d, then removed with rm -f
#   monitor:   RSS of strata-monitor vs conmon per running container
# podman runs with the settings ENVIRONMENT.md gives (runc, cgroupfs, file events, netavark,
# ulimits that fit the hard limits here). Runs in a network namespace of its own.
# Usage: bench/image_vs_peers.sh BUILD_DIR [ITERATIONS]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../tests/e2e/lib.sh"
in_own_netns "$0" "$@"
source "$here/../tests/e2e/lib_image.sh"
build=$(cd "${1:-build}" && pwd)
iters=${2:-9}

work=$(mktemp -d /tmp/strata-bench.XXXXXX)
use_podman_conf "$work"
podman_cmd() { podman --root "$1" --runroot "$1.run" --runtime runc "${@:2}"; }
S=("$build/bin/strata")
cleanup() {
  "${S[@]}" --root "$work/strata-run" ps -aq 2>/dev/null | xargs -r "${S[@]}" --root "$work/strata-run" rm -f >/dev/null 2>&1
  podman_cmd "$work/podman-run" rm -af -t 0 >/dev/null 2>&1
  kill "$REGISTRY_PID" 2>/dev/null
  grep -o "$work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

now_ms() { echo $(($(date +%s%N) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

port=$(free_port)
start_registry "$work/reg" "$port" || exit 1
REG=127.0.0.1:$port
echo "bench: building the image (busybox + 3 layers of 16 MiB incompressible data)"
mkdir -p "$work/layers/base"
cp -a "$build/rootfs"/. "$work/layers/base/"
dirs=("$work/layers/base")
for i in 1 2 3; do
  mkdir -p "$work/layers/data$i/data"
  head -c $((16 << 20)) /dev/urandom >"$work/layers/data$i/data/blob$i"
  dirs+=("$work/layers/data$i")
done
make_layout "$work/layout" v1 '["true"]' "${dirs[@]}"
push_layout "$work/layout" v1 "$REG/bench/img:v1" || exit 1
IMG=$REG/bench/img:v1

echo "bench: pull, cold cache, $iters rounds alternating"
: >"$work/pull.strata"; : >"$work/pull.podman"; : >"$work/pull.skopeo"
for i in $(seq "$iters"); do
  t=$(now_ms); "${S[@]}" --root "$work/sp" image pull -q "$IMG" >/dev/null || echo "strata pull failed"; echo $(($(now_ms) - t)) >>"$work/pull.strata"
  rm -rf "$work/sp"
  t=$(now_ms); podman_cmd "$work/pp" pull -q --tls-verify=false "$IMG" >/dev/null || echo "podman pull failed"; echo $(($(now_ms) - t)) >>"$work/pull.podman"
  podman_cmd "$work/pp" system reset -f >/dev/null 2>&1; rm -rf "$work/pp" "$work/pp.run"
  t=$(now_ms); skopeo copy -q --src-tls-verify=false "docker://$IMG" "oci:$work/sk:v1" >/dev/null || echo "skopeo failed"; echo $(($(now_ms) - t)) >>"$work/pull.skopeo"
  rm -rf "$work/sk"
done

echo "bench: run --rm IMAGE true, $iters rounds alternating"
"${S[@]}" --root "$work/strata-run" image pull -q "$IMG" >/dev/null
podman_cmd "$work/podman-run" pull -q --tls-verify=false "$IMG" >/dev/null
# One warm-up each (first network setup, nft table, bridge).
"${S[@]}" --root "$work/strata-run" run --rm "$IMG" true
podman_cmd "$work/podman-run" run --rm "$IMG" true
: >"$work/run.strata"; : >"$work/run.podman"
for i in $(seq "$iters"); do
  t=$(now_ms); "${S[@]}" --root "$work/strata-run" run --rm "$IMG" true || echo "strata run failed"; echo $(($(now_ms) - t)) >>"$work/run.strata"
  t=$(now_ms); podman_cmd "$work/podman-run" run --rm "$IMG" true || echo "podman run failed"; echo $(($(now_ms) - t)) >>"$work/run.podman"
done

echo "bench: 50 containers with -d, then rm -f"
t=$(now_ms)
for i in $(seq 50); do "${S[@]}" --root "$work/strata-run" run -d "$IMG" sleep 1000 >/dev/null; done
strata_start50=$(($(now_ms) - t))
mon_kb=$(ps -C strata-monitor -o rss= | awk '{s+=$1; n++} END {if (n) printf "%d %d", s/n, n}')
t=$(now_ms)
"${S[@]}" --root "$work/strata-run" ps -aq | xargs "${S[@]}" --root "$work/strata-run" rm -f >/dev/null
strata_rm50=$(($(now_ms) - t))
t=$(now_ms)
for i in $(seq 50); do podman_cmd "$work/podman-run" run -d "$IMG" sleep 1000 >/dev/null; done
podman_start50=$(($(now_ms) - t))
conmon_kb=$(ps -C conmon -o rss= | awk '{s+=$1; n++} END {if (n) printf "%d %d", s/n, n}')
t=$(now_ms)
podman_cmd "$work/podman-run" rm -af -t 0 >/dev/null
podman_rm50=$(($(now_ms) - t))

ms() { median <"$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
ps_=$(ms "$work/pull.strata"); pp=$(ms "$work/pull.podman"); pk=$(ms "$work/pull.skopeo")
rs=$(ms "$work/run.strata"); rp=$(ms "$work/run.podman")
echo
echo "image_vs_peers ($iters rounds, medians; image: 4 layers, 48 MiB of data)"
printf "%-34s %10s %10s %10s %16s\n" "" strata podman skopeo "strata/podman"
printf "%-34s %8s ms %8s ms %8s ms %16s\n" "pull, cold cache" "$ps_" "$pp" "$pk" "$(ratio "$ps_" "$pp")x"
printf "%-34s %8s ms %8s ms %10s %16s\n" "run --rm IMAGE true" "$rs" "$rp" "" "$(ratio "$rs" "$rp")x"
printf "%-34s %8s ms %8s ms %10s %16s\n" "50 x run -d" "$strata_start50" "$podman_start50" "" "$(ratio "$strata_start50" "$podman_start50")x"
printf "%-34s %8s ms %8s ms %10s %16s\n" "rm -f of 50" "$strata_rm50" "$podman_rm50" "" "$(ratio "$strata_rm50" "$podman_rm50")x"
read -r mkb mn <<<"$mon_kb"; read -r ckb cn <<<"$conmon_kb"
printf "%-34s %8s KiB %7s KiB %9s\n" "monitor RSS per container" "${mkb:-?}" "${ckb:-?}" "(strata-monitor x${mn:-0}, conmon x${cn:-0})"
