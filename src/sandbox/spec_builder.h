// ContainerRecord -> OCI config.json: what `strata run` asks the runtime library for. The
// defaults are podman's for a rootful container: the OCI default capabilities, the default
// seccomp profile, new pid/ipc/uts/mount/network namespaces, masked and read-only /proc paths,
// /etc/hosts, /etc/resolv.conf and /etc/hostname bound from the container's directory.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "sandbox/record.h"

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

// Resolves a --user / image User value ("1000", "1000:1000", "nobody", "www-data:www-data")
// against the container's /etc/passwd and /etc/group under `rootfs`.
struct ResolvedUser {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids;
  std::string home = "/";
};
Result<ResolvedUser> resolve_user(const std::string& rootfs, const std::string& user);

}  // namespace strata::sandbox
