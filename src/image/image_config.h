// The image configuration (image-spec config.md; Docker's container image v1 JSON, the same
// document): what a container made from the image runs, and the diff_ids of its layers.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "image/manifest.h"

namespace strata::image {

// Largest config body accepted (containers/image uses the same limit).
inline constexpr size_t kMaxConfigBytes = 4 << 20;

struct Healthcheck {
  std::vector<std::string> test;  // ["CMD", ...], ["CMD-SHELL", "..."], ["NONE"]; [] inherits
  int64_t interval_ns = 0, timeout_ns = 0, start_period_ns = 0;  // 0: the default
  int retries = 0;
};

struct ImageConfig {
  std::string architecture, os, variant, created, author;
  std::string user, working_dir, stop_signal;
  std::vector<std::string> env, entrypoint, cmd;
  std::vector<std::string> exposed_ports;  // "80/tcp", "53/udp"; a bare "80" becomes "80/tcp"
  std::vector<std::string> volumes;        // absolute paths
  std::map<std::string, std::string> labels;
  std::optional<Healthcheck> healthcheck;
  std::vector<std::string> diff_ids;  // "sha256:<hex>" of each uncompressed layer, base first
};

// Parses and validates a config: os, architecture and rootfs (type "layers") are required, every
// diff_id is a valid digest, ports and volumes are well formed. Unknown fields are ignored.
Result<ImageConfig> parse_image_config(std::string_view body);

// The config belongs to the manifest: as many diff_ids as layers.
Status check_config_matches(const Manifest& manifest, const ImageConfig& config);

}  // namespace strata::image
