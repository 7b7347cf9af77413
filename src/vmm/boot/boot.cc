#include "vmm/boot/boot.h"

#include <elf.h>
#include <linux/kvm.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "base/fs.h"
#include "vmm/guest_memory.h"

namespace strata::vmm {

namespace {

std::string hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

template <class T>
T get(const std::vector<uint8_t>& f, size_t off) {
  T v{};
  std::memcpy(&v, f.data() + off, sizeof v);
  return v;
}

uint64_t low_ram_end(const GuestMemory& mem) { return std::min<uint64_t>(mem.size(), kMmioGapStart); }

Status write_cmdline(const GuestMemory& mem, const std::string& cmdline, uint64_t limit) {
  if (cmdline.size() + 1 > limit) {
    return Error("kernel command line is " + std::to_string(cmdline.size()) + " bytes; the kernel takes at most " +
                 std::to_string(limit - 1));
  }
  if (!mem.write(kCmdlineAddr, cmdline.c_str(), cmdline.size() + 1)) return Error("guest memory too small for the command line");
  return ok();
}

struct Initrd {
  uint64_t addr = 0;
  uint64_t size = 0;
};

// Reads the initrd into the highest page-aligned place below `max_end` and above `min_addr`.
Result<Initrd> place_initrd(const GuestMemory& mem, const std::string& path, uint64_t min_addr, uint64_t max_end) {
  if (path.empty()) return Initrd{};
  // Capped at the guest's memory, which it has to fit in anyway: a huge file or /dev/zero is
  // refused before it is read (fs::read_file also refuses a FIFO or a device).
  auto read = fs::read_file(path, mem.size());
  if (!read) return std::move(read.error()).context("initrd");
  std::string data = std::move(*read);
  Initrd r;
  r.size = data.size();
  if (r.size == 0) return Error("initrd " + path + " is empty");
  if (r.size > max_end || (max_end - r.size) < min_addr) {
    return Error("initrd " + path + " (" + std::to_string(r.size >> 20) + " MiB) does not fit in guest memory below " +
                 hex(max_end) + " after the kernel");
  }
  r.addr = (max_end - r.size) & ~0xfffull;
  if (r.addr < min_addr || !mem.write(r.addr, data.data(), data.size())) {
    return Error("initrd " + path + " does not fit in guest memory");
  }
  return r;
}

}  // namespace

std::vector<E820Entry> e820_map(uint64_t mem_size) {
  std::vector<E820Entry> m;
  m.push_back({0, kEbdaStart, E820Type::kRam});
  m.push_back({kEbdaStart, kHighMemStart - kEbdaStart, E820Type::kReserved});
  uint64_t low_end = std::min<uint64_t>(mem_size, kMmioGapStart);
  if (low_end > kHighMemStart) m.push_back({kHighMemStart, low_end - kHighMemStart, E820Type::kRam});
  if (mem_size > kMmioGapStart) m.push_back({kMmioGapEnd, mem_size - kMmioGapStart, E820Type::kRam});
  return m;
}

// --- bzImage ----------------------------------------------------------------------------------

Result<BootSetup> load_bzimage(const GuestMemory& mem, const std::vector<uint8_t>& f, const std::string& initrd,
                               const std::string& cmdline) {
  if (f.size() < 0x1000) return Error("kernel is too small to be a bzImage (" + std::to_string(f.size()) + " bytes)");
  if (get<uint16_t>(f, 0x1fe) != 0xaa55) return Error("not a bzImage: no 0xAA55 boot flag at offset 0x1fe");
  if (get<uint32_t>(f, 0x202) != 0x53726448) return Error("not a bzImage: no \"HdrS\" setup header at offset 0x202");
  uint16_t version = get<uint16_t>(f, 0x206);
  char vbuf[16];
  std::snprintf(vbuf, sizeof vbuf, "%u.%02u", version >> 8, version & 0xff);
  if (version < 0x020c) return Error(std::string("bzImage boot protocol ") + vbuf + " is too old: 2.12 or later (a 64-bit entry) is needed");
  uint16_t xloadflags = get<uint16_t>(f, 0x236);
  if ((xloadflags & 1) == 0) return Error("bzImage has no 64-bit entry point (XLF_KERNEL_64 not set): a 32-bit kernel");
  uint8_t loadflags = get<uint8_t>(f, 0x211);
  if ((loadflags & 1) == 0) return Error("bzImage is not loaded high (LOADED_HIGH not set): a zImage is not supported");
  uint32_t setup_sects = get<uint8_t>(f, 0x1f1);
  if (setup_sects == 0) setup_sects = 4;
  size_t pm_off = (setup_sects + 1) * 512ull;
  if (pm_off >= f.size()) return Error("bzImage setup (" + std::to_string(setup_sects) + " sectors) is longer than the file");
  uint64_t pm_size = f.size() - pm_off;
  uint32_t init_size = get<uint32_t>(f, 0x260);
  uint64_t load = kHighMemStart;
  uint64_t need = std::max<uint64_t>(pm_size, init_size);
  if (load + need > low_ram_end(mem)) {
    return Error("guest memory (" + std::to_string(mem.size() >> 20) + " MiB) is too small for this kernel, which needs " +
                 std::to_string((load + need) >> 20) + " MiB below the MMIO gap");
  }
  if (!mem.write(load, f.data() + pm_off, pm_size)) return Error("load the kernel into guest memory");

  // boot_params: zero, then the setup header as the file has it.
  std::vector<uint8_t> zp(4096, 0);
  size_t hdr_end = 0x202 + get<uint8_t>(f, 0x201);
  if (hdr_end > 0x290 || hdr_end > f.size()) return Error("bzImage setup header length is out of range");
  std::memcpy(&zp[0x1f1], &f[0x1f1], hdr_end - 0x1f1);
  auto put8 = [&](size_t off, uint8_t v) { zp[off] = v; };
  auto put16 = [&](size_t off, uint16_t v) { std::memcpy(&zp[off], &v, 2); };
  auto put32 = [&](size_t off, uint32_t v) { std::memcpy(&zp[off], &v, 4); };
  put16(0x1fa, 0xffff);  // vid_mode: normal
  put8(0x210, 0xff);     // type_of_loader: undefined
  put8(0x211, static_cast<uint8_t>(loadflags | 0x80));  // CAN_USE_HEAP
  put16(0x224, 0xfe00);  // heap_end_ptr
  put32(0x228, static_cast<uint32_t>(kCmdlineAddr));
  uint32_t cmdline_size = version >= 0x0206 ? get<uint32_t>(f, 0x238) : 255;
  TRY(write_cmdline(mem, cmdline, std::min<uint64_t>(kCmdlineMax, static_cast<uint64_t>(cmdline_size) + 1)));
  uint32_t initrd_max = get<uint32_t>(f, 0x22c);
  uint64_t initrd_end = std::min<uint64_t>(low_ram_end(mem), static_cast<uint64_t>(initrd_max) + 1);
  ASSIGN_OR_RETURN(Initrd rd, place_initrd(mem, initrd, load + need, initrd_end));
  put32(0x218, static_cast<uint32_t>(rd.addr));
  put32(0x21c, static_cast<uint32_t>(rd.size));
  auto map = e820_map(mem.size());
  put8(0x1e8, static_cast<uint8_t>(map.size()));
  for (size_t i = 0; i < map.size(); ++i) {
    size_t off = 0x2d0 + i * 20;
    std::memcpy(&zp[off], &map[i].addr, 8);
    std::memcpy(&zp[off + 8], &map[i].size, 8);
    uint32_t t = static_cast<uint32_t>(map[i].type);
    std::memcpy(&zp[off + 16], &t, 4);
  }
  if (!mem.write(kZeroPageAddr, zp.data(), zp.size())) return Error("write boot_params");
  BootSetup b;
  b.mode = BootMode::kLinux64;
  b.entry = load + 0x200;
  b.boot_info = kZeroPageAddr;
  b.kernel_end = load + need;
  b.kind = std::string("bzImage (boot protocol ") + vbuf + ")";
  return b;
}

// --- ELF with a PVH entry ---------------------------------------------------------------------

namespace {

struct HvmStartInfo {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t nr_modules;
  uint64_t modlist_paddr;
  uint64_t cmdline_paddr;
  uint64_t rsdp_paddr;
  uint64_t memmap_paddr;
  uint32_t memmap_entries;
  uint32_t reserved;
};
static_assert(sizeof(HvmStartInfo) == 56);
struct HvmMemmapEntry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
  uint32_t reserved;
};
struct HvmModlistEntry {
  uint64_t paddr;
  uint64_t size;
  uint64_t cmdline_paddr;
  uint64_t reserved;
};
constexpr uint32_t kXenElfnotePhys32Entry = 18;

// The PVH entry from the PT_NOTE segments; 0 when there is none.
uint64_t find_pvh_entry(const std::vector<uint8_t>& f, const Elf64_Ehdr& eh) {
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    auto ph = get<Elf64_Phdr>(f, eh.e_phoff + i * sizeof(Elf64_Phdr));
    if (ph.p_type != PT_NOTE) continue;
    if (ph.p_offset > f.size() || ph.p_filesz > f.size() - ph.p_offset) continue;
    size_t off = ph.p_offset, end = ph.p_offset + ph.p_filesz;
    while (off + sizeof(Elf64_Nhdr) <= end) {
      auto nh = get<Elf64_Nhdr>(f, off);
      size_t name_off = off + sizeof(Elf64_Nhdr);
      size_t desc_off = name_off + ((nh.n_namesz + 3ull) & ~3ull);
      size_t next = desc_off + ((nh.n_descsz + 3ull) & ~3ull);
      if (next > end || next <= off) break;
      if (nh.n_type == kXenElfnotePhys32Entry && nh.n_namesz == 4 && std::memcmp(&f[name_off], "Xen", 4) == 0 &&
          nh.n_descsz >= 4) {
        return nh.n_descsz >= 8 ? get<uint64_t>(f, desc_off) : get<uint32_t>(f, desc_off);
      }
      off = next;
    }
  }
  return 0;
}

}  // namespace

Result<BootSetup> load_elf_pvh(const GuestMemory& mem, const std::vector<uint8_t>& f, const std::string& initrd,
                               const std::string& cmdline) {
  if (f.size() < sizeof(Elf64_Ehdr) || std::memcmp(f.data(), ELFMAG, SELFMAG) != 0) return Error("not an ELF file");
  auto eh = get<Elf64_Ehdr>(f, 0);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64) return Error("ELF kernel is not x86-64 (ELFCLASS64, EM_X86_64)");
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phoff > f.size() ||
      static_cast<uint64_t>(eh.e_phnum) * sizeof(Elf64_Phdr) > f.size() - eh.e_phoff) {
    return Error("ELF kernel has a malformed program header table");
  }
  uint64_t entry = find_pvh_entry(f, eh);
  if (entry == 0) return Error("ELF kernel has no PVH entry (no Xen ELF note XEN_ELFNOTE_PHYS32_ENTRY): build it with CONFIG_PVH");
  uint64_t kernel_end = 0;
  bool loaded = false;
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    auto ph = get<Elf64_Phdr>(f, eh.e_phoff + i * sizeof(Elf64_Phdr));
    if (ph.p_type != PT_LOAD) continue;
    if (ph.p_offset > f.size() || ph.p_filesz > f.size() - ph.p_offset || ph.p_filesz > ph.p_memsz) {
      return Error("ELF segment " + std::to_string(i) + " lies outside the file");
    }
    if (ph.p_paddr < kHighMemStart) {
      return Error("ELF segment " + std::to_string(i) + " loads at " + hex(ph.p_paddr) + ", below 1 MiB where the boot structures live");
    }
    uint8_t* dst = mem.ptr(ph.p_paddr, ph.p_memsz);
    if (dst == nullptr || ph.p_paddr + ph.p_memsz > low_ram_end(mem)) {
      return Error("ELF segment " + std::to_string(i) + " (" + hex(ph.p_paddr) + ", " + std::to_string(ph.p_memsz) +
                   " bytes) does not fit in guest memory");
    }
    std::memcpy(dst, f.data() + ph.p_offset, ph.p_filesz);
    std::memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
    kernel_end = std::max(kernel_end, ph.p_paddr + ph.p_memsz);
    loaded = true;
  }
  if (!loaded) return Error("ELF kernel has no loadable segment");
  if (entry < kHighMemStart || entry >= kernel_end) return Error("ELF kernel's PVH entry " + hex(entry) + " is outside its segments");
  TRY(write_cmdline(mem, cmdline, kCmdlineMax));
  ASSIGN_OR_RETURN(Initrd rd, place_initrd(mem, initrd, (kernel_end + 0xfff) & ~0xfffull, low_ram_end(mem)));

  HvmStartInfo si{};
  si.magic = 0x336ec578;
  si.version = 1;
  si.cmdline_paddr = kCmdlineAddr;
  uint64_t next = kPvhStartInfoAddr + sizeof si;
  if (rd.size != 0) {
    HvmModlistEntry mod{rd.addr, rd.size, 0, 0};
    si.nr_modules = 1;
    si.modlist_paddr = next;
    if (!mem.write_obj(next, mod)) return Error("write the PVH module list");
    next += sizeof mod;
  }
  auto map = e820_map(mem.size());
  si.memmap_paddr = next;
  si.memmap_entries = static_cast<uint32_t>(map.size());
  for (const auto& e : map) {
    HvmMemmapEntry me{e.addr, e.size, static_cast<uint32_t>(e.type), 0};
    if (!mem.write_obj(next, me)) return Error("write the PVH memory map");
    next += sizeof me;
  }
  if (!mem.write_obj(kPvhStartInfoAddr, si)) return Error("write hvm_start_info");
  BootSetup b;
  b.mode = BootMode::kPvh;
  b.entry = entry;
  b.boot_info = kPvhStartInfoAddr;
  b.kernel_end = kernel_end;
  b.kind = "ELF with a PVH entry";
  return b;
}

Result<BootSetup> load_kernel(const GuestMemory& mem, const KernelImage& img) {
  // A kernel larger than the guest's memory cannot be loaded: that is the cap on the read.
  auto data = fs::read_file(img.kernel_path, mem.size());
  if (!data) return std::move(data.error()).context("read kernel");
  std::vector<uint8_t> f(data->begin(), data->end());
  Result<BootSetup> r = (f.size() >= 4 && std::memcmp(f.data(), ELFMAG, SELFMAG) == 0)
                            ? load_elf_pvh(mem, f, img.initrd_path, img.cmdline)
                            : load_bzimage(mem, f, img.initrd_path, img.cmdline);
  if (!r) return std::move(r.error()).context("kernel " + img.kernel_path);
  return r;
}

// --- registers ----------------------------------------------------------------------------------

namespace {

kvm_segment segment_from_gdt(uint64_t desc, uint16_t index) {
  kvm_segment s{};
  s.base = ((desc >> 16) & 0xffffff) | (((desc >> 56) & 0xff) << 24);
  uint32_t limit = static_cast<uint32_t>((desc & 0xffff) | (((desc >> 48) & 0xf) << 16));
  s.g = (desc >> 55) & 1;
  s.limit = s.g ? (limit << 12) | 0xfff : limit;
  s.selector = static_cast<uint16_t>(index * 8);
  s.type = (desc >> 40) & 0xf;
  s.present = (desc >> 47) & 1;
  s.dpl = (desc >> 45) & 3;
  s.db = (desc >> 54) & 1;
  s.s = (desc >> 44) & 1;
  s.l = (desc >> 53) & 1;
  s.avl = (desc >> 52) & 1;
  s.unusable = s.present ? 0 : 1;
  return s;
}

}  // namespace

Status boot_registers(const GuestMemory& mem, const BootSetup& boot, kvm_regs* regs, kvm_sregs* sregs) {
  const bool lm = boot.mode == BootMode::kLinux64;
  // null, code, data, TSS
  const uint64_t gdt[4] = {0, lm ? 0x00af9b000000ffffull : 0x00cf9b000000ffffull, 0x00cf93000000ffffull,
                           0x008f8b000000ffffull};
  if (!mem.write(kBootGdtAddr, gdt, sizeof gdt)) return Error("write the boot GDT");
  sregs->gdt.base = kBootGdtAddr;
  sregs->gdt.limit = sizeof gdt - 1;
  sregs->idt.base = 0;
  sregs->idt.limit = 0;
  sregs->cs = segment_from_gdt(gdt[1], 1);
  kvm_segment data = segment_from_gdt(gdt[2], 2);
  sregs->ds = sregs->es = sregs->fs = sregs->gs = sregs->ss = data;
  sregs->tr = segment_from_gdt(gdt[3], 3);
  sregs->cr0 = 0x1 | 0x10;  // PE, ET
  sregs->cr4 = 0;
  sregs->efer = 0;
  std::memset(regs, 0, sizeof *regs);
  regs->rflags = 0x2;
  regs->rip = boot.entry;
  if (lm) {
    // Identity map of the first GiB with 2 MiB pages.
    if (!mem.write_obj<uint64_t>(kPml4Addr, kPdpteAddr | 0x3) || !mem.write_obj<uint64_t>(kPdpteAddr, kPdeAddr | 0x3)) {
      return Error("write the boot page tables");
    }
    for (uint64_t i = 0; i < 512; ++i) {
      if (!mem.write_obj<uint64_t>(kPdeAddr + i * 8, (i << 21) | 0x83)) return Error("write the boot page tables");
    }
    sregs->cr3 = kPml4Addr;
    sregs->cr4 |= 0x20;              // PAE
    sregs->cr0 |= 0x80000000u;       // PG
    sregs->efer |= 0x100 | 0x400;    // LME, LMA
    regs->rsi = boot.boot_info;
    regs->rsp = regs->rbp = 0x8ff0;  // below the page tables, above the zero page
  } else {
    regs->rbx = boot.boot_info;
  }
  return ok();
}

}  // namespace strata::vmm
