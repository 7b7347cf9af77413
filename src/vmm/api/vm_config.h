// The micro-VM's configuration as Firecracker's API and config file spell it: one typed value
// per resource (src/vmm/src/vmm_config/*.rs in Firecracker), parsed strictly from JSON (unknown
// fields refused, as serde's deny_unknown_fields does; wrong types and missing fields named), and
// VmConfig, the whole machine, which is both the --config-file layout and GET /vm/config's body:
//   {"boot-source": {...}, "drives": [...], "machine-config": {...}, "network-interfaces": [...],
//    "vsock": {...}, "logger": {...}, "metrics": {...}, "entropy": {...}}
// Fields Firecracker has and strata-vmm does not implement (rate limiters, the Async io engine,
// static CPU templates, vhost-user drives, diff snapshots, ...) parse when absent or null and are
// refused by name otherwise, so that a client learns at PUT time, not at boot.
// Error messages are the fault_message texts: they follow Firecracker's wording where it has one.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/error.h"

namespace strata::vmm::api {

// Firecracker's MAX_SUPPORTED_VCPUS.
inline constexpr uint32_t kMaxVcpus = 32;
// Our cap on mem_size_mib: 1 TiB. Far above any micro-VM, and well inside the 47-bit user
// address space (128 TiB) a host process can map, so a "mem_size_mib": 1e15 is refused at PUT
// time with a clear message instead of failing an mmap at boot. The controller may still fail
// the start when the host cannot back the size it was given.
inline constexpr uint64_t kMaxMemSizeMib = 1ull << 20;
// Firecracker's DEFAULT_MEM_SIZE_MIB.
inline constexpr uint64_t kDefaultMemSizeMib = 128;

struct BootSource {
  std::string kernel_image_path;
  std::optional<std::string> initrd_path;
  std::optional<std::string> boot_args;  // none: the monitor's default command line
  bool operator==(const BootSource&) const = default;
};

enum class HugePages { kNone, k2M };

struct MachineConfig {
  uint32_t vcpu_count = 1;
  uint64_t mem_size_mib = kDefaultMemSizeMib;
  bool smt = false;
  bool track_dirty_pages = false;
  HugePages huge_pages = HugePages::kNone;
  bool operator==(const MachineConfig&) const = default;
};

// PATCH /machine-config: the fields present change, the others stay. PUT /machine-config is the
// same with every field present (missing optional ones at their defaults), as in Firecracker.
struct MachineConfigUpdate {
  std::optional<uint32_t> vcpu_count;
  std::optional<uint64_t> mem_size_mib;
  std::optional<bool> smt;
  std::optional<bool> track_dirty_pages;
  std::optional<HugePages> huge_pages;
  bool empty() const {
    return !vcpu_count && !mem_size_mib && !smt && !track_dirty_pages && !huge_pages;
  }
};

enum class CacheType { kUnsafe, kWriteback };

struct Drive {
  std::string drive_id;
  std::string path_on_host;
  bool is_root_device = false;
  bool is_read_only = false;
  std::optional<std::string> partuuid;  // used only for the root device: root=PARTUUID=...
  CacheType cache_type = CacheType::kUnsafe;
  // io_engine is always "Sync"; rate_limiter and socket (vhost-user) are refused.
  bool operator==(const Drive&) const = default;
};

struct NetworkInterface {
  std::string iface_id;
  std::string host_dev_name;             // the tap device
  std::optional<std::string> guest_mac;  // "aa:bb:cc:dd:ee:ff", checked
  bool operator==(const NetworkInterface&) const = default;
};

struct Vsock {
  uint32_t guest_cid = 3;  // >= 3: 0-2 are reserved (hypervisor, local, host)
  std::string uds_path;
  std::optional<std::string> vsock_id;  // deprecated by Firecracker, accepted and ignored
  bool operator==(const Vsock&) const = default;
};

enum class LogLevel { kOff, kTrace, kDebug, kInfo, kWarn, kError };

struct Logger {
  std::optional<std::string> log_path;
  std::optional<LogLevel> level;  // Firecracker accepts any case, and "Warning" for kWarn
  std::optional<bool> show_level;
  std::optional<bool> show_log_origin;
  std::optional<std::string> module;
  bool operator==(const Logger&) const = default;
};

struct Metrics {
  std::string metrics_path;
  bool operator==(const Metrics&) const = default;
};

// PUT /entropy: a virtio-rng device; its only field, rate_limiter, is refused unless null.
struct Entropy {
  bool operator==(const Entropy&) const = default;
};

// PUT /serial: where the 8250 console's output goes instead of the monitor's stdout (a file,
// appended to, or a named pipe with a reader).
struct Serial {
  std::string serial_out_path;
  bool operator==(const Serial&) const = default;
};

struct VmConfig {
  std::optional<BootSource> boot_source;
  MachineConfig machine_config;
  std::vector<Drive> drives;  // the root device, if any, first (as Firecracker orders them)
  std::vector<NetworkInterface> network_interfaces;
  std::optional<Vsock> vsock;
  std::optional<Logger> logger;
  std::optional<Metrics> metrics;
  std::optional<Entropy> entropy;
  std::optional<Serial> serial;
  bool operator==(const VmConfig&) const = default;

  // PUT /drives/{id}: a drive with the same id is replaced in place; a second root device is
  // refused ("A root block device already exists!").
  Status put_drive(Drive drive);
  // PUT /network-interfaces/{id}: same id replaces; a guest_mac used by another interface is
  // refused ("The MAC address is already in use: ...").
  Status put_network_interface(NetworkInterface iface);
  // PUT/PATCH /machine-config: checks the merged result (vCPU count 1..32 and 1 or even with
  // SMT; memory > 0, <= kMaxMemSizeMib, a multiple of 2 with 2M huge pages) before changing it.
  Status update_machine_config(const MachineConfigUpdate& update);
  const Drive* find_drive(std::string_view id) const;
};

enum class SnapshotType { kFull };

struct SnapshotCreate {
  SnapshotType snapshot_type = SnapshotType::kFull;  // "Diff" is refused
  std::string snapshot_path;
  std::string mem_file_path;
};

struct SnapshotLoad {
  std::string snapshot_path;
  // From mem_file_path (deprecated) or mem_backend {"backend_type": "File", "backend_path"};
  // exactly one of the two must be given. "Uffd" backends are refused.
  std::string mem_file_path;
  bool track_dirty_pages = false;  // track_dirty_pages or the deprecated enable_diff_snapshots
  bool resume_vm = false;
};

enum class VmState { kPaused, kResumed };  // PATCH /vm

enum class ActionType { kInstanceStart, kSendCtrlAltDel, kFlushMetrics };  // PUT /actions

// Each parser takes a parsed JSON value (the request body or a config-file section) and names
// the offending field in its error.
Result<BootSource> parse_boot_source(const nlohmann::json& j);
Result<MachineConfigUpdate> parse_machine_config_put(const nlohmann::json& j);
Result<MachineConfigUpdate> parse_machine_config_patch(const nlohmann::json& j);
Result<Drive> parse_drive(const nlohmann::json& j);
// PATCH /drives/{id}: {"drive_id", "path_on_host"?, "rate_limiter"?}; returns the new path
// (empty when the body changes nothing we support).
struct DriveUpdate {
  std::string drive_id;
  std::optional<std::string> path_on_host;
};
Result<DriveUpdate> parse_drive_update(const nlohmann::json& j);
Result<NetworkInterface> parse_network_interface(const nlohmann::json& j);
struct NetworkInterfaceUpdate {
  std::string iface_id;
};
Result<NetworkInterfaceUpdate> parse_network_interface_update(const nlohmann::json& j);
Result<Vsock> parse_vsock(const nlohmann::json& j);
Result<Logger> parse_logger(const nlohmann::json& j);
Result<Metrics> parse_metrics(const nlohmann::json& j);
Result<Entropy> parse_entropy(const nlohmann::json& j);
Result<Serial> parse_serial(const nlohmann::json& j);
Result<SnapshotCreate> parse_snapshot_create(const nlohmann::json& j);
Result<SnapshotLoad> parse_snapshot_load(const nlohmann::json& j);
Result<VmState> parse_vm_state(const nlohmann::json& j);
Result<ActionType> parse_action(const nlohmann::json& j);

// The whole --config-file. Sections are applied in Firecracker's order (machine-config,
// boot-source, drives, network-interfaces, vsock, entropy), so duplicate drive ids replace and a
// second root device is an error here too. Errors are prefixed as Firecracker's are
// ("Invalid JSON: ...", "Block device error: ...").
Result<VmConfig> parse_vm_config(std::string_view text);
Result<VmConfig> parse_vm_config_json(const nlohmann::json& j);
// GET /vm/config: the same layout, with Firecracker's nulls for the optional fields, so that
// its output parses back with parse_vm_config.
nlohmann::json to_json(const VmConfig& config);
nlohmann::json to_json(const MachineConfig& config);  // GET /machine-config

// API resource ids (drive_id, iface_id): non-empty, ASCII letters, digits and '_'.
Status check_id(std::string_view id);
Result<std::array<uint8_t, 6>> parse_mac(std::string_view mac);

std::string_view to_string(HugePages h);
std::string_view to_string(CacheType c);
std::string_view to_string(LogLevel l);

}  // namespace strata::vmm::api
