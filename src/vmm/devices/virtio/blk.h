// BlockDevice: virtio-blk (virtio 1.2 section 5.2) over a raw image file, read-only or
// read-write, one request queue. Requests are served synchronously with preadv/pwritev
// straight into guest memory. The request layout is not assumed (VERSION_1 implies ANY_LAYOUT):
// the readable stream starts with the 16-byte header, the last writable byte is the status.
//
// A request the device can answer gets a status: unsupported types VIRTIO_BLK_S_UNSUPP,
// out-of-range sectors, a data length that is not whole sectors, writes to a read-only disk and
// host I/O errors VIRTIO_BLK_S_IOERR (nothing written). A chain without room for the header or
// the status is a broken driver: process() fails and the transport marks the device for reset.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "vmm/devices/virtio/device.h"

namespace strata::vmm::virtio {

// Feature bits (5.2.3).
constexpr uint32_t kBlkFSegMax = 2;
constexpr uint32_t kBlkFRo = 5;
constexpr uint32_t kBlkFFlush = 9;

// Request types and statuses (5.2.6).
constexpr uint32_t kBlkTIn = 0;
constexpr uint32_t kBlkTOut = 1;
constexpr uint32_t kBlkTFlush = 4;
constexpr uint32_t kBlkTGetId = 8;
constexpr uint8_t kBlkSOk = 0;
constexpr uint8_t kBlkSIoErr = 1;
constexpr uint8_t kBlkSUnsupp = 2;

constexpr uint64_t kSectorSize = 512;
constexpr size_t kBlkIdBytes = 20;

struct BlockConfig {
  std::string id;         // the drive id (Firecracker's drive_id): names the device in logs
  std::string path;       // raw image
  bool read_only = false;
  bool flush = true;      // offer VIRTIO_BLK_F_FLUSH (fdatasync); Firecracker's cache_type Writeback
  std::string serial;     // VIRTIO_BLK_T_GET_ID answer, at most 20 bytes; empty: the id
  uint16_t queue_size = 256;
};

class BlockDevice : public VirtioDevice {
 public:
  static Result<std::shared_ptr<BlockDevice>> create(BlockConfig config);

  // Replaces the backing file (Firecracker's PATCH /drives/{id}): the new capacity appears in
  // the config space with a configuration-change interrupt. Thread-safe.
  Status update_backing(const std::string& path);

  uint64_t capacity_sectors() const { return capacity_sectors_; }
  const BlockConfig& config() const { return config_; }

  // VirtioDevice.
  DeviceType type() const override { return DeviceType::kBlock; }
  std::string name() const override;
  uint64_t features() const override;
  size_t num_queues() const override { return 1; }
  uint16_t max_queue_size(size_t) const override { return config_.queue_size; }
  void read_config(uint64_t offset, uint8_t* data, size_t len) const override;
  Status activate(const ActivateContext& ctx) override;
  Status process(size_t queue) override;
  void reset() override;

 private:
  explicit BlockDevice(BlockConfig config) : config_(std::move(config)) {}
  static Result<UniqueFd> open_image(const std::string& path, bool read_only, uint64_t* sectors);
  Result<uint32_t> serve(const DescriptorChain& chain);  // bytes written into the chain
  uint8_t execute(uint32_t type, uint64_t sector, const DescriptorChain& chain, uint64_t data_len, uint32_t* written);

  BlockConfig config_;
  UniqueFd fd_;
  uint64_t capacity_sectors_ = 0;
  Queue* queue_ = nullptr;  // while active
  uint64_t features_ = 0;   // negotiated
  DescriptorChain chain_;   // reused between requests
  std::vector<iovec> iov_;
};

}  // namespace strata::vmm::virtio
