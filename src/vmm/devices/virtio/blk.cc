#include "vmm/devices/virtio/blk.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "vmm/guest_memory.h"
#include "vmm/host_files.h"

namespace strata::vmm::virtio {
namespace {

// virtio_blk_config up to blk_size (5.2.4); the fields after it belong to features not offered.
struct BlkConfigSpace {
  uint64_t capacity;
  uint32_t size_max;
  uint32_t seg_max;
  uint16_t cylinders;
  uint8_t heads;
  uint8_t sectors;
  uint32_t blk_size;
};
static_assert(sizeof(BlkConfigSpace) == 24);

// Larger requests get IOERR: Linux sends at most max_sectors (a few MiB), and the limit keeps
// the used length in 32 bits (buffers may overlap, so a chain can name far more than RAM).
constexpr uint64_t kMaxRequestBytes = 1ull << 30;

struct RequestHeader {  // virtio_blk_req's device-readable head (5.2.6)
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};
static_assert(sizeof(RequestHeader) == 16);

// preadv/pwritev until `total` bytes moved, EOF or an error; returns the bytes moved.
Result<uint64_t> transfer(bool to_file, int fd, std::vector<iovec>& iov, uint64_t offset, uint64_t total) {
  uint64_t done = 0;
  size_t first = 0;
  while (done < total && first < iov.size()) {
    int count = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
    ssize_t n = to_file ? ::pwritev(fd, iov.data() + first, count, static_cast<off_t>(offset + done))
                        : ::preadv(fd, iov.data() + first, count, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::sys(to_file ? "pwritev" : "preadv");
    }
    if (n == 0) break;
    done += static_cast<uint64_t>(n);
    auto left = static_cast<size_t>(n);
    while (first < iov.size() && left >= iov[first].iov_len) left -= iov[first++].iov_len;
    if (left > 0) {
      iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return done;
}

}  // namespace

Result<UniqueFd> BlockDevice::open_image(const std::string& path, bool read_only, uint64_t* sectors) {
  // A regular file or a block device, opened without waiting (host_files.h): the path comes from
  // PUT or PATCH /drives and may have been replaced by a FIFO since it was checked.
  ASSIGN_OR_RETURN(UniqueFd fd, open_disk_image(path, read_only, "drive image"));
  off_t end = ::lseek(fd.get(), 0, SEEK_END);  // also right for a block device (st_size 0)
  if (end < 0) return Error::sys("find the size of drive image " + path);
  *sectors = static_cast<uint64_t>(end) / kSectorSize;
  return fd;
}

Result<std::shared_ptr<BlockDevice>> BlockDevice::create(BlockConfig config) {
  if (config.serial.empty()) config.serial = config.id;
  if (config.serial.size() > kBlkIdBytes)
    return Error("drive " + config.id + ": serial \"" + config.serial + "\" is longer than 20 bytes");
  if (config.queue_size < 2 || (config.queue_size & (config.queue_size - 1)) != 0)
    return Error("drive " + config.id + ": queue size " + std::to_string(config.queue_size) + " is not a power of two");
  std::shared_ptr<BlockDevice> d(new BlockDevice(std::move(config)));
  uint64_t sectors = 0;
  ASSIGN_OR_RETURN(d->fd_, open_image(d->config_.path, d->config_.read_only, &sectors));
  d->capacity_sectors_ = sectors;
  return d;
}

Status BlockDevice::update_backing(const std::string& path) {
  uint64_t sectors = 0;
  ASSIGN_OR_RETURN(UniqueFd fd, open_image(path, config_.read_only, &sectors));
  auto swap = [&]() -> Status {
    fd_ = std::move(fd);
    capacity_sectors_ = sectors;
    config_.path = path;
    if (host() != nullptr) host()->config_changed();
    return ok();
  };
  if (host() != nullptr) return host()->run_locked(swap);
  return swap();
}

std::string BlockDevice::name() const { return std::string(device_type_name(type())) + " " + config_.id; }

uint64_t BlockDevice::features() const {
  uint64_t f = feature(kFRingEventIdx) | feature(kFRingIndirectDesc) | feature(kBlkFSegMax);
  if (config_.read_only) f |= feature(kBlkFRo);
  if (config_.flush) f |= feature(kBlkFFlush);
  return f;
}

void BlockDevice::read_config(uint64_t offset, uint8_t* data, size_t len) const {
  BlkConfigSpace c{};
  c.capacity = capacity_sectors_;
  c.seg_max = config_.queue_size - 2u;  // room for the header and the status in a chain
  read_config_bytes(&c, sizeof c, offset, data, len);
}

Status BlockDevice::activate(const ActivateContext& ctx) {
  queue_ = &ctx.queues[0];
  features_ = ctx.features;
  return ok();
}

void BlockDevice::reset() {
  queue_ = nullptr;
  features_ = 0;
}

Status BlockDevice::process(size_t) {
  if (queue_ == nullptr) return ok();
  for (;;) {
    ASSIGN_OR_RETURN(bool got, queue_->pop(chain_));
    if (!got) return ok();
    ASSIGN_OR_RETURN(uint32_t written, serve(chain_));
    TRY(queue_->add_used(chain_.head(), written));
  }
}

Result<uint32_t> BlockDevice::serve(const DescriptorChain& chain) {
  if (chain.readable_bytes() < sizeof(RequestHeader))
    return Error("request " + std::to_string(chain.head()) + " has " + std::to_string(chain.readable_bytes()) +
                 " device-readable bytes, less than the 16-byte header");
  if (chain.writable_bytes() < 1)
    return Error("request " + std::to_string(chain.head()) + " has no device-writable byte for the status");
  RequestHeader h;
  chain.read(0, &h, sizeof h);  // copied once: the guest may change it under us
  uint64_t data_len = h.type == kBlkTOut ? chain.readable_bytes() - sizeof h : chain.writable_bytes() - 1;
  uint32_t written = 0;
  uint8_t status = execute(h.type, h.sector, chain, data_len, &written);
  chain.write(chain.writable_bytes() - 1, &status, 1);
  return written + 1;
}

uint8_t BlockDevice::execute(uint32_t type, uint64_t sector, const DescriptorChain& chain, uint64_t data_len,
                             uint32_t* written) {
  auto in_range = [&] {
    return data_len % kSectorSize == 0 && data_len <= kMaxRequestBytes && sector <= capacity_sectors_ &&
           data_len / kSectorSize <= capacity_sectors_ - sector;
  };
  switch (type) {
    case kBlkTIn: {
      if (!in_range()) return kBlkSIoErr;
      iov_.clear();
      chain.iovecs(true, 0, data_len, iov_);
      auto n = transfer(false, fd_.get(), iov_, sector * kSectorSize, data_len);
      if (!n.ok()) return kBlkSIoErr;
      *written = static_cast<uint32_t>(*n);  // <= kMaxRequestBytes
      return *n == data_len ? kBlkSOk : kBlkSIoErr;
    }
    case kBlkTOut: {
      if (config_.read_only || !in_range()) return kBlkSIoErr;
      iov_.clear();
      chain.iovecs(false, sizeof(RequestHeader), data_len, iov_);
      auto n = transfer(true, fd_.get(), iov_, sector * kSectorSize, data_len);
      return n.ok() && *n == data_len ? kBlkSOk : kBlkSIoErr;
    }
    case kBlkTFlush:
      if (config_.read_only || !(features_ & feature(kBlkFFlush))) return kBlkSOk;
      return ::fdatasync(fd_.get()) == 0 ? kBlkSOk : kBlkSIoErr;
    case kBlkTGetId: {
      char id[kBlkIdBytes] = {};  // NUL-padded when shorter than 20 bytes (5.2.6)
      std::memcpy(id, config_.serial.data(), std::min(config_.serial.size(), kBlkIdBytes));
      *written = static_cast<uint32_t>(chain.write(0, id, static_cast<size_t>(std::min<uint64_t>(data_len, kBlkIdBytes))));
      return kBlkSOk;
    }
    default:
      return kBlkSUnsupp;
  }
}

}  // namespace strata::vmm::virtio
