// Queue: the device side of one split virtqueue (virtio 1.2 section 2.7): the descriptor
// table, the available ring and the used ring at guest-physical addresses chosen by the driver.
//
// Everything the driver writes is hostile. activate() checks the size (a power of two, at most
// max_size) and that the three areas lie in guest RAM, once; pop() copies each descriptor out of
// guest memory before checking it (the guest cannot change it after the check), bounds every
// address and length through GuestMemory::ptr, limits a chain to the queue size (so a loop ends
// as an error), refuses nested or unnegotiated indirect tables and an available index that runs
// ahead by more than the queue size. Errors come back as Result; the transport then marks the
// device as needing a reset.
//
// Memory ordering (section 2.7.13, and Linux's virtio_ring.c on the other side): the available
// index is read with acquire before the ring entries and descriptors it publishes; used elements
// are written before the used index is stored with release; a full fence separates publishing
// the used index from reading used_event, and writing avail_event from re-reading the
// available index, so that neither side misses the other's update.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/error.h"

namespace strata::vmm {
class GuestMemory;
}

namespace strata::vmm::virtio {

// Descriptor flags (2.7.5).
constexpr uint16_t kDescFNext = 1;
constexpr uint16_t kDescFWrite = 2;
constexpr uint16_t kDescFIndirect = 4;
// Available ring flags: the driver does not want used-buffer interrupts (ignored with EVENT_IDX).
constexpr uint16_t kAvailFNoInterrupt = 1;

// Ring feature bits, negotiated per device (6).
constexpr uint64_t feature(uint32_t bit) { return 1ull << bit; }
constexpr uint32_t kFRingIndirectDesc = 28;
constexpr uint32_t kFRingEventIdx = 29;

// Sizes of the three areas for a queue of `n` entries (2.7: event fields included).
constexpr uint64_t desc_table_bytes(uint64_t n) { return 16 * n; }
constexpr uint64_t avail_ring_bytes(uint64_t n) { return 6 + 2 * n; }
constexpr uint64_t used_ring_bytes(uint64_t n) { return 6 + 8 * n; }

// One guest buffer of a chain, already checked: `host` points at `len` bytes of guest RAM.
struct Buffer {
  uint8_t* host = nullptr;
  uint64_t gpa = 0;
  uint32_t len = 0;
  bool writable = false;
};

// A descriptor chain taken from the available ring, resolved into buffers (indirect tables
// expanded). The device-readable buffers come first, then the device-writable ones (the spec
// requires this order of the driver, and pop() enforces it), so each part reads as one stream.
class DescriptorChain {
 public:
  uint16_t head() const { return head_; }
  const std::vector<Buffer>& buffers() const { return buffers_; }
  uint64_t readable_bytes() const { return readable_bytes_; }
  uint64_t writable_bytes() const { return writable_bytes_; }

  // Copies up to `len` bytes of the readable stream from `offset` into `dst`; returns the count.
  size_t read(uint64_t offset, void* dst, size_t len) const;
  // Copies up to `len` bytes into the writable stream at `offset`; returns the count.
  size_t write(uint64_t offset, const void* src, size_t len) const;
  // Appends iovecs covering [offset, offset + len) of the readable or writable stream (clipped to
  // its end); returns the bytes covered. For preadv/pwritev/readv straight into guest memory.
  uint64_t iovecs(bool writable, uint64_t offset, uint64_t len, std::vector<iovec>& out) const;

 private:
  friend class Queue;
  void clear(uint16_t head);
  uint16_t head_ = 0;
  size_t first_writable_ = 0;  // index of the first writable buffer (== size when none)
  uint64_t readable_bytes_ = 0;
  uint64_t writable_bytes_ = 0;
  std::vector<Buffer> buffers_;
};

class Queue {
 public:
  explicit Queue(uint16_t max_size) : max_size_(max_size) {}

  // The driver's configuration (transport registers); changed only while not ready.
  uint16_t max_size() const { return max_size_; }
  uint16_t size = 0;
  bool ready = false;
  uint64_t desc_addr = 0;
  uint64_t avail_addr = 0;   // "driver area"
  uint64_t used_addr = 0;    // "device area"

  // Checks the configuration against `mem` and starts serving the rings; `features` are the
  // negotiated ones (EVENT_IDX, INDIRECT_DESC). A queue that is not ready stays inert.
  Status activate(const GuestMemory& mem, uint64_t features);
  // Forgets the configuration and the ring positions (device reset).
  void reset();
  bool active() const { return mem_ != nullptr; }

  // Takes the next available chain into `out`: true when one was taken, false when the ring is
  // empty (with EVENT_IDX, the driver has then been asked to notify on the next buffer).
  Result<bool> pop(DescriptorChain& out);
  // Puts the last popped chain back (a receive queue with nothing to deliver yet).
  void undo_pop();
  // Returns a chain to the driver with `len` bytes written into its writable part.
  Status add_used(uint16_t head, uint32_t len);
  // Whether the driver wants an interrupt for what was added since the last call (2.7.7, 2.7.10).
  bool needs_interrupt();

  uint16_t next_avail() const { return next_avail_; }
  uint16_t next_used() const { return next_used_; }

  // Configuration and ring positions, for snapshots. restore_state() leaves the queue inactive;
  // activate() afterwards resumes where it was.
  nlohmann::json save_state() const;
  Status restore_state(const nlohmann::json& j);

 private:
  Status append(DescriptorChain& out, uint64_t addr, uint32_t len, bool writable, uint16_t index);
  Status walk_indirect(DescriptorChain& out, uint64_t table, uint32_t table_len, uint32_t& count);

  uint16_t max_size_;
  const GuestMemory* mem_ = nullptr;
  bool event_idx_ = false;
  bool indirect_ = false;
  // Host views of the areas, valid while active (checked in activate()).
  uint8_t* desc_ = nullptr;
  uint8_t* avail_ = nullptr;
  uint8_t* used_ = nullptr;
  uint16_t next_avail_ = 0;
  uint16_t next_used_ = 0;
  uint16_t signalled_used_ = 0;  // used index when needs_interrupt() last answered
  uint16_t added_ = 0;           // used elements added since then (saturates at the size)
};

}  // namespace strata::vmm::virtio
