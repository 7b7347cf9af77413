// RngDevice: virtio-rng / entropy device (virtio 1.2 section 5.4): one request queue whose
// device-writable buffers are filled from getrandom(). Readable buffers in a request are
// ignored; at most kMaxRequestBytes are filled per request (the used length says how many).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/error.h"
#include "vmm/devices/virtio/device.h"

namespace strata::vmm::virtio {

class RngDevice : public VirtioDevice {
 public:
  static constexpr uint64_t kMaxRequestBytes = 64 * 1024;

  explicit RngDevice(std::string id = "rng", uint16_t queue_size = 256) : id_(std::move(id)), queue_size_(queue_size) {}

  // VirtioDevice.
  DeviceType type() const override { return DeviceType::kRng; }
  std::string name() const override { return std::string(device_type_name(type())) + " " + id_; }
  uint64_t features() const override { return feature(kFRingEventIdx) | feature(kFRingIndirectDesc); }
  size_t num_queues() const override { return 1; }
  uint16_t max_queue_size(size_t) const override { return queue_size_; }
  void read_config(uint64_t, uint8_t* data, size_t len) const override;  // no config space
  Status activate(const ActivateContext& ctx) override;
  Status process(size_t queue) override;
  void reset() override { queue_ = nullptr; }

 private:
  std::string id_;
  uint16_t queue_size_;
  Queue* queue_ = nullptr;
  DescriptorChain chain_;
};

}  // namespace strata::vmm::virtio
