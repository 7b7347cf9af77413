#include "vmm/devices/bus.h"

#include <cstring>

namespace strata::vmm {

Status Bus::insert(uint64_t base, uint64_t len, std::shared_ptr<BusDevice> dev, std::string name) {
  if (len == 0 || base + len < base) return Error("bus range of " + name + " is empty or wraps");
  auto next = ranges_.lower_bound(base);
  if (next != ranges_.end() && next->first < base + len)
    return Error("bus range of " + name + " overlaps " + next->second.name);
  if (next != ranges_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.len > base) return Error("bus range of " + name + " overlaps " + prev->second.name);
  }
  ranges_.emplace(base, Range{len, std::move(dev), std::move(name)});
  return ok();
}

const Bus::Range* Bus::find(uint64_t addr, uint64_t* offset) const {
  auto it = ranges_.upper_bound(addr);
  if (it == ranges_.begin()) return nullptr;
  --it;
  if (addr - it->first >= it->second.len) return nullptr;
  *offset = addr - it->first;
  return &it->second;
}

bool Bus::read(uint64_t addr, uint8_t* data, size_t len) const {
  uint64_t off = 0;
  const Range* r = find(addr, &off);
  if (r == nullptr) {
    std::memset(data, 0xff, len);
    return false;
  }
  r->dev->read(off, data, len);
  return true;
}

bool Bus::write(uint64_t addr, const uint8_t* data, size_t len) const {
  uint64_t off = 0;
  const Range* r = find(addr, &off);
  if (r == nullptr) return false;
  r->dev->write(off, data, len);
  return true;
}

}  // namespace strata::vmm
