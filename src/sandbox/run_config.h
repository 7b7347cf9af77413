// An image's configuration merged with what the user asked for, as docker does: the
// ContainerConfig of `strata run` (and, later, of a pod's container). The caller turns its flags
// into typed values first (ports, volumes, the environment with KEY-only entries resolved); the
// merge and every check of the result live here, so that a hostile image config meets the same
// checks whoever starts the container, and the whole path is fuzzed (tests/sandbox/fuzz).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "image/image_config.h"
#include "sandbox/health.h"
#include "sandbox/record.h"

namespace strata::sandbox {

struct RunRequest {
  std::vector<std::string> command;       // replaces the image's Cmd when not empty
  std::optional<std::string> entrypoint;  // replaces the image's Entrypoint (and drops its Cmd)
  std::vector<std::string> env;           // NAME=VALUE, applied over the image's Env in order
  std::string workdir, user, hostname, network = "bridge";
  bool tty = false, interactive = false, read_only = false, remove = false;
  std::vector<std::string> cap_add, cap_drop;
  std::optional<int64_t> memory;
  std::optional<double> cpus;
  std::optional<int64_t> pids_limit;
  std::vector<PublishedPort> ports;
  std::vector<VolumeMount> volumes;  // -v and --mount
  std::string restart = "no";
  std::string stop_signal;
  std::optional<int> stop_timeout_s;
  std::map<std::string, std::string> labels;
  HealthFlags health;
};

// The image's defaults (nullptr: --rootfs, a bare directory) with the request applied. Image
// name, digest and layers are the caller's to fill in. The result has passed check_config().
Result<ContainerConfig> make_container_config(const image::ImageConfig* image, const RunRequest& req);

}  // namespace strata::sandbox
