// FakeDriver: a virtio-mmio driver for unit tests, playing the guest. It owns a small guest
// memory, drives an MmioTransport through its registers the way Linux's virtio_mmio.c does
// (reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK, queue setup, DRIVER_OK), and writes
// descriptor tables and rings into guest memory like virtio_ring.c.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "vmm/devices/irq.h"
#include "vmm/devices/virtio/mmio.h"
#include "vmm/devices/virtio/queue.h"
#include "vmm/guest_memory.h"

namespace strata::vmm::virtio::testing {

// Guest layout: queue q's areas at 0x10000 * (q + 1); data buffers from kDataBase.
constexpr uint64_t kDataBase = 0x100000;
inline uint64_t desc_gpa(size_t q) { return 0x10000 * (q + 1); }
inline uint64_t avail_gpa(size_t q) { return desc_gpa(q) + 0x4000; }
inline uint64_t used_gpa(size_t q) { return desc_gpa(q) + 0x8000; }

struct Seg {
  uint64_t gpa;
  uint32_t len;
  bool writable;
};

struct UsedElem {
  uint32_t id;
  uint32_t len;
};

class FakeDriver {
 public:
  explicit FakeDriver(std::shared_ptr<VirtioDevice> dev, uint64_t mem_bytes = 4 << 20) {
    auto m = GuestMemory::create(mem_bytes);
    EXPECT_TRUE(m.ok());
    mem = std::move(*m);
    irq = std::make_shared<CountingIrq>();
    transport = std::make_unique<MmioTransport>(std::move(dev), mem, irq);
  }

  uint32_t rd(uint64_t off) {
    uint32_t v = 0;
    transport->read(off, reinterpret_cast<uint8_t*>(&v), 4);
    return v;
  }
  void wr(uint64_t off, uint32_t v) { transport->write(off, reinterpret_cast<const uint8_t*>(&v), 4); }

  uint64_t device_features() {
    wr(mmio::kDeviceFeaturesSel, 0);
    uint64_t lo = rd(mmio::kDeviceFeatures);
    wr(mmio::kDeviceFeaturesSel, 1);
    return lo | (uint64_t{rd(mmio::kDeviceFeatures)} << 32);
  }

  // Up to FEATURES_OK with `accept` & offered; false when the device refused.
  bool negotiate(uint64_t accept = ~0ull) {
    wr(mmio::kStatus, 0);
    wr(mmio::kStatus, kStatusAcknowledge);
    wr(mmio::kStatus, kStatusAcknowledge | kStatusDriver);
    features = device_features() & accept;
    wr(mmio::kDriverFeaturesSel, 0);
    wr(mmio::kDriverFeatures, static_cast<uint32_t>(features));
    wr(mmio::kDriverFeaturesSel, 1);
    wr(mmio::kDriverFeatures, static_cast<uint32_t>(features >> 32));
    wr(mmio::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
    return rd(mmio::kStatus) & kStatusFeaturesOk;
  }

  static constexpr uint32_t kMax = 0xffffffff;
  // Configures queue q with `size` entries (kMax: QueueNumMax) and marks it ready.
  void setup_queue(uint32_t q, uint32_t size = kMax) {
    wr(mmio::kQueueSel, q);
    uint32_t max = rd(mmio::kQueueNumMax);
    uint32_t n = size == kMax ? max : size;
    if (queues.size() <= q) queues.resize(q + 1);
    queues[q] = QueueState{static_cast<uint16_t>(n)};
    wr(mmio::kQueueNum, n);
    wr(mmio::kQueueDescLow, static_cast<uint32_t>(desc_gpa(q)));
    wr(mmio::kQueueDescHigh, 0);
    wr(mmio::kQueueDriverLow, static_cast<uint32_t>(avail_gpa(q)));
    wr(mmio::kQueueDriverHigh, 0);
    wr(mmio::kQueueDeviceLow, static_cast<uint32_t>(used_gpa(q)));
    wr(mmio::kQueueDeviceHigh, 0);
    wr(mmio::kQueueReady, 1);
  }

  void driver_ok() { wr(mmio::kStatus, rd(mmio::kStatus) | kStatusDriverOk); }

  // The whole Linux probe: negotiate, all queues at `size`, DRIVER_OK.
  bool start(uint64_t accept = ~0ull, uint32_t size = kMax) {
    if (!negotiate(accept)) return false;
    for (uint32_t q = 0; q < transport->num_queues(); ++q) setup_queue(q, size);
    driver_ok();
    return (rd(mmio::kStatus) & kStatusDriverOk) && !(rd(mmio::kStatus) & kStatusDeviceNeedsReset);
  }

  // ---- guest memory ----
  uint64_t alloc(uint64_t bytes) {
    uint64_t a = next_data_;
    next_data_ += (bytes + 15) & ~15ull;
    return a;
  }
  uint64_t alloc_bytes(const void* data, size_t len) {
    uint64_t a = alloc(len);
    mem.write(a, data, len);
    return a;
  }
  std::vector<uint8_t> bytes(uint64_t gpa, size_t len) {
    std::vector<uint8_t> v(len);
    EXPECT_TRUE(mem.read(gpa, v.data(), len));
    return v;
  }

  // ---- rings ----
  void write_desc(uint32_t q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    write_desc_at(desc_gpa(q) + 16ull * i, addr, len, flags, next);
  }
  void write_desc_at(uint64_t gpa, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    mem.write_obj(gpa, addr);
    mem.write_obj(gpa + 8, len);
    mem.write_obj(gpa + 12, flags);
    mem.write_obj(gpa + 14, next);
  }
  // Puts `head` in the available ring and publishes it.
  void push_avail(uint32_t q, uint16_t head) {
    auto& s = queues[q];
    mem.write_obj<uint16_t>(avail_gpa(q) + 4 + 2ull * (s.avail_idx % s.size), head);
    set_avail_idx(q, ++s.avail_idx);
  }
  void set_avail_idx(uint32_t q, uint16_t idx) { mem.write_obj<uint16_t>(avail_gpa(q) + 2, idx); }
  void set_avail_flags(uint32_t q, uint16_t flags) { mem.write_obj<uint16_t>(avail_gpa(q), flags); }
  void set_used_event(uint32_t q, uint16_t v) { mem.write_obj<uint16_t>(avail_gpa(q) + 4 + 2ull * queues[q].size, v); }
  uint16_t avail_event(uint32_t q) { return *mem.read_obj<uint16_t>(used_gpa(q) + 4 + 8ull * queues[q].size); }

  // Writes a chain into free descriptors (direct) and publishes it; returns its head.
  uint16_t add_chain(uint32_t q, const std::vector<Seg>& segs) {
    auto& s = queues[q];
    uint16_t head = static_cast<uint16_t>(s.next_desc % s.size);
    for (size_t k = 0; k < segs.size(); ++k) {
      uint16_t i = static_cast<uint16_t>((s.next_desc + k) % s.size);
      uint16_t next = static_cast<uint16_t>((s.next_desc + k + 1) % s.size);
      uint16_t flags = (segs[k].writable ? kDescFWrite : 0) | (k + 1 < segs.size() ? kDescFNext : 0);
      write_desc(q, i, segs[k].gpa, segs[k].len, flags, next);
    }
    s.next_desc += static_cast<uint16_t>(segs.size());
    push_avail(q, head);
    return head;
  }
  // Writes the segments as an indirect table referenced by one descriptor; returns its head.
  uint16_t add_indirect_chain(uint32_t q, const std::vector<Seg>& segs) {
    auto& s = queues[q];
    uint64_t table = alloc(16 * segs.size());
    for (size_t k = 0; k < segs.size(); ++k) {
      uint16_t flags = (segs[k].writable ? kDescFWrite : 0) | (k + 1 < segs.size() ? kDescFNext : 0);
      write_desc_at(table + 16 * k, segs[k].gpa, segs[k].len, flags, static_cast<uint16_t>(k + 1));
    }
    uint16_t head = static_cast<uint16_t>(s.next_desc++ % s.size);
    write_desc(q, head, table, static_cast<uint32_t>(16 * segs.size()), kDescFIndirect, 0);
    push_avail(q, head);
    return head;
  }

  void kick(uint32_t q) { wr(mmio::kQueueNotify, q); }
  uint16_t used_idx(uint32_t q) { return *mem.read_obj<uint16_t>(used_gpa(q) + 2); }
  UsedElem used(uint32_t q, uint16_t i) { return *mem.read_obj<UsedElem>(used_gpa(q) + 4 + 8ull * (i % queues[q].size)); }

  bool needs_reset() { return rd(mmio::kStatus) & kStatusDeviceNeedsReset; }

  struct QueueState {
    uint16_t size = 0;
    uint16_t avail_idx = 0;
    uint16_t next_desc = 0;
  };

  GuestMemory mem;
  std::shared_ptr<CountingIrq> irq;
  std::unique_ptr<MmioTransport> transport;
  std::vector<QueueState> queues;
  uint64_t features = 0;

 private:
  uint64_t next_data_ = kDataBase;
};

}  // namespace strata::vmm::virtio::testing
