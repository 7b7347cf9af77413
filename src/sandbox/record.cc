#include "sandbox/record.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "base/strings.h"
#include "oci/state.h"

namespace strata::sandbox {

using Json = nlohmann::json;

namespace {

Json port_json(const PublishedPort& p) {
  return {{"host_ip", p.host_ip},
          {"host_port", p.host_port},
          {"container_port", p.container_port},
          {"proto", p.proto}};
}

Json config_json(const ContainerConfig& c) {
  Json ports = Json::array();
  for (const auto& p : c.ports) ports.push_back(port_json(p));
  Json vols = Json::array();
  for (const auto& v : c.volumes)
    vols.push_back({{"source", v.source},
                    {"destination", v.destination},
                    {"readonly", v.readonly},
                    {"anonymous", v.anonymous}});
  Json j = {{"image", c.image},
            {"image_digest", c.image_digest},
            {"layers", c.layers},
            {"rootfs", c.rootfs},
            {"args", c.args},
            {"env", c.env},
            {"cwd", c.cwd},
            {"user", c.user},
            {"hostname", c.hostname},
            {"tty", c.tty},
            {"interactive", c.interactive},
            {"read_only", c.read_only},
            {"cap_add", c.cap_add},
            {"cap_drop", c.cap_drop},
            {"network", c.network},
            {"ports", ports},
            {"volumes", vols},
            {"restart", c.restart},
            {"remove", c.remove},
            {"stop_signal", c.stop_signal},
            {"stop_timeout", c.stop_timeout_s},
            {"labels", c.labels}};
  if (c.memory) j["memory"] = *c.memory;
  if (c.cpus) j["cpus"] = *c.cpus;
  if (c.pids_limit) j["pids_limit"] = *c.pids_limit;
  if (c.health) {
    j["health"] = {{"test", c.health->test},
                   {"interval_ns", c.health->interval_ns},
                   {"timeout_ns", c.health->timeout_ns},
                   {"start_period_ns", c.health->start_period_ns},
                   {"retries", c.health->retries},
                   {"on_failure", c.health->on_failure}};
  }
  return j;
}

// The record is written by strata only; a damaged one is reported, never trusted blindly.
ContainerConfig config_from(const Json& j) {
  ContainerConfig c;
  c.image = j.value("image", "");
  c.image_digest = j.value("image_digest", "");
  c.layers = j.value("layers", std::vector<std::string>{});
  c.rootfs = j.value("rootfs", "");
  c.args = j.value("args", std::vector<std::string>{});
  c.env = j.value("env", std::vector<std::string>{});
  c.cwd = j.value("cwd", "/");
  c.user = j.value("user", "");
  c.hostname = j.value("hostname", "");
  c.tty = j.value("tty", false);
  c.interactive = j.value("interactive", false);
  c.read_only = j.value("read_only", false);
  c.cap_add = j.value("cap_add", std::vector<std::string>{});
  c.cap_drop = j.value("cap_drop", std::vector<std::string>{});
  c.network = j.value("network", "bridge");
  for (const auto& p : j.value("ports", Json::array())) {
    c.ports.push_back({p.value("host_ip", ""), p.value("host_port", uint16_t{0}),
                       p.value("container_port", uint16_t{0}), p.value("proto", "tcp")});
  }
  for (const auto& v : j.value("volumes", Json::array())) {
    c.volumes.push_back({v.value("source", ""), v.value("destination", ""), v.value("readonly", false),
                         v.value("anonymous", false)});
  }
  c.restart = j.value("restart", "no");
  c.remove = j.value("remove", false);
  c.stop_signal = j.value("stop_signal", "SIGTERM");
  c.stop_timeout_s = j.value("stop_timeout", 10);
  c.labels = j.value("labels", std::map<std::string, std::string>{});
  if (j.contains("memory")) c.memory = j["memory"].get<int64_t>();
  if (j.contains("cpus")) c.cpus = j["cpus"].get<double>();
  if (j.contains("pids_limit")) c.pids_limit = j["pids_limit"].get<int64_t>();
  if (j.contains("health")) {
    const Json& h = j["health"];
    c.health = HealthConfig{h.value("test", std::vector<std::string>{}),
                            h.value("interval_ns", int64_t{0}),
                            h.value("timeout_ns", int64_t{0}),
                            h.value("start_period_ns", int64_t{0}),
                            h.value("retries", 0),
                            h.value("on_failure", "none")};
  }
  return c;
}

}  // namespace

Result<ContainerStore> ContainerStore::open(const std::string& root) {
  ContainerStore s;
  s.root_ = fs::absolute(root);
  // The runtime state of the containers of one store root: kept apart per root, so that a test
  // store and the user's store never see each other's containers.
  s.oci_root_ = s.root_ == "/var/lib/strata" ? "/run/strata/oci" : s.root_ + "/oci";
  TRY_CTX(fs::mkdir_p(s.root_ + "/containers/names", 0700), "open container store " + s.root_);
  TRY_CTX(fs::mkdir_p(s.oci_root_, 0700), "open container store " + s.root_);
  return s;
}

Status ContainerStore::reserve_name(const std::string& name, const std::string& id) const {
  std::string path = root_ + "/containers/names/" + name;
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) {
    if (errno == EEXIST) {
      auto other = fs::read_file(path);
      std::string holder = other ? std::string(str::trim(*other)) : std::string("?");
      return Error("the container name \"" + name + "\" is already in use by container " +
                   holder.substr(0, 12) + "; remove it (strata rm) or choose another --name");
    }
    return Error::sys("reserve container name " + path);
  }
  if (::write(fd.get(), id.data(), id.size()) != static_cast<ssize_t>(id.size())) {
    int err = errno;
    ::unlink(path.c_str());
    return Error::sys("reserve container name " + path, err);
  }
  return ok();
}

void ContainerStore::release_name(const std::string& name, const std::string& id) const {
  std::string path = root_ + "/containers/names/" + name;
  auto holder = fs::read_file(path);
  if (holder && str::trim(*holder) == id) ::unlink(path.c_str());
}

Result<UniqueFd> ContainerStore::lock(const std::string& id) const {
  std::string path = root_ + "/containers/" + id + ".lock";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return Error::sys("open lock " + path);
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return Error::sys("lock " + path);
  }
  return fd;
}

Status ContainerStore::save(const ContainerRecord& r) const {
  Json j = {{"id", r.id},
            {"name", r.name},
            {"created", r.created},
            {"config", config_json(r.config)},
            {"rootfs_mounted", r.rootfs_mounted},
            {"oci_created", r.oci_created},
            {"network_attached", r.network_attached},
            {"ip", r.ip},
            {"pid", r.pid},
            {"monitor_pid", r.monitor_pid},
            {"monitor_start_time", r.monitor_start_time},
            {"started", r.started},
            {"restart_count", r.restart_count}};
  // Not fsynced: a container does not outlive a reboot (its mounts and processes are gone), and
  // after a crash the record is only needed to clean up, which a stale copy does as well.
  return fs::write_file_atomic(dir(r.id) + "/container.json", j.dump(1) + "\n", 0600);
}

Result<ContainerRecord> ContainerStore::load(const std::string& id) const {
  std::string path = dir(id) + "/container.json";
  ASSIGN_OR_RETURN(std::string text, fs::read_file(path));
  try {
    Json j = Json::parse(text);
    ContainerRecord r;
    r.id = j.at("id").get<std::string>();
    r.name = j.at("name").get<std::string>();
    r.created = j.value("created", "");
    r.config = config_from(j.at("config"));
    r.rootfs_mounted = j.value("rootfs_mounted", false);
    r.oci_created = j.value("oci_created", false);
    r.network_attached = j.value("network_attached", "");
    r.ip = j.value("ip", "");
    r.pid = j.value("pid", 0);
    r.monitor_pid = j.value("monitor_pid", 0);
    r.monitor_start_time = j.value("monitor_start_time", uint64_t{0});
    r.started = j.value("started", "");
    r.restart_count = j.value("restart_count", 0);
    return r;
  } catch (const std::exception& e) {
    return Error("container record " + path + " is damaged: " + e.what());
  }
}

std::vector<std::string> ContainerStore::list_ids() const {
  std::vector<std::string> ids;
  for (auto& name : fs::list_dir(root_ + "/containers")) {
    if (name.size() == 64 && fs::exists(dir(name) + "/container.json")) ids.push_back(name);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

Result<std::string> ContainerStore::resolve(const std::string& key) const {
  if (key.empty()) return Error("empty container name or id");
  if (key.find('/') == std::string::npos && key != "." && key != "..") {
    auto holder = fs::read_file(root_ + "/containers/names/" + key);
    if (holder) {
      std::string id(str::trim(*holder));
      if (fs::exists(dir(id) + "/container.json")) return id;
    }
  }
  std::string match;
  if (key.size() >= 3) {
    for (const auto& id : list_ids()) {
      if (id.compare(0, key.size(), key) != 0) continue;
      if (!match.empty()) return Error("container id prefix \"" + key + "\" is ambiguous", EINVAL);
      match = id;
    }
  }
  if (match.empty()) return Error("no such container \"" + key + "\"", ENOENT);
  return match;
}

Status ContainerStore::remove(const ContainerRecord& r) const {
  TRY_CTX(fs::remove_tree(dir(r.id)), "remove container " + r.id);
  release_name(r.name, r.id);
  ::unlink((root_ + "/containers/" + r.id + ".lock").c_str());
  return ok();
}

std::optional<ExitInfo> ContainerStore::exit_info(const std::string& id) const {
  auto text = fs::read_file(dir(id) + "/exit");
  if (!text) return std::nullopt;
  auto parts = str::split(str::trim(*text), ' ');
  if (parts.empty()) return std::nullopt;
  ExitInfo e;
  auto code = str::parse_int(parts[0]);
  if (!code) return std::nullopt;
  e.code = static_cast<int>(*code);
  if (parts.size() > 1) e.finished_ns = str::parse_int(parts[1]).value_or(0);
  return e;
}

bool ContainerStore::monitor_alive(const ContainerRecord& r) const {
  if (r.monitor_pid == 0) return false;
  uint64_t start = oci::process_start_time(r.monitor_pid);  // 0: gone (or a zombie)
  return start != 0 && start == r.monitor_start_time;
}

RunState ContainerStore::state(const ContainerRecord& r) const {
  if (exit_info(r.id)) return RunState::kExited;
  if (r.monitor_pid == 0) return RunState::kCreated;
  if (monitor_alive(r)) return RunState::kRunning;
  // The monitor was killed (kill -9): the container's init may still run, as the runtime's
  // state tells (its pid and start time).
  if (r.oci_created) {
    auto st = oci::StateStore(oci_root_).load(r.id);
    if (st && st->pid > 0 && oci::process_start_time(st->pid) == st->pid_start_time)
      return RunState::kRunning;
  }
  return RunState::kExited;
}

std::string_view state_name(RunState s) {
  switch (s) {
    case RunState::kCreated:
      return "created";
    case RunState::kRunning:
      return "running";
    case RunState::kExited:
      return "exited";
  }
  return "unknown";
}

std::string new_container_id() {
  unsigned char b[32];
  size_t got = 0;
  while (got < sizeof b) {
    ssize_t n = ::getrandom(b + got, sizeof b - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (unsigned char c : b) {
    id += kHex[c >> 4];
    id += kHex[c & 0xf];
  }
  return id;
}

std::string random_name() {
  static constexpr const char* kAdj[] = {"brave", "calm",  "eager", "fancy", "gentle", "happy",
                                         "jolly", "keen",  "lucid", "merry", "nimble", "proud",
                                         "quiet", "swift", "tidy",  "vivid"};
  static constexpr const char* kNoun[] = {"otter", "falcon", "badger", "heron", "lynx",  "marten",
                                          "newt",  "owl",    "panda",  "quail", "raven", "seal",
                                          "tapir", "viper",  "wren",   "yak"};
  unsigned char b[3];
  while (::getrandom(b, sizeof b, 0) != static_cast<ssize_t>(sizeof b)) {
  }
  return std::string("strata_") + kAdj[b[0] % 16] + "_" + kNoun[b[1] % 16] + "_" + std::to_string(b[2] % 100);
}

Status validate_name(std::string_view name) {
  auto word = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  bool good = !name.empty() && name.size() <= 128 && word(name[0]);
  for (char c : name) good = good && (word(c) || c == '_' || c == '.' || c == '-');
  if (!good) {
    return Error("invalid container name \"" + std::string(name) +
                 "\": use letters, digits, '_', '.' and '-', starting with a letter or digit (at most 128)");
  }
  return ok();
}

}  // namespace strata::sandbox
