// `strata logs` (podman's k8s-file format, written by strata-monitor) and `strata stats`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "sandbox/record.h"

namespace strata::cli {

struct LogOptions {
  bool follow = false;
  bool timestamps = false;
  int64_t tail = -1;  // lines from the end; -1 all
  // Only lines written in [since, until] (nanoseconds since the epoch; --since/--until).
  std::optional<int64_t> since_ns, until_ns;
};

// stdout lines to stdout, stderr lines to stderr; with follow, until the container has exited.
Status print_logs(const sandbox::ContainerStore& store, const std::string& id, const LogOptions& opts);

struct StatsOptions {
  std::string format;     // table (default) or json
  bool stream = true;     // podman's default: a new sample every interval until interrupted
  int interval_ms = 1000;
};
// Per container: CPU % (over the last interval; the first sample and --no-stream: the average
// since start), memory usage/limit, pids. Streaming ends when every named container has stopped.
int print_stats(const std::string& root, const std::vector<std::string>& keys, const StatsOptions& opts);

}  // namespace strata::cli
