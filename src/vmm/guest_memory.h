// GuestMemory: the guest's physical memory as host mappings, and the only way the monitor
// touches it. Every access names a guest-physical range and is checked against the regions
// (overflow-safe): a range the guest made up yields nullptr/false, never a wild host pointer.
//
// x86-64 layout (Firecracker's): RAM from 0 up to the MMIO gap at [kMmioGapStart, 4 GiB), the
// rest of RAM above 4 GiB. Devices live in the gap: virtio-mmio slots from kMmioGapStart.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "base/error.h"

namespace strata::vmm {

constexpr uint64_t kMmioGapStart = 0xd0000000ull;  // 3.25 GiB
constexpr uint64_t kMmioGapEnd = 0x100000000ull;   // 4 GiB

struct MemoryRegion {
  uint64_t gpa = 0;     // guest-physical start
  uint64_t size = 0;    // bytes
  uint8_t* host = nullptr;
  uint64_t file_offset = 0;  // offset of this region in the backing file (snapshots)
};

enum class MemoryBacking {
  kAnonymous,  // private anonymous mapping (MAP_NORESERVE: pages appear as the guest touches them)
  kHugePages,  // MAP_HUGETLB (2 MiB pages)
  kMemfd,      // a memfd, so a snapshot can be written from the fd
};

class GuestMemory {
 public:
  GuestMemory() = default;
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;
  GuestMemory(GuestMemory&& o) noexcept;
  GuestMemory& operator=(GuestMemory&& o) noexcept;
  ~GuestMemory();

  // `size` bytes of RAM laid out around the MMIO gap.
  static Result<GuestMemory> create(uint64_t size, MemoryBacking backing = MemoryBacking::kAnonymous);
  // Maps a memory file written by a snapshot, privately: pages are read from the file when the
  // guest first touches them (the restore is lazy) and writes never reach the file.
  static Result<GuestMemory> map_file(const std::string& path, uint64_t size);

  // The regions for `size` bytes of RAM (no mapping; also used by the e820 map).
  static std::vector<MemoryRegion> layout(uint64_t size);

  const std::vector<MemoryRegion>& regions() const { return regions_; }
  uint64_t size() const { return size_; }
  int memfd() const { return memfd_; }  // -1 unless kMemfd
  // True for memory mapped privately from a snapshot's file: pages the guest has not touched
  // still hold the file's data (so a page that is not resident is not necessarily zero).
  bool file_backed() const { return file_backed_; }

  // Host pointer to [gpa, gpa + len) when the whole range lies in one region; nullptr otherwise.
  uint8_t* ptr(uint64_t gpa, uint64_t len) const {
    for (const auto& r : regions_) {
      if (gpa >= r.gpa && gpa - r.gpa <= r.size && len <= r.size - (gpa - r.gpa)) return r.host + (gpa - r.gpa);
    }
    return nullptr;
  }
  bool read(uint64_t gpa, void* dst, size_t len) const {
    const uint8_t* p = ptr(gpa, len);
    if (p == nullptr) return false;
    if (len != 0) std::memcpy(dst, p, len);  // dst may be null for an empty read
    return true;
  }
  bool write(uint64_t gpa, const void* src, size_t len) const {
    uint8_t* p = ptr(gpa, len);
    if (p == nullptr) return false;
    if (len != 0) std::memcpy(p, src, len);
    return true;
  }
  template <class T>
  std::optional<T> read_obj(uint64_t gpa) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T v;
    if (!read(gpa, &v, sizeof v)) return std::nullopt;
    return v;
  }
  template <class T>
  bool write_obj(uint64_t gpa, const T& v) const {
    static_assert(std::is_trivially_copyable_v<T>);
    return write(gpa, &v, sizeof v);
  }


 private:
  void unmap();
  std::vector<MemoryRegion> regions_;
  uint64_t size_ = 0;
  int memfd_ = -1;
  bool file_backed_ = false;
};

}  // namespace strata::vmm
