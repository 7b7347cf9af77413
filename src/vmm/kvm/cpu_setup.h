// What a vCPU looks like at power-on beyond its registers: CPUID (KVM's supported set with our
// topology and the hypervisor bit), the MSRs a firmware would leave, the FPU control words.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "vmm/kvm/kvm.h"

namespace strata::vmm {

// CPUID for vCPU `index` of `count`: APIC ids, core counts in leaves 1, 4 and 0xb, the
// hypervisor bit, no performance-monitoring leaf.
CpuidEntries guest_cpuid(const CpuidEntries& supported, uint32_t index, uint32_t count);

std::vector<std::pair<uint32_t, uint64_t>> boot_msrs();
kvm_fpu boot_fpu();

}  // namespace strata::vmm
