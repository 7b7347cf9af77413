#!/usr/bin/env bash
# Health checks of `strata run` containers, observed through the CLI as a user sees them:
# the image config's Healthcheck and the --health-* flags, the monitor's timer running the
# check, starting -> healthy -> unhealthy with the failing streak, timeouts, the start period,
# State.Health in inspect and "(healthy)" in ps, `strata healthcheck run` by hand, the
# --health-on-failure actions (kill, stop, restart), `strata start` / `strata restart`, bad
# input that leaves no container, and no residue.
source "$(dirname "$0")/lib.sh"
in_own_netns "$0" "$@"
source "$(dirname "$0")/lib_image.sh"
BIN=${STRATA_BIN_DIR:?}
ROOTFS=${STRATA_ROOTFS_DIR:?}

work=$(mktemp -d /tmp/strata-health.XXXXXX)
S=(timeout 120 "$BIN/strata" --root "$work/root")
cleanup() {
  for id in $("${S[@]}" ps -aq 2>/dev/null); do "${S[@]}" rm -f "$id" >/dev/null 2>&1; done
  grep -o "$work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

jq_true() { jq -e "$1" >/dev/null; }
health() { "${S[@]}" inspect "$1" | jq -r '.[0].State.Health.Status'; }
# wait_for NAME JQ-FILTER [TENTHS]: until inspect's first element matches the filter.
wait_for() {
  for _ in $(seq "${3:-100}"); do
    "${S[@]}" inspect "$1" 2>/dev/null | jq -e ".[0] | $2" >/dev/null && return 0
    sleep 0.1
  done
  return 1
}
R=(run -d --network none --rootfs "$ROOTFS")

# --- the image's Healthcheck ------------------------------------------------------------------
mkdir -p "$work/base"
cp -a "$ROOTFS"/. "$work/base/" && rm -f "$work/base/.stamp"
LAYOUT_HEALTHCHECK='{"Test":["CMD-SHELL","test -f /tmp/ready && echo ready"],"Interval":300000000,"Retries":2}' \
  make_layout "$work/layout" v1 '["sh","-c","sleep 1; touch /tmp/ready; exec sleep 300"]' "$work/base"
out=$("${S[@]}" image load -i "$work/layout" 2>&1)
check "image with a Healthcheck loads" grep -q "^Loaded image" <<<"$out"
IMG=$(sed -n 's/^Loaded image: //p' <<<"$out" | head -1)
"${S[@]}" run -d --name img --network none "$IMG" >/dev/null
check "run -d of the image" test $? -eq 0
expect_eq "Config.Healthcheck comes from the image (docker's default timeout)" \
  '[["CMD-SHELL","test -f /tmp/ready && echo ready"],300000000,2,30000000000]' \
  "$("${S[@]}" inspect img | jq -c '.[0].Config.Healthcheck | [.Test, .Interval, .Retries, .Timeout]')"
expect_eq "a new container is starting" starting "$(health img)"
check "ps shows (starting)" grep -q "Up .* (starting)" <<<"$("${S[@]}" ps | grep ' img$')"
check "the monitor's timer makes it healthy once the test passes" wait_for img '.State.Health.Status == "healthy"'
check "ps shows (healthy)" grep -q "Up .* (healthy)" <<<"$("${S[@]}" ps | grep ' img$')"
log=$("${S[@]}" inspect img | jq -c '.[0].State.Health.Log')
check "the log has the passing result with its output" jq_true 'last | .ExitCode == 0 and .Output == "ready\n"' <<<"$log"
check "the log entries carry start and end times" jq_true 'last | (.Start | test("^20[0-9-]+T")) and .End >= .Start' <<<"$log"
check "failures before the first success were recorded (exit 1)" jq_true 'map(.ExitCode) | index(1) != null' <<<"$log"
"${S[@]}" exec img rm /tmp/ready
check "two failures in a row make it unhealthy" wait_for img '.State.Health.Status == "unhealthy" and .State.Health.FailingStreak >= 2'
check "ps shows (unhealthy)" grep -q "(unhealthy)" <<<"$("${S[@]}" ps | grep ' img$')"
check "the log keeps at most five results" test "$("${S[@]}" inspect img | jq '.[0].State.Health.Log | length')" -le 5
out=$("${S[@]}" healthcheck run img)
expect_eq "healthcheck run by hand: exit 1 when unhealthy" 1 "$?"
expect_eq "healthcheck run prints the status" unhealthy "$out"
"${S[@]}" exec img touch /tmp/ready
out=$("${S[@]}" healthcheck run img)
expect_eq "healthcheck run by hand: exit 0 when healthy" "0 " "$? $out"
expect_eq "the check by hand is recorded" "healthy 0" "$("${S[@]}" inspect img | jq -r '.[0].State.Health | "\(.Status) \(.FailingStreak)"')"
check "State.Healthcheck is podman 4's name for the same" jq_true '.[0].State.Healthcheck == .[0].State.Health' \
  <<<"$("${S[@]}" inspect img)"

"${S[@]}" run -d --name nohc --no-healthcheck --network none "$IMG" >/dev/null
expect_eq "--no-healthcheck drops the image's check" "null null" "$("${S[@]}" inspect nohc | jq -r '.[0] | "\(.State.Health) \(.Config.Healthcheck)"')"
expect_eq "ps shows no health for it" 0 "$("${S[@]}" ps | grep ' nohc$' | grep -c '(')"
err=$("${S[@]}" healthcheck run nohc 2>&1)
expect_eq "healthcheck run without a check: exit 125" 125 "$?"
check "... and says so" grep -q "has no health check defined" <<<"$err"
"${S[@]}" rm -f img nohc >/dev/null

# --- flags: output, exec form, timeout, start period ---------------------------------------
"${S[@]}" "${R[@]}" --name flags --health-cmd '["sh","-c","echo out-$((6*7)); echo err >&2"]' \
  --health-interval 300ms sleep 300 >/dev/null
check "--health-cmd as a JSON array (exec form)" wait_for flags '.State.Health.Status == "healthy"'
expect_eq "stdout and stderr are kept as the output" '"out-42\nerr\n"' \
  "$("${S[@]}" inspect flags | jq -c '.[0].State.Health.Log[-1].Output')"
expect_eq "the exec form is recorded with CMD" '["CMD","sh","-c","echo out-$((6*7)); echo err >&2"]' \
  "$("${S[@]}" inspect flags | jq -c '.[0].Config.Healthcheck.Test')"

"${S[@]}" "${R[@]}" --name slow --health-cmd 'sleep 5' --health-timeout 300ms --health-retries 1 \
  --health-interval 1s sleep 300 >/dev/null
check "a test over its timeout fails the check" wait_for slow '.State.Health.Status == "unhealthy"' 60
expect_eq "... with exit code -1 and docker's message" '-1 "Health check exceeded timeout (300ms)"' \
  "$("${S[@]}" inspect slow | jq -r '.[0].State.Health.Log[0] | "\(.ExitCode) \(.Output | tojson)"')"
read -r t0 t1 < <("${S[@]}" inspect slow | jq -r '.[0].State.Health.Log[0] | "\(.Start) \(.End)"')
took=$((($(date -d "$t1" +%s%N) - $(date -d "$t0" +%s%N)) / 1000000))
check "the timed-out test was killed after about 300 ms (took ${took} ms)" test "$took" -ge 250 -a "$took" -lt 3000

"${S[@]}" "${R[@]}" --name startp --health-cmd 'exit 1' --health-retries 1 --health-interval 200ms \
  --health-start-period 1h sleep 300 >/dev/null
check "failures within the start period are logged" wait_for startp '.State.Health.Log | length >= 3'
expect_eq "... but do not count while starting" "starting 0" \
  "$("${S[@]}" inspect startp | jq -r '.[0].State.Health | "\(.Status) \(.FailingStreak)"')"

"${S[@]}" "${R[@]}" --name manual --health-cmd true --health-interval disable sleep 300 >/dev/null
sleep 1
expect_eq "--health-interval disable: no check runs by itself" "starting 0" \
  "$("${S[@]}" inspect manual | jq -r '.[0].State.Health | "\(.Status) \(.Log | length)"')"
"${S[@]}" healthcheck run manual
expect_eq "... until run by hand" healthy "$(health manual)"
"${S[@]}" rm -f flags slow startp manual >/dev/null

# --- on-failure actions ---------------------------------------------------------------------
"${S[@]}" "${R[@]}" --name killed --health-cmd 'exit 1' --health-retries 1 --health-interval 200ms \
  --health-on-failure kill sleep 300 >/dev/null
check "--health-on-failure kill: the container is killed" wait_for killed '.State.Status == "exited"' 60
expect_eq "... with SIGKILL's exit code" 137 "$("${S[@]}" inspect killed | jq '.[0].State.ExitCode')"

"${S[@]}" "${R[@]}" --name stopped --restart always --health-cmd 'exit 1' --health-retries 1 \
  --health-interval 200ms --health-on-failure stop sh -c 'trap "exit 0" TERM; while :; do sleep 0.1; done' >/dev/null
check "--health-on-failure stop: the container stops" wait_for stopped '.State.Status == "exited"' 60
sleep 1
expect_eq "... and --restart always does not start it again" "exited 0" \
  "$("${S[@]}" inspect stopped | jq -r '.[0].State | "\(.Status) \(.RestartCount)"')"
expect_eq "... it got its stop signal (its TERM trap exits 0)" 0 "$("${S[@]}" inspect stopped | jq '.[0].State.ExitCode')"

# Its test passes from the second run on (the writable layer is kept across a restart).
"${S[@]}" "${R[@]}" --name restarted --health-cmd 'test -f /ok' --health-retries 2 --health-interval 200ms \
  --health-on-failure restart --stop-timeout 2 sh -c 'echo run; test -f /ran && touch /ok; touch /ran; exec sleep 300' >/dev/null
pid1=$("${S[@]}" inspect restarted | jq '.[0].State.Pid')
check "--health-on-failure restart: it runs again" wait_for restarted ".State.Status == \"running\" and .State.Pid != $pid1" 100
check "... and becomes healthy" wait_for restarted '.State.Health.Status == "healthy"'
expect_eq "... after exactly one restart (its log)" 2 "$("${S[@]}" logs restarted | grep -c '^run$')"
expect_eq "... not counted as a policy restart (docker's RestartCount)" 0 \
  "$("${S[@]}" inspect restarted | jq '.[0].State.RestartCount')"
"${S[@]}" rm -f killed stopped restarted >/dev/null

# --- start and restart by hand --------------------------------------------------------------
"${S[@]}" "${R[@]}" --name again sh -c 'echo "run $(date +%s%N)"; exec sleep 300' >/dev/null
pid1=$("${S[@]}" inspect again | jq '.[0].State.Pid')
"${S[@]}" restart -t 1 again >/dev/null
expect_eq "restart: exit 0 and running" "0 running" "$? $("${S[@]}" inspect again | jq -r '.[0].State.Status')"
check "restart: a new init" test "$("${S[@]}" inspect again | jq '.[0].State.Pid')" != "$pid1"
"${S[@]}" stop -t 1 again >/dev/null
expect_eq "stop" exited "$("${S[@]}" inspect again | jq -r '.[0].State.Status')"
"${S[@]}" start again >/dev/null
expect_eq "start: running again" running "$("${S[@]}" inspect again | jq -r '.[0].State.Status')"
expect_eq "start: the same container (its log has three runs)" 3 "$("${S[@]}" logs again | grep -c '^run ')"
t0=$(date +%s%N)
"${S[@]}" start again >/dev/null
expect_eq "start of a running container is no error (podman)" 0 "$?"
check "... and returns at once" test $((($(date +%s%N) - t0) / 1000000)) -lt 3000
"${S[@]}" rm -f again >/dev/null

# --- bad input: a clear error, exit 125, no container --------------------------------------
bad() {  # bad NAME EXPECTED-MESSAGE FLAGS...
  local name=$1 msg=$2
  shift 2
  local before err code
  before=$("${S[@]}" ps -aq | wc -l)
  err=$("${S[@]}" "${R[@]}" "$@" sleep 1 2>&1)
  code=$?
  expect_eq "$name: exit 125" 125 "$code"
  check "$name: the error says \"$msg\"" grep -qF -- "$msg" <<<"$err"
  expect_eq "$name: no container left" "$before" "$("${S[@]}" ps -aq | wc -l)"
}
bad "interval without a unit" "--health-interval 10: expected a duration" --health-cmd true --health-interval 10
bad "timeout under 1ms" "--health-timeout 10us: must be at least 1ms" --health-cmd true --health-timeout 10us
bad "unknown on-failure action" "--health-on-failure reboot: expected none, kill, restart or stop" \
  --health-cmd true --health-on-failure reboot
bad "negative retries" "--health-retries -2: must not be negative" --health-cmd true --health-retries -2
bad "--no-healthcheck with --health-cmd" "--no-healthcheck conflicts" --no-healthcheck --health-cmd true
bad "a health flag without a check" "need a health check" --health-interval 5s
"${S[@]}" "${R[@]}" --name done --health-cmd true true >/dev/null
wait_for done '.State.Status == "exited"' >/dev/null
err=$("${S[@]}" healthcheck run done 2>&1)
expect_eq "healthcheck run of an exited container: exit 125" 125 "$?"
check "... says it is not running" grep -q "is not running" <<<"$err"
err=$("${S[@]}" healthcheck run nosuch 2>&1)
check "healthcheck run of an unknown container names it" grep -q 'no such container "nosuch"' <<<"$err"
"${S[@]}" rm -f done >/dev/null

# --- nothing left --------------------------------------------------------------------------
expect_eq "no container left" "" "$("${S[@]}" ps -aq)"
expect_eq "no monitor left" "" "$(pgrep -f "strata-monitor.*$work" || true)"
expect_eq "no health check process left" "" "$(pgrep -f "strata --root $work/root healthcheck" || true)"
expect_eq "no mount left" "0" "$(grep -c "$work/root/containers" /proc/self/mountinfo)"

finish
