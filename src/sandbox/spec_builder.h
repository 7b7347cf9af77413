// ContainerRecord -> OCI config.json: what `strata run` asks the runtime library for. The
// defaults are podman's for a rootful container: the OCI default capabilities, the default
// seccomp profile, new pid/ipc/uts/mount/network namespaces, masked and read-only /proc paths,
// /etc/hosts, /etc/resolv.conf and /etc/hostname bound from the container's directory.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "sandbox/record.h"
#include "sandbox/users.h"

namespace strata::sandbox {

struct SpecPaths {
  std::string container_dir;  // holds hosts, resolv.conf, hostname
  uint32_t uid = 0;           // the process's user, resolved against the image
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids;
};

// Capabilities after --cap-add/--cap-drop ("NET_ADMIN", "CAP_NET_ADMIN", "ALL"); errors name
// an unknown capability.
Result<std::vector<std::string>> effective_capabilities(const std::vector<std::string>& add,
                                                        const std::vector<std::string>& drop);

Result<std::string> build_spec(const ContainerRecord& rec, const SpecPaths& paths);

}  // namespace strata::sandbox
