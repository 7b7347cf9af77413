#include "vmm/boot/boot.h"

#include <elf.h>
#include <gtest/gtest.h>
#include <linux/kvm.h>

#include <cstring>

#include "vmm/guest_memory.h"

namespace strata::vmm {
namespace {

template <class T>
void put(std::vector<uint8_t>& f, size_t off, T v) {
  std::memcpy(&f[off], &v, sizeof v);
}
template <class T>
T at(const GuestMemory& m, uint64_t gpa) {
  return m.read_obj<T>(gpa).value();
}

// A file with a valid 64-bit boot protocol header and `payload` bytes of protected-mode code.
std::vector<uint8_t> fake_bzimage(size_t payload = 0x3000) {
  std::vector<uint8_t> f(5 * 512 + payload, 0x90);
  std::memset(f.data(), 0, 5 * 512);
  f[0x1f1] = 4;                         // setup_sects
  put<uint16_t>(f, 0x1fe, 0xaa55);
  f[0x201] = 0x66;                      // header length - 0x202 + ... (jump offset)
  put<uint32_t>(f, 0x202, 0x53726448);  // "HdrS"
  put<uint16_t>(f, 0x206, 0x020f);
  f[0x211] = 0x01;                      // LOADED_HIGH
  put<uint32_t>(f, 0x22c, 0x7fffffff);  // initrd_addr_max
  put<uint16_t>(f, 0x236, 0x1);         // XLF_KERNEL_64
  put<uint32_t>(f, 0x238, 2047);        // cmdline_size
  put<uint32_t>(f, 0x260, 0x100000);    // init_size
  return f;
}

TEST(BootBzImage, LoadsAndFillsTheZeroPage) {
  auto mem = GuestMemory::create(64 << 20).value();
  auto b = load_bzimage(mem, fake_bzimage(), "", "console=ttyS0 hello");
  ASSERT_TRUE(b.ok()) << b.error().to_string();
  EXPECT_EQ(b->mode, BootMode::kLinux64);
  EXPECT_EQ(b->entry, kHighMemStart + 0x200);
  EXPECT_EQ(at<uint32_t>(mem, kZeroPageAddr + 0x228), kCmdlineAddr);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(mem.ptr(kCmdlineAddr, 20))), "console=ttyS0 hello");
  EXPECT_EQ(at<uint8_t>(mem, kZeroPageAddr + 0x210), 0xff);
  EXPECT_EQ(at<uint32_t>(mem, kZeroPageAddr + 0x202), 0x53726448u);
  // e820: low RAM, the BIOS hole, RAM from 1 MiB to the end.
  ASSERT_EQ(at<uint8_t>(mem, kZeroPageAddr + 0x1e8), 3);
  EXPECT_EQ(at<uint64_t>(mem, kZeroPageAddr + 0x2d0 + 2 * 20), kHighMemStart);
  EXPECT_EQ(at<uint64_t>(mem, kZeroPageAddr + 0x2d0 + 2 * 20 + 8), (64ull << 20) - kHighMemStart);
  EXPECT_EQ(at<uint8_t>(mem, kHighMemStart), 0x90);  // the kernel is at 1 MiB

  kvm_regs regs{};
  kvm_sregs sregs{};
  ASSERT_TRUE(boot_registers(mem, *b, &regs, &sregs).ok());
  EXPECT_EQ(regs.rip, kHighMemStart + 0x200);
  EXPECT_EQ(regs.rsi, kZeroPageAddr);
  EXPECT_EQ(sregs.cs.l, 1);
  EXPECT_NE(sregs.efer & 0x500, 0u);
  EXPECT_EQ(sregs.cr3, kPml4Addr);
  EXPECT_EQ(at<uint64_t>(mem, kPdeAddr + 8), (1ull << 21) | 0x83);
}

TEST(BootBzImage, RefusesWhatIsNotA64BitBzImage) {
  auto mem = GuestMemory::create(64 << 20).value();
  auto f = fake_bzimage();
  put<uint16_t>(f, 0x1fe, 0);
  EXPECT_NE(load_bzimage(mem, f, "", "").error().message().find("0xAA55"), std::string::npos);
  f = fake_bzimage();
  put<uint32_t>(f, 0x202, 0);
  EXPECT_NE(load_bzimage(mem, f, "", "").error().message().find("HdrS"), std::string::npos);
  f = fake_bzimage();
  put<uint16_t>(f, 0x206, 0x0208);
  EXPECT_NE(load_bzimage(mem, f, "", "").error().message().find("too old"), std::string::npos);
  f = fake_bzimage();
  put<uint16_t>(f, 0x236, 0);
  EXPECT_NE(load_bzimage(mem, f, "", "").error().message().find("64-bit"), std::string::npos);
  f = fake_bzimage();
  f[0x1f1] = 200;  // setup longer than the file
  EXPECT_FALSE(load_bzimage(mem, f, "", "").ok());
  EXPECT_FALSE(load_bzimage(mem, std::vector<uint8_t>(100, 0), "", "").ok());
  // A command line longer than the kernel takes.
  EXPECT_NE(load_bzimage(mem, fake_bzimage(), "", std::string(3000, 'x')).error().message().find("command line"),
            std::string::npos);
  // A kernel that does not fit.
  auto small = GuestMemory::create(1 << 20).value();
  EXPECT_NE(load_bzimage(small, fake_bzimage(), "", "").error().message().find("too small"), std::string::npos);
}

// A minimal ELF64 with one PT_LOAD at `paddr` and a PVH note giving `entry`.
std::vector<uint8_t> fake_elf(uint64_t paddr, uint64_t entry, bool with_note = true) {
  std::vector<uint8_t> f(0x2000, 0);
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_machine = EM_X86_64;
  eh.e_phoff = sizeof eh;
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = 2;
  std::memcpy(f.data(), &eh, sizeof eh);
  Elf64_Phdr load{};
  load.p_type = PT_LOAD;
  load.p_offset = 0x1000;
  load.p_paddr = paddr;
  load.p_filesz = 0x100;
  load.p_memsz = 0x2000;
  std::memcpy(&f[sizeof eh], &load, sizeof load);
  Elf64_Phdr note{};
  note.p_type = with_note ? PT_NOTE : PT_NULL;
  note.p_offset = 0x800;
  note.p_filesz = sizeof(Elf64_Nhdr) + 4 + 4;
  std::memcpy(&f[sizeof eh + sizeof load], &note, sizeof note);
  Elf64_Nhdr nh{4, 4, 18};
  std::memcpy(&f[0x800], &nh, sizeof nh);
  std::memcpy(&f[0x800 + sizeof nh], "Xen", 4);
  uint32_t e32 = static_cast<uint32_t>(entry);
  std::memcpy(&f[0x800 + sizeof nh + 4], &e32, 4);
  std::memset(&f[0x1000], 0xf4, 0x100);
  return f;
}

TEST(BootPvh, LoadsSegmentsAndWritesStartInfo) {
  auto mem = GuestMemory::create(32 << 20).value();
  auto b = load_elf_pvh(mem, fake_elf(0x100000, 0x100010), "", "x=1");
  ASSERT_TRUE(b.ok()) << b.error().to_string();
  EXPECT_EQ(b->mode, BootMode::kPvh);
  EXPECT_EQ(b->entry, 0x100010u);
  EXPECT_EQ(at<uint32_t>(mem, kPvhStartInfoAddr), 0x336ec578u);
  EXPECT_EQ(at<uint64_t>(mem, kPvhStartInfoAddr + 24), kCmdlineAddr);    // cmdline_paddr
  EXPECT_EQ(at<uint32_t>(mem, kPvhStartInfoAddr + 48), 3u);              // memmap entries
  EXPECT_EQ(at<uint8_t>(mem, 0x100000), 0xf4);
  EXPECT_EQ(at<uint8_t>(mem, 0x100100), 0);  // bss zeroed
  kvm_regs regs{};
  kvm_sregs sregs{};
  ASSERT_TRUE(boot_registers(mem, *b, &regs, &sregs).ok());
  EXPECT_EQ(regs.rbx, kPvhStartInfoAddr);
  EXPECT_EQ(sregs.cs.db, 1);
  EXPECT_EQ(sregs.cs.l, 0);
  EXPECT_EQ(sregs.cr0 & 0x80000000u, 0u);  // paging off
}

TEST(BootPvh, RefusesBadElfFiles) {
  auto mem = GuestMemory::create(32 << 20).value();
  EXPECT_NE(load_elf_pvh(mem, fake_elf(0x100000, 0x100010, false), "", "").error().message().find("PVH"), std::string::npos);
  EXPECT_NE(load_elf_pvh(mem, fake_elf(0x1000, 0x1010), "", "").error().message().find("below 1 MiB"), std::string::npos);
  EXPECT_NE(load_elf_pvh(mem, fake_elf(0x4000000, 0x4000010), "", "").error().message().find("does not fit"), std::string::npos);
  EXPECT_NE(load_elf_pvh(mem, fake_elf(0x100000, 0x900000), "", "").error().message().find("outside"), std::string::npos);
  auto f = fake_elf(0x100000, 0x100010);
  f[EI_CLASS] = ELFCLASS32;
  EXPECT_FALSE(load_elf_pvh(mem, f, "", "").ok());
  f = fake_elf(0x100000, 0x100010);
  Elf64_Ehdr eh;
  std::memcpy(&eh, f.data(), sizeof eh);
  eh.e_phnum = 60000;  // a table beyond the file
  std::memcpy(f.data(), &eh, sizeof eh);
  EXPECT_FALSE(load_elf_pvh(mem, f, "", "").ok());
}

TEST(BootE820, HolesForTheBiosAreaAndTheMmioGap) {
  auto m = e820_map(4ull << 30);
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[1].type, E820Type::kReserved);
  EXPECT_EQ(m[2].addr + m[2].size, kMmioGapStart);
  EXPECT_EQ(m[3].addr, kMmioGapEnd);
  EXPECT_EQ(m[3].size, (4ull << 30) - kMmioGapStart);
}

}  // namespace
}  // namespace strata::vmm

#include "vmm/boot/mptable.h"

namespace strata::vmm {
namespace {

uint8_t sum(const uint8_t* p, size_t n) {
  uint8_t s = 0;
  for (size_t i = 0; i < n; ++i) s = static_cast<uint8_t>(s + p[i]);
  return s;
}

TEST(MpTable, FloatingPointerAndTableCheckOut) {
  auto mem = GuestMemory::create(32 << 20).value();
  ASSERT_TRUE(write_mptable(mem, 4).ok());
  const uint8_t* fp = mem.ptr(kEbdaStart, 16);
  ASSERT_EQ(std::memcmp(fp, "_MP_", 4), 0);
  EXPECT_EQ(sum(fp, 16), 0);
  uint32_t table;
  std::memcpy(&table, fp + 4, 4);
  const uint8_t* t = mem.ptr(table, 44);
  ASSERT_EQ(std::memcmp(t, "PCMP", 4), 0);
  uint16_t len, count;
  std::memcpy(&len, t + 4, 2);
  std::memcpy(&count, t + 34, 2);
  EXPECT_EQ(sum(mem.ptr(table, len), len), 0);
  EXPECT_EQ(count, 4 + 1 + 1 + kIoapicPins + 2);
  // The first entry: CPU 0, enabled and bootstrap; the fourth CPU has APIC id 3.
  EXPECT_EQ(t[44], 0);
  EXPECT_EQ(t[44 + 3], 0x3);
  EXPECT_EQ(t[44 + 3 * 20 + 1], 3);
  EXPECT_EQ(t[44 + 3 * 20 + 3], 0x1);
  EXPECT_LE(table + len, kHighMemStart);
  EXPECT_FALSE(write_mptable(mem, 0).ok());
}

}  // namespace
}  // namespace strata::vmm
