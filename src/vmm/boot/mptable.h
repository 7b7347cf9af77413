// The Intel MultiProcessor Specification 1.4 table, so that a Linux guest without ACPI finds
// every vCPU, the IOAPIC and how ISA interrupts are wired to it (as Firecracker writes one).
// Written in the EBDA at kEbdaStart (0x9fc00), where Linux's smp_scan_config looks.
#pragma once

#include <cstdint>

#include "base/error.h"

namespace strata::vmm {

class GuestMemory;

constexpr uint64_t kIoapicAddr = 0xfec00000;
constexpr uint64_t kLapicAddr = 0xfee00000;
constexpr uint32_t kIoapicPins = 24;

Status write_mptable(const GuestMemory& mem, uint32_t num_cpus);

}  // namespace strata::vmm
