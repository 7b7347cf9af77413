#include "vmm/monitor.h"

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

#include "base/fd.h"
#include "vmm/devices/virtio/blk.h"
#include "vmm/host_files.h"
#include "vmm/logger.h"

namespace strata::vmm {

const char* const kDefaultCmdline =
    "console=ttyS0 reboot=k panic=1 pci=off nomodule i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd";

Result<MachineSpec> spec_from_config(const api::VmConfig& config, int console_out, int console_in) {
  if (!config.boot_source) return Error("no boot source: PUT /boot-source first (or \"boot-source\" in the config file)");
  MachineSpec s;
  s.vcpus = config.machine_config.vcpu_count;
  s.mem_mib = config.machine_config.mem_size_mib;
  s.backing = config.machine_config.huge_pages == api::HugePages::k2M ? MemoryBacking::kHugePages : MemoryBacking::kAnonymous;
  s.console_out = console_out;
  s.console_in = console_in;
  s.kernel.kernel_path = config.boot_source->kernel_image_path;
  s.kernel.initrd_path = config.boot_source->initrd_path.value_or("");
  s.kernel.cmdline = config.boot_source->boot_args.value_or(kDefaultCmdline);
  for (const auto& d : config.drives) {
    DeviceSpec ds;
    ds.kind = DeviceSpec::kBlock;
    ds.id = d.drive_id;
    ds.path = d.path_on_host;
    ds.read_only = d.is_read_only;
    ds.flush = d.cache_type == api::CacheType::kWriteback;
    s.devices.push_back(ds);
    if (d.is_root_device) {
      s.kernel.cmdline += d.partuuid ? " root=PARTUUID=" + *d.partuuid : std::string(" root=/dev/vda");
      s.kernel.cmdline += d.is_read_only ? " ro" : " rw";
    }
  }
  for (const auto& n : config.network_interfaces) {
    DeviceSpec ds;
    ds.kind = DeviceSpec::kNet;
    ds.id = n.iface_id;
    ds.tap = n.host_dev_name;
    ds.mac = n.guest_mac.value_or("");
    s.devices.push_back(ds);
  }
  if (config.vsock) {
    DeviceSpec ds;
    ds.kind = DeviceSpec::kVsock;
    ds.id = config.vsock->vsock_id.value_or("vsock");
    ds.cid = config.vsock->guest_cid;
    ds.uds_path = config.vsock->uds_path;
    s.devices.push_back(ds);
  }
  if (config.entropy) s.devices.push_back({DeviceSpec::kRng, "rng"});
  return s;
}

Monitor::Monitor(int console_out, int console_in)
    : console_out_(console_out), console_in_(console_in), prepared_(std::async(std::launch::async, prepare_vm)) {}

Monitor::~Monitor() {
  if (prepared_.valid()) prepared_.wait();
}

std::optional<PreparedVm> Monitor::take_prepared() {
  if (!prepared_.valid()) return std::nullopt;
  auto r = prepared_.get();
  if (!r) return std::nullopt;
  return std::move(*r);
}

api::InstanceState Monitor::state() const {
  std::lock_guard<std::mutex> g(mu_);
  if (!machine_) return api::InstanceState::kNotStarted;
  return paused_ ? api::InstanceState::kPaused : api::InstanceState::kRunning;
}

Status Monitor::check_boot_source(const api::BootSource& boot) {
  TRY(VmController::check_boot_source(boot));
  ASSIGN_OR_RETURN(UniqueFd fd, open_regular_file(boot.kernel_image_path, "kernel"));
  uint8_t h[0x210] = {};
  ssize_t n = ::pread(fd.get(), h, sizeof h, 0);
  bool elf = n >= 4 && std::memcmp(h, "\x7f" "ELF", 4) == 0;
  bool bz = n >= 0x206 && std::memcmp(h + 0x202, "HdrS", 4) == 0;
  if (!elf && !bz) return Error(boot.kernel_image_path + " is not a kernel: neither an ELF file nor a bzImage");
  return ok();
}

Status Monitor::configure_logger(const api::Logger& logger) {
  bool debug =
      logger.level && (*logger.level == api::LogLevel::kDebug || *logger.level == api::LogLevel::kTrace);
  return configure_log(logger.log_path.value_or(""), debug);
}

Status Monitor::configure_metrics(const api::Metrics& metrics) {
  // Opened once and kept, as Firecracker keeps its metrics file: a FIFO is opened without
  // waiting for a reader, and each flush is one non-blocking write.
  ASSIGN_OR_RETURN(UniqueFd fd, open_output(metrics.metrics_path, "metrics file"));
  std::lock_guard<std::mutex> g(mu_);
  metrics_path_ = metrics.metrics_path;
  metrics_fd_ = std::move(fd);
  return ok();
}

Status Monitor::launch(std::unique_ptr<Machine> m, bool paused) {
  TRY(m->start(paused));
  std::lock_guard<std::mutex> g(mu_);
  machine_ = std::move(m);
  paused_ = paused;
  cv_.notify_all();
  return ok();
}

Status Monitor::start(const api::VmConfig& config) {
  int out = console_out_;
  if (config.serial) {
    // Appended to; a FIFO needs no reader (Firecracker's serial_out_path): the UART drops what
    // does not fit rather than stopping the vCPU.
    ASSIGN_OR_RETURN(serial_fd_, open_output(config.serial->serial_out_path, "serial output"));
    out = serial_fd_.get();
  }
  ASSIGN_OR_RETURN(auto spec, spec_from_config(config, out, console_in_));
  ASSIGN_OR_RETURN(auto m, Machine::create(spec, take_prepared()));
  return launch(std::move(m), false);
}

Status Monitor::pause() {
  std::lock_guard<std::mutex> g(mu_);
  if (!machine_) return Error("the microVM is not running");
  TRY(machine_->pause());
  paused_ = true;
  return ok();
}

Status Monitor::resume() {
  std::lock_guard<std::mutex> g(mu_);
  if (!machine_) return Error("the microVM is not running");
  TRY(machine_->resume());
  paused_ = false;
  return ok();
}

Status Monitor::send_ctrl_alt_del() {
  std::lock_guard<std::mutex> g(mu_);
  if (!machine_) return Error("SendCtrlAltDel: the microVM is not running");
  return machine_->send_ctrl_alt_del();
}

Status Monitor::flush_metrics() {
  std::lock_guard<std::mutex> g(mu_);
  if (!metrics_fd_) return Error("no metrics file: PUT /metrics first");
  nlohmann::json j;
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::system_clock::now().time_since_epoch());
  j["utc_timestamp_ms"] = now.count();
  j["logger"] = {{"missed_log_count", missed_log_lines()}};
  if (machine_) {
    nlohmann::json devs = nlohmann::json::object();
    for (const auto& t : machine_->transports()) {
      devs[t->name()] = {{"status", t->status()}, {"failed", t->failed()}};
    }
    j["devices"] = devs;
  }
  // Never blocks: a FIFO nobody empties makes this flush fail (EAGAIN), not the API thread wait.
  return write_line(metrics_fd_.get(), j.dump() + "\n", "metrics file " + metrics_path_);
}

Status Monitor::snapshot_create(const api::SnapshotCreate& params) {
  std::lock_guard<std::mutex> g(mu_);
  if (!machine_) return Error("the microVM is not running");
  return machine_->snapshot(params.snapshot_path, params.mem_file_path);
}

Result<api::VmConfig> Monitor::snapshot_load(const api::SnapshotLoad& params) {
  ASSIGN_OR_RETURN(auto m, Machine::restore(params.snapshot_path, params.mem_file_path, console_out_, take_prepared()));
  api::VmConfig config;
  const MachineSpec& s = m->spec();
  config.machine_config.vcpu_count = s.vcpus;
  config.machine_config.mem_size_mib = s.mem_mib;
  for (const auto& d : s.devices) {
    switch (d.kind) {
      case DeviceSpec::kBlock: {
        api::Drive dr;
        dr.drive_id = d.id;
        dr.path_on_host = d.path;
        dr.is_read_only = d.read_only;
        config.drives.push_back(dr);
        break;
      }
      case DeviceSpec::kNet: {
        api::NetworkInterface n;
        n.iface_id = d.id;
        n.host_dev_name = d.tap;
        if (!d.mac.empty()) n.guest_mac = d.mac;
        config.network_interfaces.push_back(n);
        break;
      }
      case DeviceSpec::kVsock:
        config.vsock = api::Vsock{static_cast<uint32_t>(d.cid), d.uds_path, std::nullopt};
        break;
      case DeviceSpec::kRng:
        config.entropy = api::Entropy{};
        break;
    }
  }
  TRY(launch(std::move(m), !params.resume_vm));
  return config;
}

Status Monitor::patch_drive(const std::string& drive_id, const std::string& new_path) {
  std::lock_guard<std::mutex> g(mu_);
  if (!machine_) return Error("the microVM is not running");
  for (const auto& t : machine_->transports()) {
    if (auto* blk = dynamic_cast<virtio::BlockDevice*>(&t->device()); blk && blk->config().id == drive_id) {
      return blk->update_backing(new_path);
    }
  }
  return Error("drive " + drive_id + " is not attached to the running microVM");
}

ExitReport Monitor::run_until_exit() {
  Machine* m = nullptr;
  {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return machine_ != nullptr || shutdown_; });
    if (!machine_) return {ExitReport::kStopped, ""};
    m = machine_.get();
    running_ = true;
  }
  return m->run();
}

void Monitor::shutdown() {
  std::lock_guard<std::mutex> g(mu_);
  shutdown_ = true;
  if (machine_) machine_->stop();
  cv_.notify_all();
}

}  // namespace strata::vmm
