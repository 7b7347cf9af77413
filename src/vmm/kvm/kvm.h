// The KVM API as RAII objects: Kvm (/dev/kvm), Vm (one per monitor process) and Vcpu (one per
// guest CPU, run on its own thread). Every ioctl failure names the ioctl and the object.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"

namespace strata::vmm {

class GuestMemory;

// CPUID entries as KVM takes them (struct kvm_cpuid2 with its flexible array).
struct CpuidEntries {
  std::vector<kvm_cpuid_entry2> entries;
  kvm_cpuid_entry2* find(uint32_t function, uint32_t index = 0);
};

class Kvm {
 public:
  static Result<Kvm> open();
  int fd() const { return fd_.get(); }
  Result<CpuidEntries> supported_cpuid() const;
  Result<int> vcpu_mmap_size() const;
  bool has_cap(long cap) const;

 private:
  UniqueFd fd_;
};

class Vm {
 public:
  // Creates the VM with the x86 platform pieces every guest needs: TSS and identity-map pages,
  // the in-kernel irqchip (PIC, IOAPIC, LAPICs) and PIT.
  static Result<Vm> create(const Kvm& kvm);
  int fd() const { return fd_.get(); }

  Status set_memory(const GuestMemory& mem, bool dirty_log = false);
  // An eventfd raised by the guest writing `datamatch` (or anything, when no datamatch) to `addr`.
  Status add_ioeventfd(int eventfd, uint64_t addr, uint32_t len, bool pio, std::optional<uint64_t> datamatch);
  Status add_irqfd(int eventfd, uint32_t gsi);
  // Saves/restores the in-kernel irqchip and PIT (snapshots).
  Result<std::vector<uint8_t>> save_platform_state() const;
  Status restore_platform_state(const std::vector<uint8_t>& blob) const { return restore_platform_state(fd(), blob); }
  // The same on a VM fd, for a helper thread while the Vm object itself moves.
  static Status restore_platform_state(int vm_fd, const std::vector<uint8_t>& blob);

 private:
  UniqueFd fd_;
};

// The registers that tell what a vCPU was doing, for reports when a guest dies.
struct VcpuRegs {
  kvm_regs regs{};
  kvm_sregs sregs{};
};
std::string format_registers(const VcpuRegs& r);

class Vcpu {
 public:
  static Result<std::unique_ptr<Vcpu>> create(const Kvm& kvm, const Vm& vm, uint32_t index);
  ~Vcpu();
  Vcpu(const Vcpu&) = delete;
  Vcpu& operator=(const Vcpu&) = delete;

  uint32_t index() const { return index_; }
  int fd() const { return fd_.get(); }
  kvm_run* run_struct() const { return run_; }

  Status set_cpuid(const CpuidEntries& cpuid);
  Status get_regs(kvm_regs* r) const;
  Status set_regs(const kvm_regs& r) const;
  Status get_sregs(kvm_sregs* s) const;
  Status set_sregs(const kvm_sregs& s) const;
  Status set_fpu(const kvm_fpu& f) const;
  Status set_msrs(const std::vector<std::pair<uint32_t, uint64_t>>& msrs) const;
  // LINT0 as ExtINT and LINT1 as NMI, as a PC's BIOS leaves them.
  Status setup_lapic() const;
  VcpuRegs registers() const;

  // One KVM_RUN. EINTR (a kick) is reported as ok with exit_reason KVM_EXIT_INTR.
  Status run();

  // Whole-vCPU state for snapshots, as one opaque blob (regs, sregs, fpu, msrs, lapic, xcrs,
  // events, mp state, xsave when available).
  Result<std::vector<uint8_t>> save_state(const std::vector<uint32_t>& msr_indices) const;
  Status restore_state(const std::vector<uint8_t>& blob) const;

 private:
  Vcpu() = default;
  UniqueFd fd_;
  kvm_run* run_ = nullptr;
  size_t run_size_ = 0;
  uint32_t index_ = 0;
};

// The MSRs a snapshot saves: KVM_GET_MSR_INDEX_LIST filtered to the architectural state.
Result<std::vector<uint32_t>> snapshot_msr_indices(const Kvm& kvm);

}  // namespace strata::vmm
