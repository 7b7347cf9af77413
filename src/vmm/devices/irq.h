// IrqLine: how a device raises its interrupt. In the monitor it is an eventfd bound to a GSI of
// the in-kernel IOAPIC with KVM_IRQFD (no vCPU exit, no lock); unit tests count triggers.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "base/fd.h"

namespace strata::vmm {

class IrqLine {
 public:
  virtual ~IrqLine() = default;
  virtual void trigger() = 0;
};

class EventFdIrq : public IrqLine {
 public:
  EventFdIrq(UniqueFd fd, uint32_t gsi) : fd_(std::move(fd)), gsi_(gsi) {}
  void trigger() override {
    uint64_t one = 1;
    (void)!::write(fd_.get(), &one, sizeof one);
  }
  int fd() const { return fd_.get(); }
  uint32_t gsi() const { return gsi_; }

 private:
  UniqueFd fd_;
  uint32_t gsi_;
};

class CountingIrq : public IrqLine {
 public:
  void trigger() override { count.fetch_add(1); }
  std::atomic<uint64_t> count{0};
};

}  // namespace strata::vmm
