// libFuzzer target for the guest-facing virtqueue code (STYLE.md section 12): arbitrary bytes
// become a descriptor table, an available ring and the data they point at in a small guest
// memory; a virtio-blk (on a memfd) or virtio-rng device behind the MMIO transport then
// processes them. Whatever the bytes, the process must not crash, hang or touch memory outside
// the guest's; the device either completes requests or marks itself DEVICE_NEEDS_RESET.
//
// Input: [0] queue size exponent (size = 1 << (b % 9)), [1] bit 0: blk (else rng), bit 1:
// EVENT_IDX, bit 2: INDIRECT_DESC, bit 3: read-only blk, bits 4-7: notifies (1-16);
// then bytes copied to guest memory from 0 (descriptor table at 0, avail ring at 0x1000,
// used ring at 0x2000, anything after 0x2808 is data). Guest RAM is 64 KiB.
// Seeds: virtqueue_fuzz_corpus/.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include <spdlog/spdlog.h>

#include "base/log.h"
#include "vmm/devices/irq.h"
#include "vmm/devices/virtio/blk.h"
#include "vmm/devices/virtio/mmio.h"
#include "vmm/devices/virtio/rng.h"
#include "vmm/guest_memory.h"

namespace {

using namespace strata::vmm;
using namespace strata::vmm::virtio;

constexpr uint64_t kRam = 64 << 10;
constexpr uint64_t kDesc = 0, kAvail = 0x1000, kUsed = 0x2000;

struct World {
  GuestMemory mem;
  std::shared_ptr<BlockDevice> blk_rw, blk_ro;
  std::shared_ptr<RngDevice> rng = std::make_shared<RngDevice>("fuzz", 256);
  std::shared_ptr<CountingIrq> irq = std::make_shared<CountingIrq>();
};

World* world() {
  static World* w = [] {
    auto* w = new World;
    w->mem = std::move(*GuestMemory::create(kRam));
    int fd = ::memfd_create("virtqueue-fuzz-disk", MFD_CLOEXEC);
    if (fd < 0 || ::ftruncate(fd, 64 * 512) != 0) __builtin_trap();
    std::string path = "/proc/self/fd/" + std::to_string(fd);
    w->blk_rw = std::move(*BlockDevice::create({.id = "fuzz-rw", .path = path, .queue_size = 256}));
    w->blk_ro = std::move(*BlockDevice::create({.id = "fuzz-ro", .path = path, .read_only = true, .queue_size = 256}));
    ::close(fd);
    return w;
  }();
  return w;
}

void wr(MmioTransport& t, uint64_t off, uint32_t v) { t.write(off, reinterpret_cast<const uint8_t*>(&v), 4); }
uint32_t rd(MmioTransport& t, uint64_t off) {
  uint32_t v = 0;
  t.read(off, reinterpret_cast<uint8_t*>(&v), 4);
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  strata::log::get("vmm")->set_level(spdlog::level::off);  // every bad input logs a line
  world();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  World* w = world();
  uint32_t qsize = 1u << (data[0] % 9);
  uint8_t mode = data[1];
  std::shared_ptr<VirtioDevice> dev;
  if (mode & 1)
    dev = (mode & 8) ? std::shared_ptr<VirtioDevice>(w->blk_ro) : std::shared_ptr<VirtioDevice>(w->blk_rw);
  else
    dev = w->rng;
  data += 2;
  size -= 2;
  std::memset(w->mem.ptr(0, kRam), 0, kRam);
  w->mem.write(0, data, std::min<size_t>(size, kRam));

  MmioTransport t(dev, w->mem, w->irq);
  wr(t, mmio::kStatus, 0);
  wr(t, mmio::kStatus, kStatusAcknowledge | kStatusDriver);
  uint64_t f = feature(kFVersion1);
  if (mode & 2) f |= feature(kFRingEventIdx);
  if (mode & 4) f |= feature(kFRingIndirectDesc);
  wr(t, mmio::kDriverFeaturesSel, 0);
  wr(t, mmio::kDriverFeatures, static_cast<uint32_t>(f));
  wr(t, mmio::kDriverFeaturesSel, 1);
  wr(t, mmio::kDriverFeatures, static_cast<uint32_t>(f >> 32));
  wr(t, mmio::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
  if (!(rd(t, mmio::kStatus) & kStatusFeaturesOk)) __builtin_trap();
  wr(t, mmio::kQueueSel, 0);
  wr(t, mmio::kQueueNum, qsize);
  wr(t, mmio::kQueueDescLow, kDesc);
  wr(t, mmio::kQueueDriverLow, kAvail);
  wr(t, mmio::kQueueDeviceLow, kUsed);
  wr(t, mmio::kQueueReady, 1);
  wr(t, mmio::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
  if (rd(t, mmio::kStatus) & kStatusDeviceNeedsReset) __builtin_trap();  // the setup above is valid

  int notifies = 1 + (mode >> 4);
  uint16_t avail_idx = *w->mem.read_obj<uint16_t>(kAvail + 2);
  for (int i = 0; i < notifies; ++i) {
    t.notify(0);
    // The driver moves on: the same ring again, one more lap of the index.
    avail_idx = static_cast<uint16_t>(avail_idx + (i & 1 ? qsize : 1));
    w->mem.write_obj<uint16_t>(kAvail + 2, avail_idx);
  }
  // (Nothing is checked in the used ring: the guest may point buffers at it, as here it can.)
  bool failed = rd(t, mmio::kStatus) & kStatusDeviceNeedsReset;
  if (failed && !(rd(t, mmio::kInterruptStatus) & mmio::kInterruptConfigChange)) __builtin_trap();
  wr(t, mmio::kStatus, 0);
  if (rd(t, mmio::kStatus) != 0) __builtin_trap();
  return 0;
}
