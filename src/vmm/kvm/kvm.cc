#include "vmm/kvm/kvm.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <cstdio>
#include <cstring>

#include "vmm/guest_memory.h"

namespace strata::vmm {

namespace {

// <linux/kvm.h> encodes sizeof(struct) in each ioctl number, and the structs that end in a
// flexible array have a different sizeof in C++ (g++ gives the zero-length array 4 bytes of
// tail padding): KVM_GET_SUPPORTED_CPUID came out as 0xc00cae05 and failed with EINVAL. These
// are the numbers as C computes them.
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, uint64_t);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, uint64_t);
constexpr unsigned long kGetMsrIndexList = _IOWR(KVMIO, 0x02, uint32_t);
constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, uint64_t);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, uint64_t);
constexpr unsigned long kGetXsave = _IOR(KVMIO, 0xa4, char[4096]);
constexpr unsigned long kSetXsave = _IOW(KVMIO, 0xa5, char[4096]);

constexpr uint64_t kTssAddr = 0xfffbd000;
constexpr uint64_t kIdentityMapAddr = 0xfffbc000;

// A growing byte buffer for the snapshot blobs: [u32 tag][u32 len][bytes]...
class BlobWriter {
 public:
  void put(uint32_t tag, const void* p, size_t n) {
    auto* b = static_cast<const uint8_t*>(p);
    uint32_t len = static_cast<uint32_t>(n);
    out.insert(out.end(), reinterpret_cast<uint8_t*>(&tag), reinterpret_cast<uint8_t*>(&tag) + 4);
    out.insert(out.end(), reinterpret_cast<uint8_t*>(&len), reinterpret_cast<uint8_t*>(&len) + 4);
    out.insert(out.end(), b, b + n);
  }
  std::vector<uint8_t> out;
};

class BlobReader {
 public:
  explicit BlobReader(const std::vector<uint8_t>& in) : in_(in) {}
  // Finds the record `tag` and copies it when it has exactly `n` bytes.
  bool get(uint32_t tag, void* p, size_t n) const {
    auto r = raw(tag);
    if (!r || r->size() != n) return false;
    std::memcpy(p, r->data(), n);
    return true;
  }
  // The raw record `tag` (variable-sized records such as the MSR list).
  std::optional<std::vector<uint8_t>> raw(uint32_t tag) const {
    size_t off = 0;
    while (off + 8 <= in_.size()) {
      uint32_t t, len;
      std::memcpy(&t, &in_[off], 4);
      std::memcpy(&len, &in_[off + 4], 4);
      if (off + 8 + len > in_.size()) return std::nullopt;
      if (t == tag) return std::vector<uint8_t>(in_.begin() + off + 8, in_.begin() + off + 8 + len);
      off += 8 + len;
    }
    return std::nullopt;
  }

 private:
  const std::vector<uint8_t>& in_;
};

enum : uint32_t {
  kTagRegs = 1,
  kTagSregs,
  kTagFpu,
  kTagLapic,
  kTagXcrs,
  kTagEvents,
  kTagMpState,
  kTagXsave,
  kTagMsrs,
  kTagDebugRegs,
  kTagPic0 = 100,
  kTagPic1,
  kTagIoapic,
  kTagPit,
  kTagClock,
};

}  // namespace

kvm_cpuid_entry2* CpuidEntries::find(uint32_t function, uint32_t index) {
  for (auto& e : entries) {
    if (e.function == function && ((e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) == 0 || e.index == index)) return &e;
  }
  return nullptr;
}

Result<Kvm> Kvm::open() {
  Kvm k;
  k.fd_.reset(::open("/dev/kvm", O_RDWR | O_CLOEXEC));
  if (!k.fd_) return Error::sys("open /dev/kvm");
  int v = ::ioctl(k.fd_.get(), KVM_GET_API_VERSION, 0);
  if (v != KVM_API_VERSION) return Error("/dev/kvm speaks KVM API version " + std::to_string(v) + ", not 12");
  for (long cap : {KVM_CAP_IRQCHIP, KVM_CAP_IOEVENTFD, KVM_CAP_IRQFD, KVM_CAP_USER_MEMORY, KVM_CAP_EXT_CPUID,
                   KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_PIT2}) {
    if (!k.has_cap(cap)) return Error("/dev/kvm lacks capability " + std::to_string(cap) + " that strata-vmm needs");
  }
  return k;
}

bool Kvm::has_cap(long cap) const { return ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap) > 0; }

Result<CpuidEntries> Kvm::supported_cpuid() const {
  // 256 is KVM_MAX_CPUID_ENTRIES on current kernels: one call instead of an E2BIG first.
  for (size_t n = 256; n <= 4096; n *= 2) {
    std::vector<uint8_t> buf(sizeof(kvm_cpuid2) + n * sizeof(kvm_cpuid_entry2));
    auto* c = reinterpret_cast<kvm_cpuid2*>(buf.data());
    c->nent = static_cast<uint32_t>(n);
    if (::ioctl(fd_.get(), kGetSupportedCpuid, c) == 0) {
      CpuidEntries out;
      out.entries.assign(c->entries, c->entries + c->nent);
      return out;
    }
    if (errno != E2BIG) return Error::sys("KVM_GET_SUPPORTED_CPUID");
  }
  return Error("KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
}

Result<int> Kvm::vcpu_mmap_size() const {
  int n = ::ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (n <= 0) return Error::sys("KVM_GET_VCPU_MMAP_SIZE");
  return n;
}

Result<Vm> Vm::create(const Kvm& kvm) {
  Vm vm;
  int fd = -1;
  for (int tries = 0; tries < 10; ++tries) {  // KVM_CREATE_VM can return EINTR
    fd = ::ioctl(kvm.fd(), KVM_CREATE_VM, 0);
    if (fd >= 0 || errno != EINTR) break;
  }
  if (fd < 0) return Error::sys("KVM_CREATE_VM");
  vm.fd_.reset(fd);
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  if (::ioctl(fd, KVM_SET_TSS_ADDR, kTssAddr) != 0) return Error::sys("KVM_SET_TSS_ADDR");
  uint64_t idmap = kIdentityMapAddr;
  if (::ioctl(fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) != 0) return Error::sys("KVM_SET_IDENTITY_MAP_ADDR");
  if (::ioctl(fd, KVM_CREATE_IRQCHIP, 0) != 0) return Error::sys("KVM_CREATE_IRQCHIP");
  kvm_pit_config pit{};
  pit.flags = KVM_PIT_SPEAKER_DUMMY;
  if (::ioctl(fd, KVM_CREATE_PIT2, &pit) != 0) return Error::sys("KVM_CREATE_PIT2");
  return vm;
}

Status Vm::set_memory(const GuestMemory& mem, bool dirty_log) {
  uint32_t slot = 0;
  for (const auto& r : mem.regions()) {
    kvm_userspace_memory_region m{};
    m.slot = slot++;
    m.flags = dirty_log ? KVM_MEM_LOG_DIRTY_PAGES : 0;
    m.guest_phys_addr = r.gpa;
    m.memory_size = r.size;
    m.userspace_addr = reinterpret_cast<uint64_t>(r.host);
    if (::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &m) != 0) {
      return Error::sys("KVM_SET_USER_MEMORY_REGION slot " + std::to_string(m.slot));
    }
  }
  return ok();
}

Status Vm::add_ioeventfd(int eventfd, uint64_t addr, uint32_t len, bool pio, std::optional<uint64_t> datamatch) {
  kvm_ioeventfd io{};
  io.addr = addr;
  io.len = len;
  io.fd = eventfd;
  if (pio) io.flags |= KVM_IOEVENTFD_FLAG_PIO;
  if (datamatch) {
    io.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
    io.datamatch = *datamatch;
  }
  if (::ioctl(fd_.get(), KVM_IOEVENTFD, &io) != 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(addr));
    return Error::sys(std::string("KVM_IOEVENTFD at ") + buf);
  }
  return ok();
}

Status Vm::add_irqfd(int eventfd, uint32_t gsi) {
  kvm_irqfd f{};
  f.fd = static_cast<uint32_t>(eventfd);
  f.gsi = gsi;
  if (::ioctl(fd_.get(), KVM_IRQFD, &f) != 0) return Error::sys("KVM_IRQFD for GSI " + std::to_string(gsi));
  return ok();
}

Result<std::vector<uint8_t>> Vm::save_platform_state() const {
  BlobWriter w;
  for (uint32_t chip = 0; chip < 3; ++chip) {
    kvm_irqchip c{};
    c.chip_id = chip;
    if (::ioctl(fd_.get(), KVM_GET_IRQCHIP, &c) != 0) return Error::sys("KVM_GET_IRQCHIP " + std::to_string(chip));
    w.put(kTagPic0 + chip, &c, sizeof c);
  }
  kvm_pit_state2 pit{};
  if (::ioctl(fd_.get(), KVM_GET_PIT2, &pit) != 0) return Error::sys("KVM_GET_PIT2");
  w.put(kTagPit, &pit, sizeof pit);
  kvm_clock_data clock{};
  if (::ioctl(fd_.get(), KVM_GET_CLOCK, &clock) != 0) return Error::sys("KVM_GET_CLOCK");
  w.put(kTagClock, &clock, sizeof clock);
  return std::move(w.out);
}

Status Vm::restore_platform_state(int vm_fd, const std::vector<uint8_t>& blob) {
  BlobReader r(blob);
  for (uint32_t chip = 0; chip < 3; ++chip) {
    kvm_irqchip c{};
    if (!r.get(kTagPic0 + chip, &c, sizeof c)) return Error("snapshot lacks irqchip " + std::to_string(chip));
    if (::ioctl(vm_fd, KVM_SET_IRQCHIP, &c) != 0) return Error::sys("KVM_SET_IRQCHIP " + std::to_string(chip));
  }
  kvm_pit_state2 pit{};
  if (!r.get(kTagPit, &pit, sizeof pit)) return Error("snapshot lacks the PIT state");
  if (::ioctl(vm_fd, KVM_SET_PIT2, &pit) != 0) return Error::sys("KVM_SET_PIT2");
  kvm_clock_data clock{};
  if (r.get(kTagClock, &clock, sizeof clock)) {
    clock.flags = 0;
    if (::ioctl(vm_fd, KVM_SET_CLOCK, &clock) != 0) return Error::sys("KVM_SET_CLOCK");
  }
  return ok();
}

Result<std::unique_ptr<Vcpu>> Vcpu::create(const Kvm& kvm, const Vm& vm, uint32_t index) {
  std::unique_ptr<Vcpu> v(new Vcpu);
  v->index_ = index;
  int fd = ::ioctl(vm.fd(), KVM_CREATE_VCPU, index);
  if (fd < 0) return Error::sys("KVM_CREATE_VCPU " + std::to_string(index));
  v->fd_.reset(fd);
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  ASSIGN_OR_RETURN(int size, kvm.vcpu_mmap_size());
  void* p = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return Error::sys("map the kvm_run area of vCPU " + std::to_string(index));
  v->run_ = static_cast<kvm_run*>(p);
  v->run_size_ = static_cast<size_t>(size);
  return v;
}

Vcpu::~Vcpu() {
  if (run_ != nullptr) ::munmap(run_, run_size_);
}

Status Vcpu::set_cpuid(const CpuidEntries& cpuid) {
  std::vector<uint8_t> buf(sizeof(kvm_cpuid2) + cpuid.entries.size() * sizeof(kvm_cpuid_entry2));
  auto* c = reinterpret_cast<kvm_cpuid2*>(buf.data());
  c->nent = static_cast<uint32_t>(cpuid.entries.size());
  std::memcpy(c->entries, cpuid.entries.data(), cpuid.entries.size() * sizeof(kvm_cpuid_entry2));
  if (::ioctl(fd_.get(), kSetCpuid2, c) != 0) return Error::sys("KVM_SET_CPUID2 on vCPU " + std::to_string(index_));
  return ok();
}

#define VCPU_IOCTL(req, arg, what)                                                                  \
  do {                                                                                              \
    if (::ioctl(fd_.get(), req, arg) != 0) return Error::sys(std::string(what) + " on vCPU " + std::to_string(index_)); \
  } while (0)

Status Vcpu::get_regs(kvm_regs* r) const {
  VCPU_IOCTL(KVM_GET_REGS, r, "KVM_GET_REGS");
  return ok();
}
Status Vcpu::set_regs(const kvm_regs& r) const {
  VCPU_IOCTL(KVM_SET_REGS, &r, "KVM_SET_REGS");
  return ok();
}
Status Vcpu::get_sregs(kvm_sregs* s) const {
  VCPU_IOCTL(KVM_GET_SREGS, s, "KVM_GET_SREGS");
  return ok();
}
Status Vcpu::set_sregs(const kvm_sregs& s) const {
  VCPU_IOCTL(KVM_SET_SREGS, &s, "KVM_SET_SREGS");
  return ok();
}
Status Vcpu::set_fpu(const kvm_fpu& f) const {
  VCPU_IOCTL(KVM_SET_FPU, &f, "KVM_SET_FPU");
  return ok();
}

Status Vcpu::set_msrs(const std::vector<std::pair<uint32_t, uint64_t>>& msrs) const {
  std::vector<uint8_t> buf(sizeof(kvm_msrs) + msrs.size() * sizeof(kvm_msr_entry));
  auto* m = reinterpret_cast<kvm_msrs*>(buf.data());
  m->nmsrs = static_cast<uint32_t>(msrs.size());
  for (size_t i = 0; i < msrs.size(); ++i) {
    m->entries[i].index = msrs[i].first;
    m->entries[i].data = msrs[i].second;
  }
  int n = ::ioctl(fd_.get(), kSetMsrs, m);
  if (n < 0) return Error::sys("KVM_SET_MSRS on vCPU " + std::to_string(index_));
  if (static_cast<size_t>(n) != msrs.size()) {
    char buf2[64];
    std::snprintf(buf2, sizeof buf2, "KVM_SET_MSRS: MSR 0x%x was refused", msrs[static_cast<size_t>(n)].first);
    return Error(buf2);
  }
  return ok();
}

Status Vcpu::setup_lapic() const {
  kvm_lapic_state l{};
  VCPU_IOCTL(KVM_GET_LAPIC, &l, "KVM_GET_LAPIC");
  auto set_lvt = [&](size_t off, uint32_t mode) {
    uint32_t v;
    std::memcpy(&v, &l.regs[off], 4);
    v = (v & ~0x700u) | (mode << 8);
    std::memcpy(&l.regs[off], &v, 4);
  };
  set_lvt(0x350, 7);  // LINT0: ExtINT
  set_lvt(0x360, 4);  // LINT1: NMI
  VCPU_IOCTL(KVM_SET_LAPIC, &l, "KVM_SET_LAPIC");
  return ok();
}

VcpuRegs Vcpu::registers() const {
  VcpuRegs r;
  (void)get_regs(&r.regs);
  (void)get_sregs(&r.sregs);
  return r;
}

Status Vcpu::run() {
  if (::ioctl(fd_.get(), KVM_RUN, 0) != 0) {
    if (errno == EINTR || errno == EAGAIN) {
      run_->exit_reason = KVM_EXIT_INTR;
      return ok();
    }
    return Error::sys("KVM_RUN on vCPU " + std::to_string(index_));
  }
  return ok();
}

Result<std::vector<uint8_t>> Vcpu::save_state(const std::vector<uint32_t>& msr_indices) const {
  BlobWriter w;
  kvm_mp_state mp{};
  VCPU_IOCTL(KVM_GET_MP_STATE, &mp, "KVM_GET_MP_STATE");
  w.put(kTagMpState, &mp, sizeof mp);
  kvm_regs regs{};
  TRY(get_regs(&regs));
  w.put(kTagRegs, &regs, sizeof regs);
  kvm_sregs sregs{};
  TRY(get_sregs(&sregs));
  w.put(kTagSregs, &sregs, sizeof sregs);
  kvm_xsave xs{};
  if (::ioctl(fd_.get(), kGetXsave, &xs) == 0) {
    w.put(kTagXsave, &xs, sizeof xs);
  } else {
    kvm_fpu fpu{};
    VCPU_IOCTL(KVM_GET_FPU, &fpu, "KVM_GET_FPU");
    w.put(kTagFpu, &fpu, sizeof fpu);
  }
  kvm_xcrs xcrs{};
  if (::ioctl(fd_.get(), KVM_GET_XCRS, &xcrs) == 0) w.put(kTagXcrs, &xcrs, sizeof xcrs);
  kvm_lapic_state lapic{};
  VCPU_IOCTL(KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC");
  w.put(kTagLapic, &lapic, sizeof lapic);
  kvm_vcpu_events ev{};
  VCPU_IOCTL(KVM_GET_VCPU_EVENTS, &ev, "KVM_GET_VCPU_EVENTS");
  w.put(kTagEvents, &ev, sizeof ev);
  kvm_debugregs dr{};
  if (::ioctl(fd_.get(), KVM_GET_DEBUGREGS, &dr) == 0) w.put(kTagDebugRegs, &dr, sizeof dr);
  std::vector<uint8_t> mbuf(sizeof(kvm_msrs) + msr_indices.size() * sizeof(kvm_msr_entry));
  auto* m = reinterpret_cast<kvm_msrs*>(mbuf.data());
  m->nmsrs = static_cast<uint32_t>(msr_indices.size());
  for (size_t i = 0; i < msr_indices.size(); ++i) m->entries[i].index = msr_indices[i];
  int n = ::ioctl(fd_.get(), kGetMsrs, m);
  if (n < 0) return Error::sys("KVM_GET_MSRS on vCPU " + std::to_string(index_));
  w.put(kTagMsrs, m->entries, static_cast<size_t>(n) * sizeof(kvm_msr_entry));
  return std::move(w.out);
}

Status Vcpu::restore_state(const std::vector<uint8_t>& blob) const {
  BlobReader r(blob);
  // Order as the KVM documentation and other monitors have it: sregs before regs, MSRs after
  // sregs (EFER), the LAPIC after the MSRs (APIC base), events and MP state last.
  kvm_sregs sregs{};
  if (!r.get(kTagSregs, &sregs, sizeof sregs)) return Error("vCPU snapshot lacks its special registers");
  TRY(set_sregs(sregs));
  kvm_regs regs{};
  if (!r.get(kTagRegs, &regs, sizeof regs)) return Error("vCPU snapshot lacks its registers");
  TRY(set_regs(regs));
  kvm_xsave xs{};
  kvm_fpu fpu{};
  if (r.get(kTagXsave, &xs, sizeof xs)) {
    VCPU_IOCTL(kSetXsave, &xs, "KVM_SET_XSAVE");
  } else if (r.get(kTagFpu, &fpu, sizeof fpu)) {
    TRY(set_fpu(fpu));
  }
  kvm_xcrs xcrs{};
  if (r.get(kTagXcrs, &xcrs, sizeof xcrs)) VCPU_IOCTL(KVM_SET_XCRS, &xcrs, "KVM_SET_XCRS");
  if (auto raw = r.raw(kTagMsrs)) {
    size_t count = raw->size() / sizeof(kvm_msr_entry);
    std::vector<uint8_t> mbuf(sizeof(kvm_msrs) + raw->size());
    auto* m = reinterpret_cast<kvm_msrs*>(mbuf.data());
    m->nmsrs = static_cast<uint32_t>(count);
    std::memcpy(m->entries, raw->data(), count * sizeof(kvm_msr_entry));
    if (::ioctl(fd_.get(), kSetMsrs, m) < 0) return Error::sys("KVM_SET_MSRS on vCPU " + std::to_string(index_));
  }
  kvm_lapic_state lapic{};
  if (!r.get(kTagLapic, &lapic, sizeof lapic)) return Error("vCPU snapshot lacks its LAPIC");
  VCPU_IOCTL(KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC");
  kvm_debugregs dr{};
  if (r.get(kTagDebugRegs, &dr, sizeof dr)) VCPU_IOCTL(KVM_SET_DEBUGREGS, &dr, "KVM_SET_DEBUGREGS");
  kvm_vcpu_events ev{};
  if (r.get(kTagEvents, &ev, sizeof ev)) VCPU_IOCTL(KVM_SET_VCPU_EVENTS, &ev, "KVM_SET_VCPU_EVENTS");
  kvm_mp_state mp{};
  if (r.get(kTagMpState, &mp, sizeof mp)) VCPU_IOCTL(KVM_SET_MP_STATE, &mp, "KVM_SET_MP_STATE");
  return ok();
}

Result<std::vector<uint32_t>> snapshot_msr_indices(const Kvm& kvm) {
  std::vector<uint8_t> buf(sizeof(kvm_msr_list) + 1024 * sizeof(uint32_t));
  auto* l = reinterpret_cast<kvm_msr_list*>(buf.data());
  l->nmsrs = 1024;
  if (::ioctl(kvm.fd(), kGetMsrIndexList, l) != 0) return Error::sys("KVM_GET_MSR_INDEX_LIST");
  std::vector<uint32_t> out;
  for (uint32_t i = 0; i < l->nmsrs; ++i) {
    uint32_t idx = l->indices[i];
    // Performance counters and the like are not guest state we restore.
    if ((idx >= 0xc1 && idx <= 0xc8) || (idx >= 0x186 && idx <= 0x18f) || (idx >= 0x309 && idx <= 0x38f)) continue;
    out.push_back(idx);
  }
  return out;
}

namespace {
void seg(std::string& out, const char* name, const kvm_segment& s) {
  char buf[128];
  std::snprintf(buf, sizeof buf, " %s=%04x base=%llx limit=%x type=%x l=%u db=%u", name, s.selector,
                static_cast<unsigned long long>(s.base), s.limit, s.type, s.l, s.db);
  out += buf;
}
}  // namespace

std::string format_registers(const VcpuRegs& r) {
  char buf[512];
  const auto& g = r.regs;
  std::snprintf(buf, sizeof buf,
                "rip=%llx rsp=%llx rflags=%llx rax=%llx rbx=%llx rcx=%llx rdx=%llx rsi=%llx rdi=%llx rbp=%llx "
                "cr0=%llx cr2=%llx cr3=%llx cr4=%llx efer=%llx",
                (unsigned long long)g.rip, (unsigned long long)g.rsp, (unsigned long long)g.rflags,
                (unsigned long long)g.rax, (unsigned long long)g.rbx, (unsigned long long)g.rcx,
                (unsigned long long)g.rdx, (unsigned long long)g.rsi, (unsigned long long)g.rdi,
                (unsigned long long)g.rbp, (unsigned long long)r.sregs.cr0, (unsigned long long)r.sregs.cr2,
                (unsigned long long)r.sregs.cr3, (unsigned long long)r.sregs.cr4, (unsigned long long)r.sregs.efer);
  std::string out = buf;
  seg(out, "cs", r.sregs.cs);
  seg(out, "ss", r.sregs.ss);
  return out;
}

}  // namespace strata::vmm
