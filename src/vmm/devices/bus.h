// Bus: the guest's port-I/O or MMIO address space as seen by the monitor. A vCPU exit on an
// address is routed to the device whose range holds it, with the offset into that range.
// Devices are called from vCPU threads: each device locks its own state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "base/error.h"

namespace strata::vmm {

class BusDevice {
 public:
  virtual ~BusDevice() = default;
  // `data` has `len` bytes (1, 2, 4 or 8); reads fill it, unimplemented registers read as 0.
  virtual void read(uint64_t offset, uint8_t* data, size_t len) = 0;
  virtual void write(uint64_t offset, const uint8_t* data, size_t len) = 0;
};

class Bus {
 public:
  // Fails when [base, base + len) overlaps a range already on the bus.
  Status insert(uint64_t base, uint64_t len, std::shared_ptr<BusDevice> dev, std::string name);
  // False when no device holds the address (the access is ignored; reads return all ones).
  bool read(uint64_t addr, uint8_t* data, size_t len) const;
  bool write(uint64_t addr, const uint8_t* data, size_t len) const;

 private:
  struct Range {
    uint64_t len;
    std::shared_ptr<BusDevice> dev;
    std::string name;
  };
  const Range* find(uint64_t addr, uint64_t* offset) const;
  std::map<uint64_t, Range> ranges_;  // by base
};

}  // namespace strata::vmm
