#include "vmm/devices/virtio/queue.h"

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>

#include <nlohmann/json.hpp>

#include "vmm/guest_memory.h"

namespace strata::vmm::virtio {
namespace {

// Descriptor as laid out in guest memory (2.7.5), little-endian like the x86 host.
struct RawDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(RawDesc) == 16);

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// The ring index fields are shared with the guest's CPUs: they are accessed atomically.
// activate() checked the alignment std::atomic_ref needs (2 for u16; the areas' own alignment).
uint16_t load_acquire(uint8_t* p) { return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(p)).load(std::memory_order_acquire); }
uint16_t load_relaxed(uint8_t* p) { return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(p)).load(std::memory_order_relaxed); }
void store_release(uint8_t* p, uint16_t v) {
  std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(p)).store(v, std::memory_order_release);
}
void store_relaxed(uint8_t* p, uint16_t v) {
  std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(p)).store(v, std::memory_order_relaxed);
}

}  // namespace

// ---- DescriptorChain ----

void DescriptorChain::clear(uint16_t head) {
  head_ = head;
  buffers_.clear();
  first_writable_ = 0;
  readable_bytes_ = 0;
  writable_bytes_ = 0;
}

uint64_t DescriptorChain::iovecs(bool writable, uint64_t offset, uint64_t len, std::vector<iovec>& out) const {
  size_t begin = writable ? first_writable_ : 0;
  size_t end = writable ? buffers_.size() : first_writable_;
  uint64_t covered = 0;
  for (size_t i = begin; i < end && covered < len; ++i) {
    const Buffer& b = buffers_[i];
    if (offset >= b.len) {
      offset -= b.len;
      continue;
    }
    uint64_t n = std::min<uint64_t>(b.len - offset, len - covered);
    out.push_back({b.host + offset, static_cast<size_t>(n)});
    covered += n;
    offset = 0;
  }
  return covered;
}

size_t DescriptorChain::read(uint64_t offset, void* dst, size_t len) const {
  auto* d = static_cast<uint8_t*>(dst);
  size_t done = 0;
  for (size_t i = 0; i < first_writable_ && done < len; ++i) {
    const Buffer& b = buffers_[i];
    if (offset >= b.len) {
      offset -= b.len;
      continue;
    }
    size_t n = static_cast<size_t>(std::min<uint64_t>(b.len - offset, len - done));
    std::memcpy(d + done, b.host + offset, n);
    done += n;
    offset = 0;
  }
  return done;
}

size_t DescriptorChain::write(uint64_t offset, const void* src, size_t len) const {
  const auto* s = static_cast<const uint8_t*>(src);
  size_t done = 0;
  for (size_t i = first_writable_; i < buffers_.size() && done < len; ++i) {
    const Buffer& b = buffers_[i];
    if (offset >= b.len) {
      offset -= b.len;
      continue;
    }
    size_t n = static_cast<size_t>(std::min<uint64_t>(b.len - offset, len - done));
    std::memcpy(b.host + offset, s + done, n);
    done += n;
    offset = 0;
  }
  return done;
}

// ---- Queue ----

Status Queue::activate(const GuestMemory& mem, uint64_t features) {
  mem_ = nullptr;
  if (!ready) return ok();
  if (size == 0) return Error("queue size is 0");
  if (size > max_size_ || (size & (size - 1)) != 0)
    return Error("queue size " + std::to_string(size) + " is not a power of two up to " + std::to_string(max_size_));
  // Alignment (2.7.2): 16 for the table, 2 for the available ring, 4 for the used ring.
  if (desc_addr % 16 != 0 || avail_addr % 2 != 0 || used_addr % 4 != 0)
    return Error("queue areas misaligned: descriptors " + hex(desc_addr) + ", driver " + hex(avail_addr) + ", device " +
                 hex(used_addr));
  desc_ = mem.ptr(desc_addr, desc_table_bytes(size));
  avail_ = mem.ptr(avail_addr, avail_ring_bytes(size));
  used_ = mem.ptr(used_addr, used_ring_bytes(size));
  if (desc_ == nullptr) return Error("descriptor table at " + hex(desc_addr) + " is outside guest memory");
  if (avail_ == nullptr) return Error("driver area at " + hex(avail_addr) + " is outside guest memory");
  if (used_ == nullptr) return Error("device area at " + hex(used_addr) + " is outside guest memory");
  event_idx_ = (features >> kFRingEventIdx) & 1;
  indirect_ = (features >> kFRingIndirectDesc) & 1;
  mem_ = &mem;
  return ok();
}

void Queue::reset() {
  size = 0;
  ready = false;
  desc_addr = avail_addr = used_addr = 0;
  mem_ = nullptr;
  desc_ = avail_ = used_ = nullptr;
  event_idx_ = indirect_ = false;
  next_avail_ = next_used_ = signalled_used_ = added_ = 0;
}

Status Queue::append(DescriptorChain& out, uint64_t addr, uint32_t len, bool writable, uint16_t index) {
  uint8_t* host = mem_->ptr(addr, len);
  if (host == nullptr) {
    return Error("descriptor " + std::to_string(index) + " of chain " + std::to_string(out.head_) + ": buffer " +
                 hex(addr) + "+" + std::to_string(len) + " is outside guest memory");
  }
  // first_writable_ counts the readable buffers, so it differs from the buffer count exactly
  // when a writable buffer was already appended.
  if (writable) {
    out.writable_bytes_ += len;
  } else {
    if (out.first_writable_ != out.buffers_.size())
      return Error("descriptor " + std::to_string(index) + " of chain " + std::to_string(out.head_) +
                   ": device-readable buffer after a device-writable one");
    out.readable_bytes_ += len;
    out.first_writable_ = out.buffers_.size() + 1;
  }
  out.buffers_.push_back({host, addr, len, writable});
  return ok();
}

Status Queue::walk_indirect(DescriptorChain& out, uint64_t table, uint32_t table_len, uint32_t& count) {
  if (!indirect_) return Error("chain " + std::to_string(out.head_) + " uses an indirect table, not negotiated");
  if (table_len == 0 || table_len % 16 != 0 || table_len / 16 > size)
    return Error("chain " + std::to_string(out.head_) + ": indirect table length " + std::to_string(table_len) +
                 " is not a multiple of 16 up to the queue size");
  const uint8_t* t = mem_->ptr(table, table_len);
  if (t == nullptr)
    return Error("chain " + std::to_string(out.head_) + ": indirect table " + hex(table) + "+" +
                 std::to_string(table_len) + " is outside guest memory");
  uint32_t entries = table_len / 16;
  uint16_t i = 0;
  for (;;) {
    if (++count > size)
      return Error("chain " + std::to_string(out.head_) + " is longer than the queue size " + std::to_string(size) +
                   " (a loop?)");
    RawDesc d;
    std::memcpy(&d, t + 16ull * i, sizeof d);  // copied once: the guest may change the table
    if (d.flags & kDescFIndirect)
      return Error("chain " + std::to_string(out.head_) + ": nested indirect descriptor");
    TRY(append(out, d.addr, d.len, d.flags & kDescFWrite, i));
    if (!(d.flags & kDescFNext)) return ok();
    if (d.next >= entries)
      return Error("chain " + std::to_string(out.head_) + ": indirect descriptor " + std::to_string(i) +
                   " points past the table to " + std::to_string(d.next));
    i = d.next;
  }
}

Result<bool> Queue::pop(DescriptorChain& out) {
  if (mem_ == nullptr) return false;
  uint16_t avail_idx = load_acquire(avail_ + 2);
  if (avail_idx == next_avail_) {
    if (!event_idx_) return false;
    // Ask for a notification on the next buffer (avail_event), then look again: the driver may
    // have published one after our read and before seeing avail_event (2.7.10).
    store_relaxed(used_ + 4 + 8ull * size, next_avail_);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    avail_idx = load_acquire(avail_ + 2);
    if (avail_idx == next_avail_) return false;
  }
  if (static_cast<uint16_t>(avail_idx - next_avail_) > size)
    return Error("available index " + std::to_string(avail_idx) + " is more than the queue size " +
                 std::to_string(size) + " ahead of " + std::to_string(next_avail_));
  uint16_t head = load_relaxed(avail_ + 4 + 2ull * (next_avail_ % size));
  if (head >= size)
    return Error("available ring entry " + std::to_string(next_avail_ % size) + " names descriptor " +
                 std::to_string(head) + " of a " + std::to_string(size) + "-entry table");
  out.clear(head);
  uint32_t count = 0;
  uint16_t i = head;
  for (;;) {
    if (++count > size)
      return Error("chain " + std::to_string(head) + " is longer than the queue size " + std::to_string(size) +
                   " (a loop?)");
    RawDesc d;
    std::memcpy(&d, desc_ + 16ull * i, sizeof d);  // copied once: the guest may change the table
    if (d.flags & kDescFIndirect) {
      // The indirect table ends the chain (2.7.5.3.1: INDIRECT and NEXT are exclusive).
      if (d.flags & kDescFNext) return Error("chain " + std::to_string(head) + ": descriptor " + std::to_string(i) +
                                              " has both INDIRECT and NEXT");
      TRY(walk_indirect(out, d.addr, d.len, count));
      break;
    }
    TRY(append(out, d.addr, d.len, d.flags & kDescFWrite, i));
    if (!(d.flags & kDescFNext)) break;
    if (d.next >= size)
      return Error("chain " + std::to_string(head) + ": descriptor " + std::to_string(i) + " points to " +
                   std::to_string(d.next) + ", past the table");
    i = d.next;
  }
  ++next_avail_;
  return true;
}

void Queue::undo_pop() { --next_avail_; }

Status Queue::add_used(uint16_t head, uint32_t len) {
  if (mem_ == nullptr) return Error("add used element to an inactive queue");
  if (head >= size) return Error("used element names descriptor " + std::to_string(head) + " past the table");
  uint8_t* elem = used_ + 4 + 8ull * (next_used_ % size);
  uint32_t v[2] = {head, len};
  std::memcpy(elem, v, sizeof v);
  ++next_used_;
  // The element must be visible before the index that publishes it.
  store_release(used_ + 2, next_used_);
  if (added_ < size) ++added_;
  return ok();
}

bool Queue::needs_interrupt() {
  if (mem_ == nullptr || added_ == 0) return false;
  // The used index we published must be visible before we read the driver's suppression
  // fields, which the driver writes before reading our used index.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  uint16_t old = signalled_used_;
  uint16_t added = added_;
  signalled_used_ = next_used_;
  added_ = 0;
  if (!event_idx_) return (load_relaxed(avail_) & kAvailFNoInterrupt) == 0;
  if (added >= size) return true;
  uint16_t used_event = load_relaxed(avail_ + 4 + 2ull * size);
  // vring_need_event(): interrupt when used_event lies in [old, new).
  return static_cast<uint16_t>(next_used_ - used_event - 1) < static_cast<uint16_t>(next_used_ - old);
}

nlohmann::json Queue::save_state() const {
  return {{"size", size},           {"ready", ready},           {"desc_addr", desc_addr},
          {"avail_addr", avail_addr}, {"used_addr", used_addr}, {"next_avail", next_avail_},
          {"next_used", next_used_},  {"signalled_used", signalled_used_}};
}

Status Queue::restore_state(const nlohmann::json& j) {
  try {
    reset();
    size = j.at("size").get<uint16_t>();
    ready = j.at("ready").get<bool>();
    desc_addr = j.at("desc_addr").get<uint64_t>();
    avail_addr = j.at("avail_addr").get<uint64_t>();
    used_addr = j.at("used_addr").get<uint64_t>();
    next_avail_ = j.at("next_avail").get<uint16_t>();
    next_used_ = j.at("next_used").get<uint16_t>();
    signalled_used_ = j.at("signalled_used").get<uint16_t>();
  } catch (const nlohmann::json::exception& e) {
    reset();
    return Error(std::string("queue state: ") + e.what());
  }
  return ok();
}

}  // namespace strata::vmm::virtio
