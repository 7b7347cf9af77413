// Machine: one micro-VM. KVM objects, guest memory, the buses and their devices, the vCPU
// threads and the event loop for device back ends. create() builds everything and loads the
// kernel (a failure leaves nothing behind: every piece is RAII); run() runs the guest on the
// caller's thread's event loop until the guest ends or stop() is called, and says how it ended.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "vmm/boot/boot.h"
#include "vmm/devices/bus.h"
#include "vmm/devices/legacy.h"
#include "vmm/devices/virtio/device.h"
#include "vmm/devices/virtio/mmio.h"
#include "vmm/event_loop.h"
#include "vmm/guest_memory.h"
#include "vmm/kvm/kvm.h"

namespace strata::vmm {

// A device as configured (what a snapshot records so that restore can rebuild it).
struct DeviceSpec {
  enum Kind { kBlock, kNet, kVsock, kRng } kind = kBlock;
  std::string id;         // drive_id / iface_id / vsock id / "rng"
  std::string path;       // block: image file
  bool read_only = false;
  bool flush = true;      // block: cache_type Writeback
  std::string tap;        // net: host_dev_name
  std::string mac;        // net: guest_mac (may be empty)
  uint64_t cid = 0;       // vsock: guest_cid
  std::string uds_path;   // vsock
};

struct MachineSpec {
  uint32_t vcpus = 1;
  uint64_t mem_mib = 128;
  MemoryBacking backing = MemoryBacking::kAnonymous;
  KernelImage kernel;       // cmdline without the virtio_mmio.device= entries (added here)
  int console_out = 1;      // serial output (-1: discarded)
  int console_in = -1;      // serial input (-1: none)
  // virtio-mmio devices, in slot order: slot n at kMmioGapStart + n * 4 KiB, GSI 5 + n, each
  // announced on the command line as virtio_mmio.device=4K@<base>:<gsi>.
  std::vector<DeviceSpec> devices;
};

// Builds the virtio device a spec describes (opens its image, tap or socket).
Result<std::shared_ptr<virtio::VirtioDevice>> make_device(const DeviceSpec& spec);

constexpr uint32_t kFirstVirtioGsi = 5;
constexpr uint32_t kMaxVirtioDevices = 18;  // GSIs 5..22 of the IOAPIC's 24

// How a guest ended. exit_code() is strata-vmm's process exit status for it.
struct ExitReport {
  enum Kind { kPowerOff, kReset, kStopped, kTripleFault, kInternalError, kFailEntry, kHostError };
  Kind kind = kStopped;
  std::string detail;  // one line: what happened, on which vCPU, with its registers
  int exit_code() const;
  const char* name() const;
};

// The KVM objects a VM starts from, made ahead of time: creating the VM with its irqchip and
// PIT costs 1-8 ms of kernel work here (KVM_CREATE_PIT2 starts a kernel thread), which a
// monitor can pay while it waits for its API client instead of inside InstanceStart or
// /snapshot/load.
struct PreparedVm {
  Kvm kvm;
  Vm vm;
  CpuidEntries supported_cpuid;  // KVM_GET_SUPPORTED_CPUID (~0.35 ms), also paid ahead
};
Result<PreparedVm> prepare_vm();

class Machine {
 public:
  static Result<std::unique_ptr<Machine>> create(const MachineSpec& spec, std::optional<PreparedVm> prepared = std::nullopt);
  // A VM from a snapshot (Firecracker's /snapshot/load): guest memory mapped privately from
  // mem_path, so pages are read when the guest touches them; vCPUs, irqchip, PIT, clock, serial
  // and virtio devices as saved. Devices are rebuilt from the specs the snapshot records; the
  // console goes to console_out.
  static Result<std::unique_ptr<Machine>> restore(const std::string& state_path, const std::string& mem_path,
                                                  int console_out, std::optional<PreparedVm> prepared = std::nullopt);
  ~Machine();

  // Writes the VM's state to state_path and its memory to mem_path (pages the guest never
  // touched stay holes in the file). The VM must be paused. Both files are written whole or
  // not at all (temporary names, renamed at the end).
  Status snapshot(const std::string& state_path, const std::string& mem_path);

  // Starts the vCPU threads (the guest runs from here; or stays paused until resume()).
  Status start(bool paused = false);
  // Runs the event loop until the guest ends or stop(); joins the vCPUs.
  ExitReport run();
  // Ends the VM from any thread (run() returns kind kStopped unless the guest ended first).
  void stop();
  Status pause();
  Status resume();
  // Ctrl+Alt+Del on the i8042 keyboard (the API's SendCtrlAltDel).
  Status send_ctrl_alt_del() { return i8042_->press_ctrl_alt_del(); }
  bool paused() const { return paused_; }

  EventLoop& loop() { return *loop_; }
  GuestMemory& memory() { return mem_; }
  const Vm& vm() const { return vm_; }
  Bus& mmio_bus() { return mmio_; }
  Bus& pio_bus() { return pio_; }
  const std::string& cmdline() const { return cmdline_; }
  const MachineSpec& spec() const { return spec_; }
  const BootSetup& boot() const { return boot_; }
  const std::vector<std::shared_ptr<virtio::MmioTransport>>& transports() const { return transports_; }

 private:
  Machine() = default;
  // KVM, memory slots, the event loop, legacy and virtio devices, vCPUs with CPUID, and for a
  // boot (not for a restore, whose saved state replaces them) the boot MSRs, FPU and LAPIC.
  enum class For { kBoot, kRestore };
  static Result<std::unique_ptr<Machine>> build(const MachineSpec& spec, GuestMemory mem, std::optional<PreparedVm> prepared,
                                                For purpose);
  void vcpu_loop(Vcpu* v);
  bool handle_exit(Vcpu* v);  // false: this vCPU stops
  void finish(ExitReport r);  // the first report wins
  void kick_all();
  Status add_virtio(std::shared_ptr<virtio::VirtioDevice> dev, uint32_t slot);

  MachineSpec spec_;
  Kvm kvm_;
  Vm vm_;
  GuestMemory mem_;
  std::unique_ptr<EventLoop> loop_;
  Bus pio_, mmio_;
  std::vector<std::unique_ptr<Vcpu>> vcpus_;
  std::vector<std::thread> threads_;
  std::shared_ptr<Serial> serial_;
  std::shared_ptr<I8042> i8042_;
  std::vector<std::shared_ptr<virtio::MmioTransport>> transports_;
  std::vector<UniqueFd> notify_fds_;
  std::string cmdline_;
  BootSetup boot_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> paused_{false};
  uint32_t parked_ = 0;  // vCPUs waiting while paused
  bool finished_ = false;
  ExitReport report_;
};

}  // namespace strata::vmm
