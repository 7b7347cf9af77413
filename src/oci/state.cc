#include "oci/state.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "base/strings.h"

namespace strata::oci {

using nlohmann::json;

std::string_view status_name(ContainerStatus s) {
  switch (s) {
    case ContainerStatus::kCreating:
      return "creating";
    case ContainerStatus::kCreated:
      return "created";
    case ContainerStatus::kRunning:
      return "running";
    case ContainerStatus::kPaused:
      return "paused";
    case ContainerStatus::kStopped:
      return "stopped";
  }
  return "unknown";
}

Status validate_id(std::string_view id) {
  if (id.empty()) return Error("invalid container id: empty");
  if (id.size() > 1024) return Error("invalid container id: longer than 1024 bytes");
  if (id == "." || id == "..") return Error("invalid container id \"" + std::string(id) + "\"");
  // Names starting with '.' are the runtime's own (lock files, the seccomp cache).
  if (id[0] == '.')
    return Error("invalid container id \"" + std::string(id) + "\": it may not start with '.'");
  for (char c : id) {
    bool okc = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
               c == '-' || c == '.' || c == '+';
    if (!okc) {
      return Error("invalid container id \"" + std::string(id) +
                   "\": only letters, digits and _+.- are allowed" + (c == '/' ? " (no '/')" : ""));
    }
  }
  return ok();
}

Status StateStore::ensure_root() const {
  TRY(fs::mkdir_p(root_, 0700));
  return ok();
}

Result<UniqueFd> StateStore::lock(const std::string& id) const {
  std::string path = root_ + "/." + id + ".lock";
  for (;;) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd) return Error::sys("open lock " + path);
    while (::flock(fd.get(), LOCK_EX) != 0) {
      if (errno != EINTR) return Error::sys("lock " + path);
    }
    // remove() unlinks the lock file while holding it; a waiter that then gets the lock holds
    // it on a file nobody else will open. Only the file still at `path` counts: else retry.
    struct stat held {
    }, now{};
    if (::fstat(fd.get(), &held) == 0 && ::stat(path.c_str(), &now) == 0 && held.st_ino == now.st_ino &&
        held.st_dev == now.st_dev)
      return fd;
  }
}

Result<UniqueFd> StateStore::lock_existing(const std::string& id) const {
  TRY(validate_id(id));
  if (!fs::is_dir(dir(id))) return Error("container \"" + id + "\" does not exist", ENOENT);
  return lock(id);
}

static json to_json(const ContainerState& st) {
  json j;
  j["id"] = st.id;
  j["pid"] = st.pid;
  j["pidStartTime"] = st.pid_start_time;
  j["bundle"] = st.bundle;
  j["rootfs"] = st.rootfs;
  j["created"] = st.created;
  j["ownerUid"] = st.owner_uid;
  j["cgroupVersion"] = st.cgroup_version == CgroupVersion::kV2 ? 2 : 1;
  j["cgroupPaths"] = st.cgroup_paths;
  j["cgroupSkipped"] = st.cgroup_skipped;
  j["rootless"] = st.rootless;
  j["annotations"] = st.annotations;
  return j;
}

Status StateStore::save(const ContainerState& st) const {
  return fs::write_file_atomic(dir(st.id) + "/state.json", to_json(st).dump(), 0600);
}

Result<ContainerState> StateStore::load(const std::string& id) const {
  TRY(validate_id(id));
  auto text = fs::read_file(dir(id) + "/state.json");
  if (!text) {
    if (text.error().err() == ENOENT) return Error("container \"" + id + "\" does not exist", ENOENT);
    return std::move(text).error();
  }
  try {
    json j = json::parse(*text);
    ContainerState st;
    st.id = j.at("id").get<std::string>();
    st.pid = j.at("pid").get<pid_t>();
    st.pid_start_time = j.at("pidStartTime").get<uint64_t>();
    st.bundle = j.at("bundle").get<std::string>();
    st.rootfs = j.at("rootfs").get<std::string>();
    st.created = j.at("created").get<std::string>();
    st.owner_uid = j.at("ownerUid").get<uint32_t>();
    st.cgroup_version = j.at("cgroupVersion").get<int>() == 2 ? CgroupVersion::kV2 : CgroupVersion::kV1;
    st.cgroup_paths = j.at("cgroupPaths").get<std::map<std::string, std::string>>();
    st.cgroup_skipped = j.at("cgroupSkipped").get<bool>();
    st.rootless = j.at("rootless").get<bool>();
    st.annotations = j.at("annotations").get<std::map<std::string, std::string>>();
    return st;
  } catch (const json::exception& e) {
    return Error("read state of container \"" + id + "\": corrupt state.json: " + e.what());
  }
}

Status StateStore::save_config(const std::string& id, const std::string& config_json) const {
  return fs::write_file_atomic(dir(id) + "/config.json", config_json, 0600);
}

Result<std::string> StateStore::load_config(const std::string& id) const {
  return fs::read_file(dir(id) + "/config.json");
}

bool StateStore::exists(const std::string& id) const { return fs::exists(dir(id) + "/state.json"); }

std::vector<std::string> StateStore::list() const {
  std::vector<std::string> out;
  for (auto& name : fs::list_dir(root_)) {
    if (!name.empty() && name[0] != '.' && fs::is_dir(dir(name))) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Status StateStore::remove(const std::string& id) const {
  TRY(fs::remove_tree(dir(id)));
  ::unlink((root_ + "/." + id + ".lock").c_str());
  return ok();
}

uint64_t process_start_time(pid_t pid) {
  if (pid <= 0) return 0;
  auto text = fs::read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!text) return 0;
  // comm (field 2) may contain spaces and parentheses: fields after the last ')' are fixed.
  size_t rp = text->rfind(')');
  if (rp == std::string::npos) return 0;
  auto fields = str::split(str::trim(std::string_view(*text).substr(rp + 2)), ' ');
  // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
  if (fields.size() < 20) return 0;
  if (fields[0] == "Z" || fields[0] == "X") return 0;  // a zombie has stopped
  return str::parse_uint(fields[19]).value_or(0);
}

ContainerStatus current_status(const StateStore& store, const ContainerState& st) {
  if (st.pid <= 0) return ContainerStatus::kStopped;
  uint64_t start = process_start_time(st.pid);
  if (start == 0 || start != st.pid_start_time) return ContainerStatus::kStopped;
  if (fs::exists(store.fifo_path(st.id))) return ContainerStatus::kCreated;
  if (!st.cgroup_skipped && !st.cgroup_paths.empty()) {
    auto cg = open_cgroup_manager(st.cgroup_version, st.cgroup_paths, st.cgroup_skipped);
    auto frozen = cg->frozen();
    if (frozen.ok() && *frozen) return ContainerStatus::kPaused;
  }
  return ContainerStatus::kRunning;
}

std::string state_json(const ContainerState& st, ContainerStatus status, bool pretty) {
  json j;
  j["ociVersion"] = "1.1.0";
  j["id"] = st.id;
  j["pid"] = status == ContainerStatus::kStopped ? 0 : st.pid;
  j["status"] = std::string(status_name(status));
  j["bundle"] = st.bundle;
  j["rootfs"] = st.rootfs;
  j["created"] = st.created;
  j["owner"] = "";
  if (!st.annotations.empty()) j["annotations"] = st.annotations;
  return pretty ? j.dump(2) : j.dump();
}

}  // namespace strata::oci
