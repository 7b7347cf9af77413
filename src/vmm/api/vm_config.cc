// Strict JSON -> typed configuration, and back. Schema errors are worded as serde's are
// ("missing field `x`", "unknown field `x`, expected one of ...", "unknown variant ..."), since
// Firecracker's fault messages carry serde's text; the field is always named, with its parent
// for nested objects ("mem_backend.backend_type").
#include "vmm/api/vm_config.h"

#include <algorithm>
#include <functional>
#include <initializer_list>
#include <nlohmann/json.hpp>

namespace strata::vmm::api {

using nlohmann::json;

namespace {

std::string quote_list(std::initializer_list<std::string_view> names) {
  std::string out;
  for (auto n : names) {
    if (!out.empty()) out += ", ";
    out += "`" + std::string(n) + "`";
  }
  return out;
}

// A JSON object being read field by field. open() refuses non-objects and unknown keys.
class Fields {
 public:
  static Result<Fields> open(const json& j, std::string prefix,
                             std::initializer_list<std::string_view> allowed) {
    if (!j.is_object())
      return Error("invalid type" + where(prefix) + ": " + std::string(j.type_name()) +
                   ", expected an object");
    for (const auto& [key, value] : j.items()) {
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
        return Error("unknown field `" + prefix + key + "`, expected one of " + quote_list(allowed));
    }
    return Fields(j, std::move(prefix));
  }

  // Absent and null are both "not given", as for serde's Option fields.
  const json* get(std::string_view key) const {
    auto it = j_->find(key);
    if (it == j_->end() || it->is_null()) return nullptr;
    return &*it;
  }

  Result<std::optional<std::string>> opt_string(std::string_view key) const {
    const json* v = get(key);
    if (!v) return std::optional<std::string>();
    if (!v->is_string()) return type_error(key, *v, "a string");
    return std::optional<std::string>(v->get<std::string>());
  }
  Result<std::string> string(std::string_view key) const {
    ASSIGN_OR_RETURN(auto s, opt_string(key));
    if (!s) return missing(key);
    return std::move(*s);
  }
  Result<std::optional<bool>> opt_bool(std::string_view key) const {
    const json* v = get(key);
    if (!v) return std::optional<bool>();
    if (!v->is_boolean()) return type_error(key, *v, "a boolean");
    return std::optional<bool>(v->get<bool>());
  }
  Result<bool> boolean(std::string_view key) const {
    ASSIGN_OR_RETURN(auto b, opt_bool(key));
    if (!b) return missing(key);
    return *b;
  }
  Result<std::optional<uint64_t>> opt_uint(std::string_view key) const {
    const json* v = get(key);
    if (!v) return std::optional<uint64_t>();
    if (v->is_number_integer() && !v->is_number_unsigned())
      return Error("invalid value for field `" + prefix_ + std::string(key) + "`: integer `" +
                   v->dump() + "`, expected an unsigned integer");
    if (!v->is_number_unsigned()) return type_error(key, *v, "an unsigned integer");
    return std::optional<uint64_t>(v->get<uint64_t>());
  }
  Result<uint64_t> uint(std::string_view key) const {
    ASSIGN_OR_RETURN(auto u, opt_uint(key));
    if (!u) return missing(key);
    return *u;
  }
  // A Firecracker field strata-vmm does not implement: accepted when absent or null.
  Status unsupported(std::string_view key, std::string_view what) const {
    if (get(key))
      return Error("field `" + prefix_ + std::string(key) + "` is not supported by strata-vmm (" +
                   std::string(what) + ")");
    return ok();
  }
  // An enum given as a string: returns the index of the accepted name.
  Result<std::optional<size_t>> opt_variant(std::string_view key,
                                            std::initializer_list<std::string_view> names) const {
    ASSIGN_OR_RETURN(auto s, opt_string(key));
    if (!s) return std::optional<size_t>();
    size_t i = 0;
    for (auto n : names) {
      if (*s == n) return std::optional<size_t>(i);
      ++i;
    }
    return Error("unknown variant `" + *s + "` for field `" + prefix_ + std::string(key) +
                 "`, expected one of " + quote_list(names));
  }
  const std::string& prefix() const { return prefix_; }

 private:
  Fields(const json& j, std::string prefix) : j_(&j), prefix_(std::move(prefix)) {}
  static std::string where(const std::string& prefix) {
    if (prefix.empty()) return "";
    return " for field `" + prefix.substr(0, prefix.size() - 1) + "`";
  }
  Error missing(std::string_view key) const {
    return Error("missing field `" + prefix_ + std::string(key) + "`");
  }
  Error type_error(std::string_view key, const json& v, std::string_view expected) const {
    return Error("invalid type for field `" + prefix_ + std::string(key) + "`: " +
                 std::string(v.type_name()) + ", expected " + std::string(expected));
  }

  const json* j_;
  std::string prefix_;
};

Status check_id_field(std::string_view field, std::string_view id) {
  Status s = check_id(id);
  if (!s.ok()) return Error("invalid value for field `" + std::string(field) + "`: " + s.error().message());
  return ok();
}

}  // namespace

Status check_id(std::string_view id) {
  if (id.empty()) return Error("The ID cannot be empty.");
  for (char c : id) {
    bool good = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!good)
      return Error("API Resource IDs can only contain alphanumeric characters and underscores.");
  }
  return ok();
}

Result<std::array<uint8_t, 6>> parse_mac(std::string_view mac) {
  std::array<uint8_t, 6> out{};
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (mac.size() != 17) return Error("invalid MAC address \"" + std::string(mac) + "\"");
  for (size_t i = 0; i < 6; ++i) {
    int hi = hex(mac[i * 3]), lo = hex(mac[i * 3 + 1]);
    if (hi < 0 || lo < 0 || (i < 5 && mac[i * 3 + 2] != ':'))
      return Error("invalid MAC address \"" + std::string(mac) + "\"");
    out[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return out;
}

std::string_view to_string(HugePages h) { return h == HugePages::k2M ? "2M" : "None"; }
std::string_view to_string(CacheType c) { return c == CacheType::kWriteback ? "Writeback" : "Unsafe"; }
std::string_view to_string(LogLevel l) {
  switch (l) {
    case LogLevel::kOff: return "Off";
    case LogLevel::kTrace: return "Trace";
    case LogLevel::kDebug: return "Debug";
    case LogLevel::kInfo: return "Info";
    case LogLevel::kWarn: return "Warning";
    case LogLevel::kError: return "Error";
  }
  return "Info";
}

Result<BootSource> parse_boot_source(const json& j) {
  ASSIGN_OR_RETURN(auto f, Fields::open(j, "", {"kernel_image_path", "initrd_path", "boot_args"}));
  BootSource b;
  ASSIGN_OR_RETURN(b.kernel_image_path, f.string("kernel_image_path"));
  ASSIGN_OR_RETURN(b.initrd_path, f.opt_string("initrd_path"));
  ASSIGN_OR_RETURN(b.boot_args, f.opt_string("boot_args"));
  return b;
}

namespace {

Result<MachineConfigUpdate> parse_machine_config_fields(const json& j, bool put) {
  ASSIGN_OR_RETURN(auto f, Fields::open(j, "", {"vcpu_count", "mem_size_mib", "smt", "cpu_template",
                                                "track_dirty_pages", "huge_pages"}));
  MachineConfigUpdate u;
  ASSIGN_OR_RETURN(auto vcpus, f.opt_uint("vcpu_count"));
  ASSIGN_OR_RETURN(auto mem, f.opt_uint("mem_size_mib"));
  if (put && !vcpus) return Error("missing field `vcpu_count`");
  if (put && !mem) return Error("missing field `mem_size_mib`");
  // Out-of-range values are kept (saturated) so that update_machine_config() words the error.
  if (vcpus) u.vcpu_count = static_cast<uint32_t>(std::min<uint64_t>(*vcpus, UINT32_MAX));
  u.mem_size_mib = mem;
  ASSIGN_OR_RETURN(u.smt, f.opt_bool("smt"));
  ASSIGN_OR_RETURN(u.track_dirty_pages, f.opt_bool("track_dirty_pages"));
  ASSIGN_OR_RETURN(auto template_name, f.opt_string("cpu_template"));
  if (template_name && *template_name != "None")
    return Error("cpu_template \"" + *template_name +
                 "\" is not supported by strata-vmm (only \"None\"): the guest sees the host's "
                 "CPUID as filtered by KVM");
  if (const json* hp = f.get("huge_pages"); hp && hp->is_string() && *hp == "Transparent")
    return Error("huge_pages \"Transparent\" is not supported by strata-vmm (only \"None\" or \"2M\")");
  ASSIGN_OR_RETURN(auto hp, f.opt_variant("huge_pages", {"None", "2M"}));
  if (hp) u.huge_pages = *hp == 1 ? HugePages::k2M : HugePages::kNone;
  if (put) {
    // PUT replaces the whole configuration: missing optional fields take their defaults.
    if (!u.smt) u.smt = false;
    if (!u.track_dirty_pages) u.track_dirty_pages = false;
    if (!u.huge_pages) u.huge_pages = HugePages::kNone;
  }
  return u;
}

}  // namespace

Result<MachineConfigUpdate> parse_machine_config_put(const json& j) {
  return parse_machine_config_fields(j, true);
}
Result<MachineConfigUpdate> parse_machine_config_patch(const json& j) {
  return parse_machine_config_fields(j, false);
}

Result<Drive> parse_drive(const json& j) {
  ASSIGN_OR_RETURN(auto f, Fields::open(j, "", {"drive_id", "partuuid", "is_root_device", "cache_type",
                                                "is_read_only", "path_on_host", "rate_limiter",
                                                "io_engine", "socket"}));
  Drive d;
  ASSIGN_OR_RETURN(d.drive_id, f.string("drive_id"));
  TRY(check_id_field("drive_id", d.drive_id));
  ASSIGN_OR_RETURN(d.partuuid, f.opt_string("partuuid"));
  ASSIGN_OR_RETURN(d.is_root_device, f.boolean("is_root_device"));
  ASSIGN_OR_RETURN(auto cache, f.opt_variant("cache_type", {"Unsafe", "Writeback"}));
  d.cache_type = cache && *cache == 1 ? CacheType::kWriteback : CacheType::kUnsafe;
  ASSIGN_OR_RETURN(auto ro, f.opt_bool("is_read_only"));
  d.is_read_only = ro.value_or(false);
  TRY(f.unsupported("socket", "vhost-user block devices are not implemented"));
  ASSIGN_OR_RETURN(d.path_on_host, f.string("path_on_host"));
  if (d.path_on_host.empty()) return Error("invalid value for field `path_on_host`: empty path");
  TRY(f.unsupported("rate_limiter", "I/O rate limiting is not implemented"));
  if (const json* e = f.get("io_engine"); e && e->is_string() && *e == "Async")
    return Error("io_engine \"Async\" is not supported by strata-vmm (only \"Sync\")");
  ASSIGN_OR_RETURN(auto engine, f.opt_variant("io_engine", {"Sync"}));
  (void)engine;
  return d;
}

Result<DriveUpdate> parse_drive_update(const json& j) {
  ASSIGN_OR_RETURN(auto f, Fields::open(j, "", {"drive_id", "path_on_host", "rate_limiter"}));
  DriveUpdate u;
  ASSIGN_OR_RETURN(u.drive_id, f.string("drive_id"));
  ASSIGN_OR_RETURN(u.path_on_host, f.opt_string("path_on_host"));
  if (u.path_on_host && u.path_on_host->empty())
    return Error("invalid value for field `path_on_host`: empty path");
  TRY(f.unsupported("rate_limiter", "I/O rate limiting is not implemented"));
  return u;
}

Result<NetworkInterface> parse_network_interface(const json& j) {
  ASSIGN_OR_RETURN(auto f, Fields::open(j, "", {"iface_id", "host_dev_name", "guest_mac", "mtu",
                                                "rx_rate_limiter", "tx_rate_limiter"}));
  NetworkInterface n;
  ASSIGN_OR_RETURN(n.iface_id, f.string("iface_id"));
  TRY(check_id_field("iface_id", n.iface_id));
  ASSIGN_OR_RETURN(n.host_dev_name, f.string("host_dev_name"));
  // A tap name is an interface name: at most IFNAMSIZ - 1 bytes, no '/' or NUL.
  if (n.host_dev_name.empty() || n.host_dev_name.size() > 15 ||
      n.host_dev_name.find_first_of(std::string_view("/\0 ", 3)) != std::string::npos)
    return Error("invalid value for field `host_dev_name`: \"" + n.host_dev_name +
                 "\" is not a network interface name");
  ASSIGN_OR_RETURN(n.guest_mac, f.opt_string("guest_mac"));
  if (n.guest_mac) {
    auto mac = parse_mac(*n.guest_mac);
    if (!mac.ok()) return Error("invalid value for field `guest_mac`: " + mac.error().message());
  }
  TRY(f.unsupported("mtu", "the guest's MTU is not advertised"));
  TRY(f.unsupported("rx_rate_limiter", "network rate limiting is not implemented"));
  TRY(f.unsupported("tx_rate_limiter", "network rate limiting is not implemented"));
  return n;
}

Result<NetworkInterfaceUpdate> parse_network_interface_update(const json& j) {
  ASSIGN_OR_RETURN(auto f, Fields::open(j, "", {"iface_id", "rx_rate_limiter", "tx_rate_limiter"}));
  NetworkInterfaceUpdate u;
  ASSIGN_OR_RETURN(u.iface_id, f.string("iface_id"));
  TRY(f.unsupported("rx_rate_limiter", "network rate limiting is not implemented"));
  TRY(f.unsupported("tx_rate_limiter", "network rate limiting is not implemented"));
  return u;
}

Result<Vsock> parse_vsock(const json& j) {
  ASSIGN_OR_RETURN(auto f, Fields::open(j, "", {"vsock_id", "guest_cid", "uds_path"}));
  Vsock v;
  ASSIGN_OR_RETURN(v.vsock_id, f.opt_string("vsock_id"));
  ASSIGN_OR_RETURN(auto cid, f.uint("guest_cid"));
  if (cid < 3 || cid > UINT32_MAX)
    return Error("invalid value for field `guest_cid`: " + std::to_string(cid) +
                 ", expected 3 to 4294967295 (CIDs 0-2 are reserved)");
  v.guest_cid = static_cast<uint32_t>(cid);
  ASSIGN_OR_RETURN(v.uds_path, f.string("uds_path"));
  if (v.uds_path.empty()) return Error("invalid value for field `uds_path`: empty path");
  return v;
}

Result<Logger> parse_logger(const json& j) {
  ASSIGN_OR_RETURN(auto f, Fields::open(j, "", {"log_path", "level", "show_level", "show_log_origin",
                                                "module"}));
  Logger l;
  ASSIGN_OR_RETURN(l.log_path, f.opt_string("log_path"));
  ASSIGN_OR_RETURN(auto level, f.opt_string("level"));
  if (level) {
    std::string lower = *level;
    for (char& c : lower)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (lower == "off") l.level = LogLevel::kOff;
    else if (lower == "trace") l.level = LogLevel::kTrace;
    else if (lower == "debug") l.level = LogLevel::kDebug;
    else if (lower == "info") l.level = LogLevel::kInfo;
    else if (lower == "warn" || lower == "warning") l.level = LogLevel::kWarn;
    else if (lower == "error") l.level = LogLevel::kError;
    else return Error("Invalid LevelFilter");  // Firecracker's text
  }
  ASSIGN_OR_RETURN(l.show_level, f.opt_bool("show_level"));
  ASSIGN_OR_RETURN(l.show_log_origin, f.opt_bool("show_log_origin"));
  ASSIGN_OR_RETURN(l.module, f.opt_string("module"));
  return l;
}

Result<Metrics> parse_metrics(const json& j) {
  ASSIGN_OR_RETURN(auto f, Fields::open(j, "", {"metrics_path", "emit_id", "properties"}));
  Metrics m;
  ASSIGN_OR_RETURN(m.metrics_path, f.string("metrics_path"));
  if (m.metrics_path.empty()) return Error("invalid value for field `metrics_path`: empty path");
  ASSIGN_OR_RETURN(auto emit_id, f.opt_bool("emit_id"));
  if (emit_id.value_or(false))
    return Error("field `emit_id` is not supported by strata-vmm (metrics lines carry no id)");
  TRY(f.unsupported("properties", "metrics lines carry no extra properties"));
  return m;
}

Result<Entropy> parse_entropy(const json& j) {
  ASSIGN_OR_RETURN(auto f, Fields::open(j, "", {"rate_limiter"}));
  TRY(f.unsupported("rate_limiter", "entropy rate limiting is not implemented"));
  return Entropy{};
}

Result<Serial> parse_serial(const json& j) {
  ASSIGN_OR_RETURN(auto f, Fields::open(j, "", {"serial_out_path", "rate_limiter"}));
  Serial s;
  ASSIGN_OR_RETURN(s.serial_out_path, f.string("serial_out_path"));
  if (s.serial_out_path.empty()) return Error("invalid value for field `serial_out_path`: empty path");
  TRY(f.unsupported("rate_limiter", "serial rate limiting is not implemented"));
  return s;
}

Result<SnapshotCreate> parse_snapshot_create(const json& j) {
  ASSIGN_OR_RETURN(auto f, Fields::open(j, "", {"snapshot_type", "snapshot_path", "mem_file_path"}));
  SnapshotCreate s;
  if (const json* t = f.get("snapshot_type"); t && t->is_string() && *t == "Diff")
    return Error("snapshot_type \"Diff\" is not supported by strata-vmm (only \"Full\")");
  ASSIGN_OR_RETURN(auto type, f.opt_variant("snapshot_type", {"Full"}));
  (void)type;
  ASSIGN_OR_RETURN(s.snapshot_path, f.string("snapshot_path"));
  ASSIGN_OR_RETURN(s.mem_file_path, f.string("mem_file_path"));
  if (s.snapshot_path.empty()) return Error("invalid value for field `snapshot_path`: empty path");
  if (s.mem_file_path.empty()) return Error("invalid value for field `mem_file_path`: empty path");
  return s;
}

Result<SnapshotLoad> parse_snapshot_load(const json& j) {
  ASSIGN_OR_RETURN(auto f, Fields::open(j, "", {"snapshot_path", "mem_file_path", "mem_backend",
                                                "enable_diff_snapshots", "track_dirty_pages",
                                                "resume_vm", "network_overrides", "vsock_override",
                                                "clock_realtime", "huge_pages"}));
  SnapshotLoad s;
  ASSIGN_OR_RETURN(s.snapshot_path, f.string("snapshot_path"));
  if (s.snapshot_path.empty()) return Error("invalid value for field `snapshot_path`: empty path");
  ASSIGN_OR_RETURN(auto mem_file, f.opt_string("mem_file_path"));
  const json* backend = f.get("mem_backend");
  // Firecracker's MISSING_FIELD and TOO_MANY_FIELDS texts.
  if (mem_file && backend)
    return Error("too many fields: either `mem_backend` or `mem_file_path` exclusively is required");
  if (!mem_file && !backend)
    return Error("missing field: either `mem_backend` or `mem_file_path` is required");
  if (backend) {
    ASSIGN_OR_RETURN(auto b, Fields::open(*backend, "mem_backend.", {"backend_type", "backend_path"}));
    ASSIGN_OR_RETURN(auto type, b.string("backend_type"));
    if (type == "Uffd")
      return Error("mem_backend.backend_type \"Uffd\" is not supported by strata-vmm (only \"File\")");
    if (type != "File")
      return Error("unknown variant `" + type +
                   "` for field `mem_backend.backend_type`, expected one of `File`, `Uffd`");
    ASSIGN_OR_RETURN(s.mem_file_path, b.string("backend_path"));
  } else {
    s.mem_file_path = std::move(*mem_file);
  }
  if (s.mem_file_path.empty()) return Error("invalid value for field `mem_file_path`: empty path");
  ASSIGN_OR_RETURN(auto diff, f.opt_bool("enable_diff_snapshots"));
  ASSIGN_OR_RETURN(auto track, f.opt_bool("track_dirty_pages"));
  s.track_dirty_pages = diff.value_or(false) || track.value_or(false);
  ASSIGN_OR_RETURN(auto resume, f.opt_bool("resume_vm"));
  s.resume_vm = resume.value_or(false);
  if (const json* o = f.get("network_overrides"); o && !(o->is_array() && o->empty()))
    return Error("field `network_overrides` is not supported by strata-vmm (the snapshot's tap "
                 "devices are reopened by name)");
  TRY(f.unsupported("vsock_override", "the snapshot's vsock socket path is reused"));
  ASSIGN_OR_RETURN(auto realtime, f.opt_bool("clock_realtime"));
  if (realtime.value_or(false))
    return Error("field `clock_realtime` is not supported by strata-vmm");
  ASSIGN_OR_RETURN(auto hp, f.opt_string("huge_pages"));
  if (hp && *hp != "Snapshot")
    return Error("field `huge_pages` is not supported by strata-vmm (the snapshot's setting is used)");
  return s;
}

Result<VmState> parse_vm_state(const json& j) {
  ASSIGN_OR_RETURN(auto f, Fields::open(j, "", {"state"}));
  ASSIGN_OR_RETURN(auto v, f.opt_variant("state", {"Paused", "Resumed"}));
  if (!v) return Error("missing field `state`");
  return *v == 0 ? VmState::kPaused : VmState::kResumed;
}

Result<ActionType> parse_action(const json& j) {
  ASSIGN_OR_RETURN(auto f, Fields::open(j, "", {"action_type"}));
  ASSIGN_OR_RETURN(auto v, f.opt_variant("action_type", {"FlushMetrics", "InstanceStart", "SendCtrlAltDel"}));
  if (!v) return Error("missing field `action_type`");
  switch (*v) {
    case 0: return ActionType::kFlushMetrics;
    case 1: return ActionType::kInstanceStart;
    default: return ActionType::kSendCtrlAltDel;
  }
}

const Drive* VmConfig::find_drive(std::string_view id) const {
  for (const auto& d : drives)
    if (d.drive_id == id) return &d;
  return nullptr;
}

Status VmConfig::put_drive(Drive drive) {
  auto same = std::find_if(drives.begin(), drives.end(),
                           [&](const Drive& d) { return d.drive_id == drive.drive_id; });
  bool has_root = !drives.empty() && drives.front().is_root_device;
  // Replacing the root device by itself is allowed; adding a second one is not.
  if (drive.is_root_device && has_root && same != drives.begin())
    return Error("Drive config error: A root block device already exists!");
  if (same == drives.end()) {
    if (drive.is_root_device) drives.insert(drives.begin(), std::move(drive));
    else drives.push_back(std::move(drive));
    return ok();
  }
  bool root = drive.is_root_device;
  *same = std::move(drive);
  if (root && same != drives.begin()) std::iter_swap(drives.begin(), same);
  return ok();
}

Status VmConfig::put_network_interface(NetworkInterface iface) {
  if (iface.guest_mac) {
    auto mine = parse_mac(*iface.guest_mac);
    for (const auto& other : network_interfaces) {
      if (other.iface_id == iface.iface_id || !other.guest_mac) continue;
      auto theirs = parse_mac(*other.guest_mac);
      if (mine.ok() && theirs.ok() && *mine == *theirs)
        return Error("Network config error: The MAC address is already in use: " + *iface.guest_mac);
    }
  }
  for (auto& other : network_interfaces) {
    if (other.iface_id == iface.iface_id) {
      other = std::move(iface);
      return ok();
    }
  }
  network_interfaces.push_back(std::move(iface));
  return ok();
}

Status VmConfig::update_machine_config(const MachineConfigUpdate& u) {
  MachineConfig next = machine_config;
  if (u.vcpu_count) next.vcpu_count = *u.vcpu_count;
  if (u.mem_size_mib) next.mem_size_mib = *u.mem_size_mib;
  if (u.smt) next.smt = *u.smt;
  if (u.track_dirty_pages) next.track_dirty_pages = *u.track_dirty_pages;
  if (u.huge_pages) next.huge_pages = *u.huge_pages;
  if (next.vcpu_count == 0 || next.vcpu_count > kMaxVcpus ||
      (next.smt && next.vcpu_count > 1 && next.vcpu_count % 2 == 1))
    return Error("Machine config error: The number of vCPUs must be greater than 0, less than " +
                 std::to_string(kMaxVcpus) + " and must be 1 or an even number if SMT is enabled.");
  if (next.mem_size_mib == 0 || (next.huge_pages == HugePages::k2M && next.mem_size_mib % 2 != 0))
    return Error("Machine config error: The memory size (MiB) is either 0, or not a multiple of the "
                 "configured page size.");
  if (next.mem_size_mib > kMaxMemSizeMib)
    return Error("Machine config error: The memory size (MiB) " + std::to_string(next.mem_size_mib) +
                 " is larger than strata-vmm's limit of " + std::to_string(kMaxMemSizeMib) +
                 " MiB (1 TiB).");
  machine_config = next;
  return ok();
}

namespace {

// The top-level keys of Firecracker's config file that strata-vmm does not implement: accepted
// when null or empty (GET /vm/config of a Firecracker prints them so), refused otherwise.
constexpr std::string_view kUnsupportedSections[] = {"balloon", "cpu-config", "mmds-config", "pmem",
                                                     "memory-hotplug"};

Status section(const json& j, std::string_view key, const std::function<Status(const json&)>& apply) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return ok();
  Status s = apply(*it);
  if (!s.ok()) return std::move(s).error();
  return ok();
}

}  // namespace

Result<VmConfig> parse_vm_config(std::string_view text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    std::string what = e.what();
    if (auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
    return Error("Invalid JSON: " + what);
  }
  return parse_vm_config_json(j);
}

Result<VmConfig> parse_vm_config_json(const json& j) {
  if (!j.is_object()) return Error("Invalid JSON: invalid type: " + std::string(j.type_name()) + ", expected an object");
  static constexpr std::string_view kKnown[] = {"boot-source", "drives", "machine-config",
                                                "network-interfaces", "vsock", "logger", "metrics",
                                                "entropy", "serial"};
  for (const auto& [key, value] : j.items()) {
    if (std::find(std::begin(kKnown), std::end(kKnown), key) != std::end(kKnown)) continue;
    if (std::find(std::begin(kUnsupportedSections), std::end(kUnsupportedSections), key) !=
        std::end(kUnsupportedSections)) {
      if (value.is_null() || (value.is_array() && value.empty())) continue;
      return Error("Invalid JSON: section `" + key + "` is not supported by strata-vmm");
    }
    return Error("Invalid JSON: unknown field `" + key +
                 "`, expected one of `boot-source`, `drives`, `machine-config`, "
                 "`network-interfaces`, `vsock`, `logger`, `metrics`, `entropy`, `serial`");
  }
  auto wrap = [](std::string_view prefix, Status s) -> Status {
    if (s.ok()) return s;
    return Error(std::string(prefix) + s.error().message());
  };
  VmConfig c;
  // Firecracker's order (resources.rs from_json): logger and metrics, machine config, boot source,
  // drives, network, vsock, entropy.
  TRY(section(j, "logger", [&](const json& v) -> Status {
    auto l = parse_logger(v);
    if (!l.ok()) return Error("Invalid JSON: logger: " + l.error().message());
    c.logger = std::move(*l);
    return ok();
  }));
  TRY(section(j, "metrics", [&](const json& v) -> Status {
    auto m = parse_metrics(v);
    if (!m.ok()) return Error("Invalid JSON: metrics: " + m.error().message());
    c.metrics = std::move(*m);
    return ok();
  }));
  TRY(section(j, "machine-config", [&](const json& v) -> Status {
    auto u = parse_machine_config_put(v);
    if (!u.ok()) return Error("Invalid JSON: machine-config: " + u.error().message());
    return wrap("VM config error: ", c.update_machine_config(*u));
  }));
  if (!j.contains("boot-source") || j["boot-source"].is_null())
    return Error("Invalid JSON: missing field `boot-source`");
  TRY(section(j, "boot-source", [&](const json& v) -> Status {
    auto b = parse_boot_source(v);
    if (!b.ok()) return Error("Invalid JSON: boot-source: " + b.error().message());
    c.boot_source = std::move(*b);
    return ok();
  }));
  TRY(section(j, "drives", [&](const json& v) -> Status {
    if (!v.is_array()) return Error("Invalid JSON: invalid type for field `drives`: " + std::string(v.type_name()) + ", expected an array");
    for (size_t i = 0; i < v.size(); ++i) {
      auto d = parse_drive(v[i]);
      if (!d.ok()) return Error("Invalid JSON: drives[" + std::to_string(i) + "]: " + d.error().message());
      TRY(wrap("Block device error: ", c.put_drive(std::move(*d))));
    }
    return ok();
  }));
  TRY(section(j, "network-interfaces", [&](const json& v) -> Status {
    if (!v.is_array())
      return Error("Invalid JSON: invalid type for field `network-interfaces`: " + std::string(v.type_name()) + ", expected an array");
    for (size_t i = 0; i < v.size(); ++i) {
      auto n = parse_network_interface(v[i]);
      if (!n.ok())
        return Error("Invalid JSON: network-interfaces[" + std::to_string(i) + "]: " + n.error().message());
      TRY(wrap("Network device error: ", c.put_network_interface(std::move(*n))));
    }
    return ok();
  }));
  TRY(section(j, "vsock", [&](const json& v) -> Status {
    auto s = parse_vsock(v);
    if (!s.ok()) return Error("Invalid JSON: vsock: " + s.error().message());
    c.vsock = std::move(*s);
    return ok();
  }));
  TRY(section(j, "entropy", [&](const json& v) -> Status {
    auto e = parse_entropy(v);
    if (!e.ok()) return Error("Invalid JSON: entropy: " + e.error().message());
    c.entropy = *e;
    return ok();
  }));
  TRY(section(j, "serial", [&](const json& v) -> Status {
    auto s = parse_serial(v);
    if (!s.ok()) return Error("Invalid JSON: serial: " + s.error().message());
    c.serial = std::move(*s);
    return ok();
  }));
  return c;
}

json to_json(const MachineConfig& m) {
  return json{{"vcpu_count", m.vcpu_count},
              {"mem_size_mib", m.mem_size_mib},
              {"smt", m.smt},
              {"track_dirty_pages", m.track_dirty_pages},
              {"huge_pages", to_string(m.huge_pages)}};
}

namespace {

json opt(const std::optional<std::string>& s) { return s ? json(*s) : json(nullptr); }
template <class T>
json opt(const std::optional<T>& v) { return v ? json(*v) : json(nullptr); }

}  // namespace

json to_json(const VmConfig& c) {
  json out = json::object();
  json boot = json::object();
  if (c.boot_source) {
    boot = {{"kernel_image_path", c.boot_source->kernel_image_path},
            {"initrd_path", opt(c.boot_source->initrd_path)},
            {"boot_args", opt(c.boot_source->boot_args)}};
  } else {
    // Firecracker prints its default (empty) boot source before one is set.
    boot = {{"kernel_image_path", ""}, {"initrd_path", nullptr}, {"boot_args", nullptr}};
  }
  out["boot-source"] = std::move(boot);
  json drives = json::array();
  for (const auto& d : c.drives)
    drives.push_back({{"drive_id", d.drive_id},
                      {"partuuid", opt(d.partuuid)},
                      {"is_root_device", d.is_root_device},
                      {"cache_type", to_string(d.cache_type)},
                      {"is_read_only", d.is_read_only},
                      {"path_on_host", d.path_on_host},
                      {"rate_limiter", nullptr},
                      {"io_engine", "Sync"},
                      {"socket", nullptr}});
  out["drives"] = std::move(drives);
  out["machine-config"] = to_json(c.machine_config);
  json nets = json::array();
  for (const auto& n : c.network_interfaces)
    nets.push_back({{"iface_id", n.iface_id},
                    {"host_dev_name", n.host_dev_name},
                    {"guest_mac", opt(n.guest_mac)},
                    {"rx_rate_limiter", nullptr},
                    {"tx_rate_limiter", nullptr}});
  out["network-interfaces"] = std::move(nets);
  out["vsock"] = c.vsock ? json{{"guest_cid", c.vsock->guest_cid}, {"uds_path", c.vsock->uds_path}}
                         : json(nullptr);
  if (c.logger) {
    json l = json::object();
    if (c.logger->log_path) l["log_path"] = *c.logger->log_path;
    if (c.logger->level) l["level"] = to_string(*c.logger->level);
    if (c.logger->show_level) l["show_level"] = *c.logger->show_level;
    if (c.logger->show_log_origin) l["show_log_origin"] = *c.logger->show_log_origin;
    if (c.logger->module) l["module"] = *c.logger->module;
    out["logger"] = std::move(l);
  } else {
    out["logger"] = nullptr;
  }
  out["metrics"] = c.metrics ? json{{"metrics_path", c.metrics->metrics_path}} : json(nullptr);
  out["entropy"] = c.entropy ? json{{"rate_limiter", nullptr}} : json(nullptr);
  if (c.serial) out["serial"] = json{{"serial_out_path", c.serial->serial_out_path}};
  out["balloon"] = nullptr;
  out["mmds-config"] = nullptr;
  return out;
}

}  // namespace strata::vmm::api
