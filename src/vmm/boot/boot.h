// Loading a guest kernel into guest memory and the first vCPU's state at its entry:
//  - bzImage through the Linux x86 64-bit boot protocol (Documentation/arch/x86/boot.rst):
//    setup header checks, boot_params ("zero page") with the e820 map, command line and initrd,
//    entered in long mode at the 64-bit entry with identity-mapped page tables;
//  - ELF kernels (vmlinux, the project's test guests) through the PVH entry
//    (XEN_ELFNOTE_PHYS32_ENTRY): 32-bit protected mode, paging off, ebx = hvm_start_info.
// Everything read from the kernel file is checked against the file and against guest memory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"

struct kvm_regs;
struct kvm_sregs;

namespace strata::vmm {

class GuestMemory;

// Guest-physical addresses of what the loader writes below 1 MiB (Firecracker's layout).
constexpr uint64_t kBootGdtAddr = 0x500;
constexpr uint64_t kPvhStartInfoAddr = 0x6000;
constexpr uint64_t kZeroPageAddr = 0x7000;
constexpr uint64_t kPml4Addr = 0x9000;
constexpr uint64_t kPdpteAddr = 0xa000;
constexpr uint64_t kPdeAddr = 0xb000;
constexpr uint64_t kCmdlineAddr = 0x20000;
constexpr uint64_t kCmdlineMax = 4096;  // bytes including the NUL
constexpr uint64_t kEbdaStart = 0x9fc00;
constexpr uint64_t kHighMemStart = 0x100000;

enum class E820Type : uint32_t { kRam = 1, kReserved = 2, kAcpi = 3 };
struct E820Entry {
  uint64_t addr;
  uint64_t size;
  E820Type type;
};
// The map the guest gets for its RAM (holes for the BIOS area and the MMIO gap).
std::vector<E820Entry> e820_map(uint64_t mem_size);

enum class BootMode { kLinux64, kPvh };

struct BootSetup {
  BootMode mode = BootMode::kPvh;
  uint64_t entry = 0;      // guest-physical entry point
  uint64_t boot_info = 0;  // zero page (rsi) or hvm_start_info (rbx)
  uint64_t kernel_end = 0;
  std::string kind;        // "bzImage (boot protocol 2.15)", "ELF with PVH entry"
};

struct KernelImage {
  std::string kernel_path;
  std::string initrd_path;  // optional
  std::string cmdline;
};

// Loads kernel (and initrd) into memory and writes the boot structures. A file that is neither
// a bzImage nor an ELF with a PVH note is refused naming what was looked for.
Result<BootSetup> load_kernel(const GuestMemory& mem, const KernelImage& img);

// The bytes-in-memory variants (unit tests and the fuzzer use them).
Result<BootSetup> load_bzimage(const GuestMemory& mem, const std::vector<uint8_t>& file, const std::string& initrd,
                               const std::string& cmdline);
Result<BootSetup> load_elf_pvh(const GuestMemory& mem, const std::vector<uint8_t>& file, const std::string& initrd,
                               const std::string& cmdline);

// Registers of the boot vCPU at the entry (GDT and page tables are written to memory).
Status boot_registers(const GuestMemory& mem, const BootSetup& boot, kvm_regs* regs, kvm_sregs* sregs);

}  // namespace strata::vmm
