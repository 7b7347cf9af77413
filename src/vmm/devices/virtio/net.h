// NetDevice: virtio-net (virtio 1.2 section 5.1) on a host tap device, one RX/TX queue pair.
// Firecracker's model (devices/virtio/net/): no offloads, no mergeable RX buffers; the 12-byte
// virtio_net_hdr_v1 passes straight through because the tap is opened with IFF_VNET_HDR and a
// vnet header size of 12.
//
//   TX (queue 1): on notify, each chain (header + frame) is written to the tap with one writev()
//     straight from guest memory. A chain over kMaxFrameBytes fails the device (Firecracker's
//     limit); a chain shorter than the header or a write the tap refuses (EAGAIN: its queue is
//     full) drops the frame and counts it.
//   RX (queue 0): the tap fd is watched by the EventLoop from activate() to reset(). When it is
//     readable, frames are read with readv() straight into the posted chains (a scratch iovec
//     behind them catches frames longer than the chain, which are dropped and counted). With no
//     chain posted, the tap is no longer polled until the driver notifies queue 0 again.
//
// Counters are atomics, readable from any thread (the metrics endpoint).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "vmm/devices/virtio/device.h"

namespace strata::vmm {
class EventLoop;
}

namespace strata::vmm::virtio {

// Feature bits (5.1.3).
constexpr uint32_t kNetFMac = 5;

using MacAddress = std::array<uint8_t, 6>;
// "aa:bb:cc:dd:ee:ff" (hex digits, either case) -> bytes.
Result<MacAddress> parse_mac(std::string_view text);
std::string mac_to_string(const MacAddress& mac);

struct NetConfig {
  std::string id;                  // Firecracker's iface_id: names the device in logs
  std::string tap_name;            // host_dev_name
  std::optional<MacAddress> mac;   // guest_mac; offered with VIRTIO_NET_F_MAC when set
  uint16_t queue_size = 256;
};

struct NetCounters {
  uint64_t rx_frames = 0;
  uint64_t rx_bytes = 0;     // frame bytes (the virtio header not counted)
  uint64_t rx_dropped = 0;   // longer than the posted chain, or a chain without room for the header
  uint64_t tx_frames = 0;
  uint64_t tx_bytes = 0;
  uint64_t tx_dropped = 0;   // the tap refused the write, or a chain shorter than the header
};

class NetDevice : public VirtioDevice {
 public:
  static constexpr size_t kVnetHdrBytes = 12;        // sizeof(struct virtio_net_hdr_v1)
  static constexpr size_t kMaxFrameBytes = 65562;    // header + frame, Firecracker's MAX_BUFFER_SIZE
  static constexpr int kMaxRxFramesPerTurn = 256;    // fairness with the loop's other fds

  // Opens the tap `config.tap_name` ("open tap tap0: ..." on failure).
  static Result<std::shared_ptr<NetDevice>> create(NetConfig config);
  // An already-open tap fd (nonblocking, vnet header of 12 bytes); tests pass a socketpair end.
  NetDevice(NetConfig config, UniqueFd tap);
  ~NetDevice() override;

  // Opens /dev/net/tun as `name` with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, vnet header size 12,
  // nonblocking.
  static Result<UniqueFd> open_tap(const std::string& name);

  const NetConfig& config() const { return config_; }
  NetCounters counters() const;
  int tap_fd() const { return tap_.get(); }

  // VirtioDevice.
  DeviceType type() const override { return DeviceType::kNet; }
  std::string name() const override { return std::string(device_type_name(type())) + " " + config_.id; }
  uint64_t features() const override;
  size_t num_queues() const override { return 2; }
  uint16_t max_queue_size(size_t) const override { return config_.queue_size; }
  void read_config(uint64_t offset, uint8_t* data, size_t len) const override;
  Status activate(const ActivateContext& ctx) override;
  Status process(size_t queue) override;
  void reset() override;
  // The MAC, the tap's name and the counters; restore reopens the tap when it is not the one open.
  nlohmann::json save_state() const override;
  Status restore_state(const nlohmann::json& state) override;

 private:
  Status process_tx();
  Status process_rx();
  void set_rx_polling(bool on);
  void unregister();

  NetConfig config_;
  UniqueFd tap_;
  Queue* rx_ = nullptr;  // while active
  Queue* tx_ = nullptr;
  EventLoop* loop_ = nullptr;
  bool registered_ = false;  // the tap fd is in loop_
  bool rx_polling_ = false;  // ... watched for EPOLLIN
  DescriptorChain chain_;
  std::vector<iovec> iov_;
  std::vector<uint8_t> scratch_;  // catches the tail of a frame longer than the RX chain

  std::atomic<uint64_t> rx_frames_{0}, rx_bytes_{0}, rx_dropped_{0};
  std::atomic<uint64_t> tx_frames_{0}, tx_bytes_{0}, tx_dropped_{0};
};

}  // namespace strata::vmm::virtio
