// Health checks of `strata run` containers, with docker's semantics (the image config's
// Healthcheck, `--health-*` flags as docker and podman take them, State.Health in inspect):
//  - the test runs inside the running container, through the src/oci exec path, every
//    interval (strata-monitor's timer runs `strata healthcheck run ID`), killed after timeout;
//  - its exit code 0 is healthy; any other, a timeout or a failed exec counts as a failure;
//  - a container is "starting" until its first success, "healthy" after one, "unhealthy" after
//    `retries` failures in a row; failures within the start period do not count while it is
//    still starting;
//  - the last five results (start, end, exit code, first 4 KiB of output) are kept;
//  - on turning unhealthy, podman's --health-on-failure action: none, kill, stop or restart.
// State lives in <container dir>/health.json, reset to "starting" at every start, updated under
// <container dir>/health.lock (a check by hand and the timer's may run at once).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "image/image_config.h"
#include "sandbox/record.h"

namespace strata::sandbox {

// docker's defaults (daemon/health.go) and limits.
inline constexpr int64_t kDefaultHealthIntervalNs = 30'000'000'000;
inline constexpr int64_t kDefaultHealthTimeoutNs = 30'000'000'000;
inline constexpr int kDefaultHealthRetries = 3;
inline constexpr int64_t kMinHealthDurationNs = 1'000'000;  // 1 ms
inline constexpr size_t kHealthLogEntries = 5;
inline constexpr size_t kHealthOutputBytes = 4096;

// The --health-* flags of `strata run` as typed; an unset one takes the image's value.
struct HealthFlags {
  std::optional<std::string> cmd;           // a shell command, a JSON array, or "none"
  std::optional<std::string> interval;      // Go duration, or "disable" (no timer)
  std::optional<std::string> timeout;       // Go duration
  std::optional<std::string> start_period;  // Go duration
  std::optional<int> retries;
  std::optional<std::string> on_failure;  // none | kill | restart | stop
  bool none = false;                      // --no-healthcheck
};

// The image's Healthcheck with the flags applied, defaults filled in; nullopt when the
// container has no health check (none in the image, ["NONE"], --no-healthcheck, --health-cmd
// none). Every bad value is an error naming its flag (or the image field).
Result<std::optional<HealthConfig>> resolve_health(const std::optional<image::Healthcheck>& image,
                                                   const HealthFlags& flags);

// What runs in the container: {"CMD", p, a...} runs p a..., {"CMD-SHELL", c} runs /bin/sh -c c.
std::vector<std::string> health_argv(const HealthConfig& h);

struct HealthResult {
  std::string start, end;  // RFC 3339 with nanoseconds
  int exit_code = 0;       // -1: the test could not run or timed out
  std::string output;      // stdout and stderr, at most kHealthOutputBytes
};

struct HealthState {
  std::string status = "starting";  // starting | healthy | unhealthy
  int failing_streak = 0;
  std::vector<HealthResult> log;  // oldest first, at most kHealthLogEntries
};

// Folds one result into the state (docker's rules); in_start_period: the container started
// less than start_period ago.
void record_health_result(HealthState& state, const HealthConfig& config, HealthResult result,
                          bool in_start_period);

std::string health_state_json(const HealthState& s);
Result<HealthState> parse_health_state(const std::string& text);

// The state file of a container; nullopt when it has none (no health check, or never started).
std::optional<HealthState> load_health(const ContainerStore& store, const std::string& id);
// Written at each start of a container that has a health check.
Status reset_health(const ContainerStore& store, const std::string& id);

// `strata healthcheck run`: runs the test once in the running container, records the result,
// and applies the on-failure action when the container is (now) unhealthy. Returns the state.
// An error (no health check, not running) records nothing.
Result<HealthState> run_health_check(const ContainerStore& store, const std::string& id);

}  // namespace strata::sandbox
