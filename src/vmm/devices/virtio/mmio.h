// MmioTransport: a virtio device on the guest's MMIO bus, virtio-mmio version 2 (virtio 1.2
// section 4.2.2): a 0x1000-byte window of 32-bit registers with the device's config space from
// 0x100. It negotiates features (VERSION_1 always offered and required), holds the queues'
// configuration and the device status, activates the device on DRIVER_OK and resets it when
// the driver writes 0 to Status.
//
// Threads: register accesses come from vCPU threads, notify() from the event-loop thread (its
// ioeventfd on QueueNotify) and run_active()/run_locked() from the device's own handlers or the
// API thread. One mutex per transport serialises all of them, device callbacks included.
//
// The monitor wires it as:
//   auto t = std::make_shared<MmioTransport>(blk, mem, irq, loop);
//   bus.insert(base, MmioTransport::kWindowSize, t, t->name());
//   for q < t->num_queues(): KVM_IOEVENTFD {addr = base + MmioTransport::kNotifyOffset, len 4,
//                            datamatch = q} -> loop->add(efd, [t, q](uint32_t) { drain; t->notify(q); })
//   kernel cmdline: virtio_mmio.device=4K@0x<base>:<gsi>
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/error.h"
#include "vmm/devices/bus.h"
#include "vmm/devices/virtio/device.h"
#include "vmm/devices/virtio/queue.h"

namespace strata::vmm {
class EventLoop;
class GuestMemory;
class IrqLine;
}  // namespace strata::vmm

namespace strata::vmm::virtio {

// Register offsets (4.2.2).
namespace mmio {
constexpr uint64_t kMagicValue = 0x000;
constexpr uint64_t kVersion = 0x004;
constexpr uint64_t kDeviceId = 0x008;
constexpr uint64_t kVendorId = 0x00c;
constexpr uint64_t kDeviceFeatures = 0x010;
constexpr uint64_t kDeviceFeaturesSel = 0x014;
constexpr uint64_t kDriverFeatures = 0x020;
constexpr uint64_t kDriverFeaturesSel = 0x024;
constexpr uint64_t kQueueSel = 0x030;
constexpr uint64_t kQueueNumMax = 0x034;
constexpr uint64_t kQueueNum = 0x038;
constexpr uint64_t kQueueReady = 0x044;
constexpr uint64_t kQueueNotify = 0x050;
constexpr uint64_t kInterruptStatus = 0x060;
constexpr uint64_t kInterruptAck = 0x064;
constexpr uint64_t kStatus = 0x070;
constexpr uint64_t kQueueDescLow = 0x080;
constexpr uint64_t kQueueDescHigh = 0x084;
constexpr uint64_t kQueueDriverLow = 0x090;
constexpr uint64_t kQueueDriverHigh = 0x094;
constexpr uint64_t kQueueDeviceLow = 0x0a0;
constexpr uint64_t kQueueDeviceHigh = 0x0a4;
constexpr uint64_t kShmSel = 0x0ac;
constexpr uint64_t kShmLenLow = 0x0b0;
constexpr uint64_t kShmLenHigh = 0x0b4;
constexpr uint64_t kShmBaseLow = 0x0b8;
constexpr uint64_t kShmBaseHigh = 0x0bc;
constexpr uint64_t kConfigGeneration = 0x0fc;
constexpr uint64_t kConfig = 0x100;

constexpr uint32_t kMagic = 0x74726976;   // "virt"
constexpr uint32_t kVendor = 0x4d524453;  // "SDRM"
constexpr uint32_t kInterruptUsedBuffer = 1;
constexpr uint32_t kInterruptConfigChange = 2;
}  // namespace mmio

class MmioTransport : public BusDevice, public VirtioHost {
 public:
  static constexpr uint64_t kWindowSize = 0x1000;
  // Where the driver writes a queue index to notify it: the address for KVM_IOEVENTFD, with
  // datamatch = the queue index (4-byte access).
  static constexpr uint64_t kNotifyOffset = mmio::kQueueNotify;

  // `mem` and `loop` (may be null) must outlive the transport.
  MmioTransport(std::shared_ptr<VirtioDevice> device, const GuestMemory& mem, std::shared_ptr<IrqLine> irq,
                EventLoop* loop = nullptr);
  ~MmioTransport() override;
  MmioTransport(const MmioTransport&) = delete;
  MmioTransport& operator=(const MmioTransport&) = delete;

  // BusDevice (vCPU threads).
  void read(uint64_t offset, uint8_t* data, size_t len) override;
  void write(uint64_t offset, const uint8_t* data, size_t len) override;

  // The driver notified `queue` (ioeventfd on the event-loop thread, or a trapped write).
  // Ignored unless the device is active, not failed and the queue ready.
  void notify(uint32_t queue);

  size_t num_queues() const { return queues_.size(); }
  const std::string& name() const { return name_; }
  VirtioDevice& device() const { return *device_; }
  uint32_t status();
  uint32_t interrupt_status();
  bool failed();

  // VirtioHost.
  void run_active(const std::function<Status()>& fn) override;
  Status run_locked(const std::function<Status()>& fn) override;
  void config_changed() override;

  // Registers, negotiated features, queues (addresses and ring positions) and the device's own
  // state. restore_state() re-activates a device that was running, which then resumes at the
  // saved ring positions in the restored guest memory.
  nlohmann::json save_state();
  Status restore_state(const nlohmann::json& state);

 private:
  uint32_t read_reg(uint64_t offset);
  void write_reg(uint64_t offset, uint32_t value);
  void set_status(uint32_t value);
  uint64_t offered_features() const;
  void activate();
  void reset();
  void fail(const Error& e);
  void notify_locked(uint32_t queue);
  void signal_used();
  void raise(uint32_t bits);
  Queue* selected_queue();

  const std::shared_ptr<VirtioDevice> device_;
  const GuestMemory& mem_;
  const std::shared_ptr<IrqLine> irq_;
  EventLoop* const loop_;
  const std::string name_;

  std::mutex mu_;  // guards everything below and every call into device_
  std::vector<Queue> queues_;
  uint32_t device_features_sel_ = 0;
  uint32_t driver_features_sel_ = 0;
  uint64_t driver_features_ = 0;
  uint32_t queue_sel_ = 0;
  uint32_t status_ = 0;
  uint32_t interrupt_status_ = 0;
  uint32_t config_generation_ = 0;
  bool active_ = false;  // device_->activate() succeeded and no reset/failure since
  bool failed_ = false;  // DEVICE_NEEDS_RESET set by us; cleared by a reset
  uint64_t failures_ = 0;  // for rate-limiting the log (a guest can fail and reset in a loop)
  uint64_t refusals_ = 0;  // FEATURES_OK refused, same
};

}  // namespace strata::vmm::virtio
