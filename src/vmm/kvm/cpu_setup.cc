#include "vmm/kvm/cpu_setup.h"

#include <cstring>

namespace strata::vmm {

CpuidEntries guest_cpuid(const CpuidEntries& supported, uint32_t index, uint32_t count) {
  CpuidEntries c = supported;
  uint32_t core_bits = 0;
  while ((1u << core_bits) < count) ++core_bits;
  for (auto& e : c.entries) {
    switch (e.function) {
      case 1:
        e.ebx = (e.ebx & 0x0000ffffu) | (index << 24) | (count << 16);
        e.ecx |= 1u << 31;  // running under a hypervisor
        if (count > 1) e.edx |= 1u << 28;  // HTT: the count in ebx is valid
        break;
      case 4:
        // Cores per package - 1 in eax[31:26]; every cache level private to one core.
        if ((e.eax & 0x1f) != 0) e.eax = (e.eax & 0x3ffu) | ((count - 1) << 26);
        break;
      case 0xa:  // no performance monitoring
        e.eax = e.ebx = e.ecx = e.edx = 0;
        break;
      case 0xb:
      case 0x1f:
        if (e.index == 0) {  // SMT level: one thread per core
          e.eax = 0;
          e.ebx = 1;
          e.ecx = 0x100;
        } else if (e.index == 1) {  // core level
          e.eax = core_bits;
          e.ebx = count;
          e.ecx = 0x201;
        } else {
          e.eax = e.ebx = 0;
          e.ecx = e.index;
        }
        e.edx = index;
        break;
      default:
        break;
    }
  }
  return c;
}

std::vector<std::pair<uint32_t, uint64_t>> boot_msrs() {
  return {
      {0x174, 0},                 // IA32_SYSENTER_CS
      {0x175, 0},                 // IA32_SYSENTER_ESP
      {0x176, 0},                 // IA32_SYSENTER_EIP
      {0xc0000081, 0},            // STAR
      {0xc0000082, 0},            // LSTAR
      {0xc0000083, 0},            // CSTAR
      {0xc0000084, 0},            // SYSCALL_MASK
      {0xc0000102, 0},            // KERNEL_GS_BASE
      {0x10, 0},                  // TSC
      {0x1a0, 1},                 // IA32_MISC_ENABLE: fast strings
      {0x2ff, (1u << 11) | 6},    // MTRRdefType: enabled, write-back
  };
}

kvm_fpu boot_fpu() {
  kvm_fpu f{};
  f.fcw = 0x37f;
  f.mxcsr = 0x1f80;
  return f;
}

}  // namespace strata::vmm
