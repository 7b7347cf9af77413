#include "vmm/guest_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utility>

#include "base/fd.h"
#include "vmm/host_files.h"

namespace strata::vmm {

GuestMemory::GuestMemory(GuestMemory&& o) noexcept
    : regions_(std::move(o.regions_)),
      size_(std::exchange(o.size_, 0)),
      memfd_(std::exchange(o.memfd_, -1)),
      file_backed_(std::exchange(o.file_backed_, false)) {
  o.regions_.clear();
}

GuestMemory& GuestMemory::operator=(GuestMemory&& o) noexcept {
  if (this != &o) {
    unmap();
    regions_ = std::move(o.regions_);
    o.regions_.clear();
    size_ = std::exchange(o.size_, 0);
    memfd_ = std::exchange(o.memfd_, -1);
    file_backed_ = std::exchange(o.file_backed_, false);
  }
  return *this;
}

GuestMemory::~GuestMemory() { unmap(); }

void GuestMemory::unmap() {
  for (const auto& r : regions_) {
    if (r.host != nullptr) ::munmap(r.host, r.size);
  }
  regions_.clear();
  if (memfd_ >= 0) ::close(memfd_);
  memfd_ = -1;
  size_ = 0;
}

std::vector<MemoryRegion> GuestMemory::layout(uint64_t size) {
  std::vector<MemoryRegion> out;
  uint64_t low = size < kMmioGapStart ? size : kMmioGapStart;
  out.push_back({0, low, nullptr, 0});
  if (size > low) out.push_back({kMmioGapEnd, size - low, nullptr, low});
  return out;
}

Result<GuestMemory> GuestMemory::create(uint64_t size, MemoryBacking backing) {
  if (size == 0) return Error("guest memory size is 0");
  GuestMemory m;
  m.size_ = size;
  int flags = MAP_NORESERVE;
  int fd = -1;
  if (backing == MemoryBacking::kMemfd) {
    m.memfd_ = ::memfd_create("strata-vmm-guest-memory", MFD_CLOEXEC);
    if (m.memfd_ < 0) return Error::sys("memfd_create for guest memory");
    if (::ftruncate(m.memfd_, static_cast<off_t>(size)) != 0)
      return Error::sys("size guest memory memfd to " + std::to_string(size) + " bytes");
    flags |= MAP_SHARED;
    fd = m.memfd_;
  } else {
    flags |= MAP_PRIVATE | MAP_ANONYMOUS;
    if (backing == MemoryBacking::kHugePages) flags |= MAP_HUGETLB;
  }
  for (auto r : layout(size)) {
    void* p = ::mmap(nullptr, r.size, PROT_READ | PROT_WRITE, flags, fd, fd >= 0 ? static_cast<off_t>(r.file_offset) : 0);
    if (p == MAP_FAILED) {
      return Error::sys("map " + std::to_string(r.size >> 20) + " MiB of guest memory" +
                        (backing == MemoryBacking::kHugePages ? " on huge pages" : ""));
    }
    r.host = static_cast<uint8_t*>(p);
    if (backing != MemoryBacking::kHugePages) ::madvise(p, r.size, MADV_MERGEABLE);
    m.regions_.push_back(r);
  }
  return m;
}

Result<GuestMemory> GuestMemory::map_file(const std::string& path, uint64_t size) {
  // A regular file only (host_files.h): mem_file_path comes from PUT /snapshot/load, and a FIFO
  // there would block this open, a device be mapped as guest memory.
  ASSIGN_OR_RETURN(UniqueFd fd, open_regular_file(path, "guest memory file"));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return Error::sys("stat guest memory file " + path);
  if (static_cast<uint64_t>(st.st_size) != size) {
    return Error("guest memory file " + path + " holds " + std::to_string(st.st_size) + " bytes, the snapshot says " +
                 std::to_string(size));
  }
  GuestMemory m;
  m.size_ = size;
  m.file_backed_ = true;
  for (auto r : layout(size)) {
    void* p = ::mmap(nullptr, r.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd.get(),
                     static_cast<off_t>(r.file_offset));
    if (p == MAP_FAILED) return Error::sys("map guest memory file " + path);
    r.host = static_cast<uint8_t*>(p);
    m.regions_.push_back(r);
  }
  return m;
}

}  // namespace strata::vmm
