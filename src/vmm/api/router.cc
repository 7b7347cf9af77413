// Firecracker's request routing and rules; see router.h. The order of checks follows
// Firecracker's: path and id, then the body, then whether the call is allowed in the current
// state, then the action, so that clients see the same fault for the same mistake.
#include "vmm/api/router.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "base/log.h"

namespace strata::vmm::api {

using nlohmann::json;

namespace {

constexpr std::string_view kDeserializePrefix =
    "An error occurred when deserializing the json body of a request: ";
constexpr std::string_view kNotPostBoot =
    "The requested operation is not supported after starting the microVM.";
constexpr std::string_view kNotPreBoot =
    "The requested operation is not supported before starting the microVM.";

ApiResponse fault(std::string_view message, unsigned status = 400) {
  return ApiResponse{status, fault_body(message)};
}
ApiResponse no_content() { return ApiResponse{204, ""}; }
ApiResponse ok_json(const json& j) {
  return ApiResponse{200, j.dump(-1, ' ', false, json::error_handler_t::replace)};
}

ApiResponse invalid_path(std::string_view method, std::string_view path) {
  return fault("Invalid request method and/or path: " + std::string(method) + " " +
               std::string(path) + ".");
}

// serde's errors end without a period; Firecracker's format adds one.
ApiResponse bad_body(const Error& e) { return fault(std::string(kDeserializePrefix) + e.message() + "."); }

Result<json> parse_body(std::string_view body) {
  try {
    return json::parse(body);
  } catch (const json::exception& e) {
    std::string what = e.what();
    if (auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
    return Error(what);
  }
}

// Firecracker's path tokens: leading '/' trimmed, split on '/', a trailing empty piece dropped.
std::vector<std::string_view> split_path(std::string_view path) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  std::vector<std::string_view> out;
  while (!path.empty()) {
    auto slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

// The path of a request target: the origin form "/a/b?q" or the absolute form
// "http://localhost/a/b" both give "/a/b".
std::string_view target_path(std::string_view target) {
  if (auto scheme = target.find("://"); scheme != std::string_view::npos && target.front() != '/') {
    auto slash = target.find('/', scheme + 3);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  if (auto q = target.find_first_of("?#"); q != std::string_view::npos) target = target.substr(0, q);
  return target;
}

// Firecracker endpoints strata-vmm does not implement: named in the refusal rather than
// reported as an unknown path.
bool unsupported_resource(std::string_view first) {
  static constexpr std::string_view kNames[] = {"balloon", "mmds", "cpu-config", "pmem", "hotplug"};
  for (auto n : kNames)
    if (first == n) return true;
  return false;
}

}  // namespace

std::string fault_body(std::string_view message) {
  json j = {{"fault_message", std::string(message)}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Router::Router(VmController& controller, InstanceInfo info) : controller_(controller), info_(std::move(info)) {}

void Router::set_config(VmConfig config) {
  config_ = std::move(config);
  boot_path_ = true;
}

ApiResponse Router::handle(std::string_view method, std::string_view target, std::string_view body) {
  ApiResponse r;
  try {
    r = dispatch(method, target, body);
  } catch (const std::exception& e) {
    log::get("vmm")->error("API {} {}: internal error: {}", method, target_path(target), e.what());
    return fault(std::string("Internal error: ") + e.what(), 500);
  }
  if (r.status >= 400)
    log::get("vmm")->debug("API {} {}: {} {}", method, target_path(target), r.status, r.body);
  return r;
}

ApiResponse Router::dispatch(std::string_view method, std::string_view target, std::string_view body) {
  std::string_view path = target_path(target);
  auto tokens = split_path(path);
  std::string_view first = tokens.empty() ? std::string_view() : tokens[0];
  std::string_view second = tokens.size() > 1 ? tokens[1] : std::string_view();
  bool has_second = tokens.size() > 1;
  bool has_body = !body.empty();
  InstanceState state = controller_.state();
  bool booted = state != InstanceState::kNotStarted;

  // A resource id from the path: Firecracker's checked_id.
  auto path_id = [&]() -> Result<std::string> {
    if (!has_second) return Error("The ID cannot be empty.");
    TRY(check_id(second));
    return std::string(second);
  };
  // PUT and PATCH: a resource this method serves (else its fault), the id from the path for
  // drives and network interfaces (checked before the body is read, as Firecracker does), then
  // the JSON body. A response means the request ends there.
  std::string id;
  json j;
  auto prelude = [&](std::initializer_list<std::string_view> known) -> std::optional<ApiResponse> {
    if (std::find(known.begin(), known.end(), first) == known.end()) {
      if (unsupported_resource(first))
        return fault(std::string(method) + " /" + std::string(first) + " is not supported by strata-vmm.");
      return invalid_path(method, first);
    }
    if (first == "drives" || first == "network-interfaces") {
      auto r = path_id();
      if (!r.ok()) return fault(r.error().message());
      id = std::move(*r);
    }
    auto parsed = parse_body(body);
    if (!parsed.ok()) return bad_body(parsed.error());
    j = std::move(*parsed);
    return std::nullopt;
  };

  if (method == "GET") {
    if (has_body) return fault("GET request cannot have a body.");
    if (first.empty()) {
      return ok_json({{"id", info_.id},
                      {"state", to_string(state)},
                      {"vmm_version", info_.vmm_version},
                      {"app_name", info_.app_name}});
    }
    if (first == "version") return ok_json({{"firecracker_version", info_.vmm_version}});
    if (first == "machine-config") return ok_json(to_json(config_.machine_config));
    if (first == "vm" && second == "config") return ok_json(to_json(config_));
    if (unsupported_resource(first))
      return fault("GET /" + std::string(first) + " is not supported by strata-vmm.");
    return invalid_path(method, first);
  }

  if (method == "PUT") {
    if (!has_body) return fault("Empty PUT request.");
    if (first == "snapshot") {
      if (!has_second) return fault("Missing snapshot operation type.");
      if (second != "create" && second != "load")
        return invalid_path(method, "/snapshot/" + std::string(second));
    }
    if (auto r = prelude({"snapshot", "actions", "boot-source", "drives", "network-interfaces", "machine-config",
                          "vsock", "logger", "metrics", "entropy", "serial"}))
      return *r;

    if (first == "actions") {
      auto a = parse_action(j);
      if (!a.ok()) return bad_body(a.error());
      switch (*a) {
        case ActionType::kInstanceStart: {
          if (booted) return fault(kNotPostBoot);
          if (!config_.boot_source)
            return fault("Start microvm error: Cannot start microvm without kernel configuration.");
          Status s = controller_.start(config_);
          if (!s.ok()) return fault("Start microvm error: " + s.error().to_string());
          return no_content();
        }
        case ActionType::kSendCtrlAltDel: {
          if (!booted) return fault(kNotPreBoot);
          Status s = controller_.send_ctrl_alt_del();
          if (!s.ok()) return fault("Internal VMM error: " + s.error().to_string());
          return no_content();
        }
        case ActionType::kFlushMetrics: {
          if (!booted) return fault(kNotPreBoot);
          Status s = controller_.flush_metrics();
          if (!s.ok()) return fault("Metrics error: " + s.error().to_string());
          return no_content();
        }
      }
    }
    if (first == "boot-source") {
      auto b = parse_boot_source(j);
      if (!b.ok()) return bad_body(b.error());
      if (booted) return fault(kNotPostBoot);
      Status s = controller_.check_boot_source(*b);
      if (!s.ok()) return fault("Boot source error: " + s.error().to_string());
      config_.boot_source = std::move(*b);
      boot_path_ = true;
      return no_content();
    }
    if (first == "drives") {
      auto d = parse_drive(j);
      if (!d.ok()) return bad_body(d.error());
      if (d->drive_id != id) return fault("The id from the path does not match the id from the body!");
      if (booted) return fault(kNotPostBoot);  // no hot-plug
      Status s = controller_.check_drive(*d);
      if (!s.ok())
        return fault("Drive config error: Unable to create the virtio block device: " + s.error().to_string());
      s = config_.put_drive(std::move(*d));
      if (!s.ok()) return fault(s.error().message());
      boot_path_ = true;
      return no_content();
    }
    if (first == "network-interfaces") {
      auto n = parse_network_interface(j);
      if (!n.ok()) return bad_body(n.error());
      if (n->iface_id != id)
        return fault("The id from the path [" + id + "] does not match the id from the body [" +
                     n->iface_id + "]!");
      if (booted) return fault(kNotPostBoot);
      Status s = controller_.check_network_interface(*n);
      if (!s.ok()) return fault("Network config error: Cannot open/create the tap device: " + s.error().to_string());
      s = config_.put_network_interface(std::move(*n));
      if (!s.ok()) return fault(s.error().message());
      boot_path_ = true;
      return no_content();
    }
    if (first == "machine-config") {
      auto u = parse_machine_config_put(j);
      if (!u.ok()) return bad_body(u.error());
      if (booted) return fault(kNotPostBoot);
      Status s = config_.update_machine_config(*u);
      if (!s.ok()) return fault(s.error().message());
      boot_path_ = true;
      return no_content();
    }
    if (first == "vsock") {
      auto v = parse_vsock(j);
      if (!v.ok()) return bad_body(v.error());
      if (booted) return fault(kNotPostBoot);
      Status s = controller_.check_vsock(*v);
      if (!s.ok())
        return fault("Vsock config error: Cannot create backend for vsock device: " + s.error().to_string());
      config_.vsock = std::move(*v);
      boot_path_ = true;
      return no_content();
    }
    if (first == "serial") {
      auto s = parse_serial(j);
      if (!s.ok()) return bad_body(s.error());
      if (booted) return fault(kNotPostBoot);
      config_.serial = std::move(*s);
      boot_path_ = true;
      return no_content();
    }
    if (first == "entropy") {
      auto e = parse_entropy(j);
      if (!e.ok()) return bad_body(e.error());
      if (booted) return fault(kNotPostBoot);
      config_.entropy = *e;
      boot_path_ = true;
      return no_content();
    }
    if (first == "logger") {
      auto l = parse_logger(j);
      if (!l.ok()) return bad_body(l.error());
      if (booted) return fault(kNotPostBoot);
      Status s = controller_.configure_logger(*l);
      if (!s.ok()) return fault("Logger error: " + s.error().to_string());
      config_.logger = std::move(*l);
      return no_content();
    }
    if (first == "metrics") {
      auto m = parse_metrics(j);
      if (!m.ok()) return bad_body(m.error());
      if (booted) return fault(kNotPostBoot);
      constexpr std::string_view kPrefix =
          "Metrics error: Cannot initialize the metrics system due to bad user input: ";
      if (config_.metrics) return fault(std::string(kPrefix) + "Reinitialization of metrics not allowed.");
      Status s = controller_.configure_metrics(*m);
      if (!s.ok()) return fault(std::string(kPrefix) + s.error().to_string());
      config_.metrics = std::move(*m);
      return no_content();
    }
    if (first == "snapshot" && second == "create") {
      auto c = parse_snapshot_create(j);
      if (!c.ok()) return bad_body(c.error());
      if (!booted) return fault(kNotPreBoot);
      if (state != InstanceState::kPaused)
        return fault("Create snapshot error: the microVM must be paused first "
                     "(PATCH /vm {\"state\": \"Paused\"}).");
      Status s = controller_.snapshot_create(*c);
      if (!s.ok()) return fault("Create snapshot error: " + s.error().to_string());
      return no_content();
    }
    if (first == "snapshot" && second == "load") {
      auto l = parse_snapshot_load(j);
      if (!l.ok()) return bad_body(l.error());
      if (booted) return fault(kNotPostBoot);
      if (boot_path_)
        return fault("Load snapshot error: Loading a microVM snapshot not allowed after configuring "
                     "boot-specific resources.");
      auto restored = controller_.snapshot_load(*l);
      if (!restored.ok())
        return fault("Load snapshot error: Failed to restore from snapshot: " + restored.error().to_string());
      config_ = std::move(*restored);
      return no_content();
    }
    return invalid_path(method, first);
  }

  if (method == "PATCH") {
    if (!has_body) return fault("Empty PATCH request.");
    if (auto r = prelude({"drives", "network-interfaces", "machine-config", "vm"})) return *r;

    if (first == "drives") {
      auto u = parse_drive_update(j);
      if (!u.ok()) return bad_body(u.error());
      if (u->drive_id != id) return fault("The id from the path does not match the id from the body!");
      if (!booted) return fault(kNotPreBoot);
      constexpr std::string_view kPrefix = "Drive config error: Unable to patch the block device: ";
      constexpr std::string_view kSuffix = " Please verify the request arguments.";
      const Drive* d = config_.find_drive(id);
      if (!d) return fault(std::string(kPrefix) + "no drive with id " + id + "." + std::string(kSuffix));
      if (!u->path_on_host) return no_content();
      Status s = controller_.patch_drive(id, *u->path_on_host);
      if (!s.ok()) return fault(std::string(kPrefix) + s.error().to_string() + "." + std::string(kSuffix));
      for (auto& drive : config_.drives)
        if (drive.drive_id == id) drive.path_on_host = *u->path_on_host;
      return no_content();
    }
    if (first == "network-interfaces") {
      auto u = parse_network_interface_update(j);
      if (!u.ok()) return bad_body(u.error());
      if (u->iface_id != id)
        return fault("The id from the path [" + id + "] does not match the id from the body [" +
                     u->iface_id + "]!");
      if (!booted) return fault(kNotPreBoot);
      for (const auto& n : config_.network_interfaces)
        if (n.iface_id == id) return no_content();  // only rate limiters are patchable: none set
      return fault("Network config error: Unable to update the net device: no network interface with id " +
                   id + ".");
    }
    if (first == "machine-config") {
      auto u = parse_machine_config_patch(j);
      if (!u.ok()) return bad_body(u.error());
      if (u->empty()) return fault("Empty PATCH request.");
      if (booted) return fault(kNotPostBoot);
      Status s = config_.update_machine_config(*u);
      if (!s.ok()) return fault(s.error().message());
      boot_path_ = true;
      return no_content();
    }
    // first == "vm"
    auto v = parse_vm_state(j);
    if (!v.ok()) return bad_body(v.error());
    if (!booted) return fault(kNotPreBoot);
    Status s = *v == VmState::kPaused ? controller_.pause() : controller_.resume();
    if (!s.ok()) return fault("Internal VMM error: " + s.error().to_string());
    return no_content();
  }

  return invalid_path(method, first);
}

}  // namespace strata::vmm::api
