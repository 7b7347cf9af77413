#include "sandbox/record.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <stdexcept>

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

// The record is written by strata only, but a damaged one (an older strata's, a disk error, a
// hand edit) is reported, never trusted blindly: each field must have its type, or the read
// stops with the field's name ("config.cpus: type must be number, but is null").
class FieldError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <class T>
void get_to(const Json& j, const char* key, T& out, const char* where = "") {
  auto it = j.find(key);
  if (it == j.end()) return;
  try {
    out = it->get<T>();
  } catch (const Json::exception& e) {
    throw FieldError(std::string(where) + key + ": " + e.what());
  }
}

template <class T>
void get_to(const Json& j, const char* key, std::optional<T>& out, const char* where = "") {
  if (!j.contains(key)) return;
  T v{};
  get_to(j, key, v, where);
  out = v;
}

ContainerConfig config_from(const Json& j) {
  if (!j.is_object()) throw FieldError("config: not an object");
  ContainerConfig c;
  const char* w = "config.";
  get_to(j, "image", c.image, w);
  get_to(j, "image_digest", c.image_digest, w);
  get_to(j, "layers", c.layers, w);
  get_to(j, "rootfs", c.rootfs, w);
  get_to(j, "args", c.args, w);
  get_to(j, "env", c.env, w);
  get_to(j, "cwd", c.cwd, w);
  get_to(j, "user", c.user, w);
  get_to(j, "hostname", c.hostname, w);
  get_to(j, "tty", c.tty, w);
  get_to(j, "interactive", c.interactive, w);
  get_to(j, "read_only", c.read_only, w);
  get_to(j, "cap_add", c.cap_add, w);
  get_to(j, "cap_drop", c.cap_drop, w);
  get_to(j, "network", c.network, w);
  Json ports = Json::array(), vols = Json::array();
  get_to(j, "ports", ports, w);
  for (const auto& p : ports) {
    PublishedPort pp;
    get_to(p, "host_ip", pp.host_ip, "config.ports[].");
    get_to(p, "host_port", pp.host_port, "config.ports[].");
    get_to(p, "container_port", pp.container_port, "config.ports[].");
    get_to(p, "proto", pp.proto, "config.ports[].");
    c.ports.push_back(pp);
  }
  get_to(j, "volumes", vols, w);
  for (const auto& v : vols) {
    VolumeMount m;
    get_to(v, "source", m.source, "config.volumes[].");
    get_to(v, "destination", m.destination, "config.volumes[].");
    get_to(v, "readonly", m.readonly, "config.volumes[].");
    get_to(v, "anonymous", m.anonymous, "config.volumes[].");
    c.volumes.push_back(m);
  }
  get_to(j, "restart", c.restart, w);
  get_to(j, "remove", c.remove, w);
  get_to(j, "stop_signal", c.stop_signal, w);
  get_to(j, "stop_timeout", c.stop_timeout_s, w);
  get_to(j, "labels", c.labels, w);
  get_to(j, "memory", c.memory, w);
  get_to(j, "cpus", c.cpus, w);
  get_to(j, "pids_limit", c.pids_limit, w);
  if (j.contains("health")) {
    const Json& h = j["health"];
    HealthConfig hc;
    const char* hw = "config.health.";
    get_to(h, "test", hc.test, hw);
    get_to(h, "interval_ns", hc.interval_ns, hw);
    get_to(h, "timeout_ns", hc.timeout_ns, hw);
    get_to(h, "start_period_ns", hc.start_period_ns, hw);
    get_to(h, "retries", hc.retries, hw);
    get_to(h, "on_failure", hc.on_failure, hw);
    c.health = std::move(hc);
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
  ContainerRecord r;
  r.id = id;
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    // Nothing can be trusted: assume everything was set up, so that rm -f tries it all.
    r.damaged = "its record " + path + " is damaged: not a JSON object";
    r.name = name_of(id);
    r.rootfs_mounted = r.oci_created = true;
    return r;
  }
  // What undoes the container first: the lifecycle fields, each on its own, so that one bad
  // field elsewhere still leaves teardown what it needs.
  auto field = [&](auto&& read) {
    try {
      read();
    } catch (const FieldError& e) {
      if (r.damaged.empty()) r.damaged = "its record " + path + " is damaged: " + e.what();
    }
  };
  field([&] { get_to(j, "name", r.name); });
  field([&] { get_to(j, "created", r.created); });
  field([&] { get_to(j, "rootfs_mounted", r.rootfs_mounted); });
  field([&] { get_to(j, "oci_created", r.oci_created); });
  field([&] { get_to(j, "network_attached", r.network_attached); });
  field([&] { get_to(j, "ip", r.ip); });
  field([&] { get_to(j, "pid", r.pid); });
  field([&] { get_to(j, "monitor_pid", r.monitor_pid); });
  field([&] { get_to(j, "monitor_start_time", r.monitor_start_time); });
  field([&] { get_to(j, "started", r.started); });
  field([&] { get_to(j, "restart_count", r.restart_count); });
  std::string stored_id;
  field([&] { get_to(j, "id", stored_id); });
  if (stored_id != id && r.damaged.empty())
    r.damaged = "its record " + path + " is damaged: id " + stored_id.substr(0, 64);
  try {
    r.config = config_from(j.value("config", Json::object()));
  } catch (const FieldError& e) {
    if (r.damaged.empty()) r.damaged = "its record " + path + " is damaged: " + e.what();
    // The layers it runs on stay in use (rmi and prune keep them) when they can be read.
    r.config = ContainerConfig{};
    try {
      get_to(j.value("config", Json::object()), "layers", r.config.layers);
    } catch (const FieldError&) {
    }
  }
  if (r.name.empty() || !validate_name(r.name).ok()) {
    if (r.damaged.empty()) r.damaged = "its record " + path + " is damaged: no valid name";
    r.name = name_of(id);
  }
  if (!r.damaged.empty()) {
    // Assume set up what the record could not say; teardown checks before it undoes.
    r.rootfs_mounted = true;
    r.oci_created = true;
  }
  return r;
}

std::string ContainerStore::name_of(const std::string& id) const {
  for (const auto& n : fs::list_dir(root_ + "/containers/names")) {
    auto holder = fs::read_file(root_ + "/containers/names/" + n, 256);
    if (holder && str::trim(*holder) == id) return n;
  }
  return id.substr(0, 12);
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
