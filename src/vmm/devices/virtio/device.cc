#include "vmm/devices/virtio/device.h"

#include <cstring>

#include <nlohmann/json.hpp>

namespace strata::vmm::virtio {

const char* device_type_name(DeviceType t) {
  switch (t) {
    case DeviceType::kNet:
      return "virtio-net";
    case DeviceType::kBlock:
      return "virtio-blk";
    case DeviceType::kConsole:
      return "virtio-console";
    case DeviceType::kRng:
      return "virtio-rng";
    case DeviceType::kVsock:
      return "virtio-vsock";
  }
  return "virtio";
}

nlohmann::json VirtioDevice::save_state() const { return nlohmann::json::object(); }

Status VirtioDevice::restore_state(const nlohmann::json&) { return ok(); }

void VirtioDevice::read_config_bytes(const void* config, size_t config_len, uint64_t offset, uint8_t* data,
                                     size_t len) {
  std::memset(data, 0, len);
  if (offset >= config_len) return;
  std::memcpy(data, static_cast<const uint8_t*>(config) + offset, std::min<uint64_t>(len, config_len - offset));
}

}  // namespace strata::vmm::virtio
