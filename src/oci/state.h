// The on-disk record of a created container under --root (default /run/strata-runtime):
//   <root>/<id>/state.json   what `state`, `kill`, `delete`, `exec` need, written atomically
//   <root>/<id>/config.json  the validated config as created (exec and hooks use it)
//   <root>/<id>/exec.fifo    present while the container waits for `start`
// Concurrent invocations serialise on flock(2) of <root>/<id>.lock (STYLE.md section 4: what
// outlives the process is recorded, so `delete` can clean after a kill -9).
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "oci/cgroup.h"

namespace strata::oci {

enum class ContainerStatus { kCreating, kCreated, kRunning, kPaused, kStopped };
std::string_view status_name(ContainerStatus s);

struct ContainerState {
  std::string id;
  pid_t pid = 0;
  uint64_t pid_start_time = 0;  // field 22 of /proc/<pid>/stat: guards against pid reuse
  std::string bundle;
  std::string rootfs;
  std::string created;  // RFC 3339
  uint32_t owner_uid = 0;
  CgroupVersion cgroup_version = CgroupVersion::kV1;
  std::map<std::string, std::string> cgroup_paths;
  bool cgroup_skipped = false;
  bool rootless = false;
  std::map<std::string, std::string> annotations;
};

// Checks a container id: non-empty, at most 1024 bytes, only [A-Za-z0-9_+.-], not "." or "..".
Status validate_id(std::string_view id);

class StateStore {
 public:
  explicit StateStore(std::string root) : root_(std::move(root)) {}
  const std::string& root() const { return root_; }
  std::string dir(const std::string& id) const { return root_ + "/" + id; }
  std::string fifo_path(const std::string& id) const { return dir(id) + "/exec.fifo"; }

  // Creates <root> (0700) if needed.
  Status ensure_root() const;
  // Takes the per-container lock (blocking). The lock file lives beside the state dir so it
  // can be taken before the dir exists and kept while it is removed.
  Result<UniqueFd> lock(const std::string& id) const;
  // lock() for commands on an existing container: checks the id and refuses (ENOENT) an unknown
  // one before creating a lock file, so that asking about it leaves nothing under the root.
  Result<UniqueFd> lock_existing(const std::string& id) const;
  Status save(const ContainerState& st) const;
  Result<ContainerState> load(const std::string& id) const;
  Status save_config(const std::string& id, const std::string& config_json) const;
  Result<std::string> load_config(const std::string& id) const;
  bool exists(const std::string& id) const;
  std::vector<std::string> list() const;
  // Removes the state dir and the lock file.
  Status remove(const std::string& id) const;

 private:
  std::string root_;
};

// Start time of a process (clock ticks since boot), 0 if it does not exist.
uint64_t process_start_time(pid_t pid);
// Derives the status: alive and matching start time, fifo present -> created, frozen -> paused.
ContainerStatus current_status(const StateStore& store, const ContainerState& st);
// The runtime-spec state JSON (with runc's extra rootfs/created/owner fields).
std::string state_json(const ContainerState& st, ContainerStatus status, bool pretty);

}  // namespace strata::oci
