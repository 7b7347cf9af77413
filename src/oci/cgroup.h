// Cgroup management behind one interface with two backends (STYLE.md section 3):
// cgroup v1 (one hierarchy per controller, as on the hybrid layout of our machines) and
// cgroup v2 (one unified hierarchy; devices through a BPF program). The backend is chosen at
// run time from the filesystem type of the cgroup root.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "oci/spec.h"

namespace strata::oci {

enum class CgroupVersion { kV1, kV2 };

// cgroup2 at <root> (statfs magic) -> kV2; otherwise kV1. Default root /sys/fs/cgroup.
CgroupVersion detect_cgroup_version(const std::string& root = "/sys/fs/cgroup");

struct CgroupConfig {
  std::string root = "/sys/fs/cgroup";  // where hierarchies are mounted (tests use a tmpdir)
  // linux.cgroupsPath, or empty for the default "/strata/<id>". A relative path is taken
  // relative to the runtime's own cgroup, as runc does.
  std::string cgroups_path;
  std::string id;
  // Rootless: failure to create the cgroup (EACCES/EPERM/EROFS) is not an error; the manager
  // then does nothing and reports skipped() == true.
  bool rootless = false;
  // For tests only: use this backend instead of detecting it from the filesystem type of root
  // (a tmpdir standing in for a cgroup2 mount is not one).
  std::optional<CgroupVersion> force_version;
};

struct CgroupStats {
  uint64_t memory_usage = 0, memory_limit = 0;
  uint64_t cpu_usage_ns = 0;
  uint64_t pids_current = 0, pids_limit = 0;
};

class CgroupManager {
 public:
  virtual ~CgroupManager() = default;

  virtual CgroupVersion version() const = 0;
  // Creates the cgroup directories (v1: in each controller hierarchy). Idempotent.
  virtual Status create() = 0;
  // Writes resource limits; used by create and by `update`. Fields absent are left alone.
  virtual Status apply(const Resources& res) = 0;
  virtual Status add_process(pid_t pid) = 0;
  virtual Status freeze() = 0;
  virtual Status thaw() = 0;
  virtual Result<bool> frozen() = 0;
  virtual Result<std::vector<pid_t>> pids() = 0;
  // Sends sig to every process in the cgroup (freezing around it so that none escapes by forking).
  virtual Status kill_all(int sig) = 0;
  // Removes the directories; waits (bounded) for processes to leave. Missing dirs are fine.
  virtual Status destroy() = 0;
  virtual Result<CgroupStats> stats() = 0;
  // Where the container's cgroup is, per controller for v1 ("memory" -> "/sys/fs/cgroup/memory/strata/x"),
  // "" -> path for v2. Persisted in state.json so that later invocations can reopen it.
  virtual std::map<std::string, std::string> paths() const = 0;
  // True when a rootless manager could not create its cgroup and does nothing.
  virtual bool skipped() const = 0;
};

// A manager for a new container. Does not touch the filesystem until create().
Result<std::unique_ptr<CgroupManager>> make_cgroup_manager(const CgroupConfig& cfg);
// A manager for an existing container from paths() saved in its state.
std::unique_ptr<CgroupManager> open_cgroup_manager(CgroupVersion v, const std::map<std::string, std::string>& paths,
                                                   bool skipped);

}  // namespace strata::oci
