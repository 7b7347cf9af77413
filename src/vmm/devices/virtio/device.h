// VirtioDevice: what a virtio device (blk, rng, net, vsock) implements, independent of the
// transport that shows it to the guest (virtio-mmio today). The transport owns the feature
// negotiation, the queues' configuration and the device status; the device sees only:
//   - its identity, features, queues and config space (read while the driver probes),
//   - activate() when the driver sets DRIVER_OK, with checked queues and guest memory,
//   - process(q) when the driver notifies queue q,
//   - reset() when the driver writes 0 to the status (or after a failure).
// All of these run with the transport's lock held: a device needs no lock of its own for state
// it touches only from them. Work started by an fd of its own (a tap, a unix socket) goes
// through host()->run_active(), which takes the same lock.
//
// Interrupts: a device only calls Queue::add_used(); after each process()/run_active() the
// transport asks every queue whether the driver wants an interrupt (EVENT_IDX or NO_INTERRUPT)
// and raises it. An Error returned from activate()/process()/run_active() fails the device:
// DEVICE_NEEDS_RESET, a configuration-change interrupt, and nothing more until a reset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "base/error.h"
#include "vmm/devices/virtio/queue.h"

namespace strata::vmm {
class EventLoop;
class GuestMemory;
}  // namespace strata::vmm

namespace strata::vmm::virtio {

// Device IDs (5).
enum class DeviceType : uint32_t { kNet = 1, kBlock = 2, kConsole = 3, kRng = 4, kVsock = 19 };
const char* device_type_name(DeviceType t);  // "virtio-blk", ...

// Transport-level feature bits (6).
constexpr uint32_t kFVersion1 = 32;

// Device status bits (2.1).
constexpr uint32_t kStatusAcknowledge = 1;
constexpr uint32_t kStatusDriver = 2;
constexpr uint32_t kStatusDriverOk = 4;
constexpr uint32_t kStatusFeaturesOk = 8;
constexpr uint32_t kStatusDeviceNeedsReset = 0x40;
constexpr uint32_t kStatusFailed = 0x80;

// The transport as its device sees it (MmioTransport implements it).
class VirtioHost {
 public:
  virtual ~VirtioHost() = default;
  // Runs `fn` under the transport's lock if the device is active and not failed (else does
  // nothing). An error from `fn` fails the device; afterwards the used-buffer interrupt is raised
  // for every queue that asks for one. For work driven by the device's own fds (tap readable,
  // vsock socket), called from the event-loop thread.
  virtual void run_active(const std::function<Status()>& fn) = 0;
  // Runs `fn` under the transport's lock whatever the state: for changes from another thread
  // (the API's PATCH /drives), typically followed by config_changed() inside `fn`.
  virtual Status run_locked(const std::function<Status()>& fn) = 0;
  // The config space changed: bumps ConfigGeneration and, once the driver is running, raises the
  // configuration-change interrupt. Call with the lock held (inside process(), run_locked(), ...).
  virtual void config_changed() = 0;
};

// What activate() gets; everything stays valid until reset().
struct ActivateContext {
  const GuestMemory& mem;
  std::span<Queue> queues;   // num_queues() entries; a queue the driver left unready is inert
  uint64_t features = 0;     // negotiated (acknowledged by the driver and accepted)
  EventLoop* loop = nullptr; // for devices with fds of their own; null in unit tests
};

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;

  virtual DeviceType type() const = 0;
  // Names the device in logs, with its type: "virtio-blk rootfs".
  virtual std::string name() const = 0;
  // Feature bits the device offers, including ring features it handles (EVENT_IDX, INDIRECT_DESC:
  // Queue implements both, so a device normally offers them). VERSION_1 is added by the transport.
  virtual uint64_t features() const = 0;
  virtual size_t num_queues() const = 0;
  virtual uint16_t max_queue_size(size_t queue) const = 0;

  // Device config space (4.2.2.2: accessed at any width; out-of-range bytes read as 0).
  virtual void read_config(uint64_t offset, uint8_t* data, size_t len) const = 0;
  virtual void write_config(uint64_t /*offset*/, const uint8_t* /*data*/, size_t /*len*/) {}

  virtual Status activate(const ActivateContext& ctx) = 0;
  // The driver notified `queue` (0 <= queue < num_queues(), the queue active).
  virtual Status process(size_t queue) = 0;
  // Back to the state before activate(): drop queue references, unregister fds from the loop.
  virtual void reset() = 0;

  // Device-specific state for snapshots (the transport saves queues and registers itself).
  // restore_state() runs before the transport re-activates a restored running device.
  virtual nlohmann::json save_state() const;
  virtual Status restore_state(const nlohmann::json& state);

  // Set by the transport that shows this device; null while none does.
  VirtioHost* host() const { return host_; }
  void set_host(VirtioHost* h) { host_ = h; }

 protected:
  // For read_config(): copies the bytes of `config` (a device's config struct) at offset.
  static void read_config_bytes(const void* config, size_t config_len, uint64_t offset, uint8_t* data, size_t len);

 private:
  VirtioHost* host_ = nullptr;
};

}  // namespace strata::vmm::virtio
