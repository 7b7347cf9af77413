// Device access control on cgroup v2: the spec's linux.resources.devices rules compiled into a
// BPF_PROG_TYPE_CGROUP_DEVICE program, loaded with bpf(2) and attached to the container's cgroup.
// Follows the kernel's Documentation/admin-guide/cgroup-v2.rst 5.6 ("Device controller") and
// Documentation/bpf/ (the program type's context is struct bpf_cgroup_dev_ctx in linux/bpf.h;
// the verdict is 1 to allow, 0 to deny). The rule semantics are the runtime-spec's as runc and
// crun apply them: the last matching rule wins, and with rules given the default is deny.
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "base/fd.h"
#include "oci/cgroup_internal.h"

namespace strata::oci::cgroup_internal {
namespace {

// Registers of the program: the context is in r1 on entry; r0 holds the verdict.
constexpr uint8_t kR0 = 0, kCtx = 1, kType = 2, kAccess = 3, kMajor = 4, kMinor = 5, kScratch = 6;

bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  bpf_insn i{};
  i.code = code;
  i.dst_reg = dst & 0xf;
  i.src_reg = src & 0xf;
  i.off = off;
  i.imm = imm;
  return i;
}

bpf_insn load_ctx_u32(uint8_t dst, int16_t off) { return insn(BPF_LDX | BPF_MEM | BPF_W, dst, kCtx, off, 0); }
bpf_insn alu_imm(uint8_t op, uint8_t dst, int32_t imm) {
  return insn(BPF_ALU64 | op | BPF_K, dst, 0, 0, imm);
}
bpf_insn mov_reg(uint8_t dst, uint8_t src) { return insn(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0); }
bpf_insn jmp_imm(uint8_t op, uint8_t dst, int32_t imm, int16_t off) {
  return insn(BPF_JMP | op | BPF_K, dst, 0, off, imm);
}
bpf_insn jump(int16_t off) { return insn(BPF_JMP | BPF_JA, 0, 0, off, 0); }
bpf_insn exit_insn() { return insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0); }

long sys_bpf(int cmd, union bpf_attr* attr) { return ::syscall(SYS_bpf, cmd, attr, sizeof(*attr)); }

}  // namespace

// Layout, per access bit the request carries (mknod, read, write), in that order:
//   if !(access & bit) goto next_bit
//   for each rule naming bit, last first:
//     if type/major/minor differ goto next_rule      (omitted for "any")
//     allow: goto next_bit | deny: r0 = 0; exit
//   r0 = 0; exit                                      (no rule matched; omitted after a rule
//                                                      that matches every device)
// then r0 = 1; exit. Deciding each bit on its own gives "last match wins" even when rules name
// different subsets of rwm; the verifier rejects unreachable code, hence the omissions.
Result<std::vector<bpf_insn>> device_filter_program(const std::vector<DeviceRule>& rules) {
  std::vector<unsigned> access;
  for (const auto& r : rules) {
    ASSIGN_OR_RETURN(unsigned a, device_rule_access(r));
    access.push_back(a);
  }
  std::vector<bpf_insn> p;
  // access_type is (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*.
  p.push_back(load_ctx_u32(kType, offsetof(bpf_cgroup_dev_ctx, access_type)));
  p.push_back(alu_imm(BPF_AND, kType, 0xffff));
  p.push_back(load_ctx_u32(kAccess, offsetof(bpf_cgroup_dev_ctx, access_type)));
  p.push_back(alu_imm(BPF_RSH, kAccess, 16));
  p.push_back(load_ctx_u32(kMajor, offsetof(bpf_cgroup_dev_ctx, major)));
  p.push_back(load_ctx_u32(kMinor, offsetof(bpf_cgroup_dev_ctx, minor)));

  for (unsigned bit : {BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE}) {
    std::vector<size_t> to_next_bit;  // jumps patched once the section's end is known
    p.push_back(mov_reg(kScratch, kAccess));
    p.push_back(alu_imm(BPF_AND, kScratch, static_cast<int32_t>(bit)));
    to_next_bit.push_back(p.size());
    p.push_back(jmp_imm(BPF_JEQ, kScratch, 0, 0));
    bool decided = false;
    for (size_t i = rules.size(); i-- > 0 && !decided;) {
      const DeviceRule& r = rules[i];
      if (!(access[i] & bit)) continue;
      std::vector<bpf_insn> checks;
      if (r.type == 'c') checks.push_back(jmp_imm(BPF_JNE, kType, BPF_DEVCG_DEV_CHAR, 0));
      if (r.type == 'b') checks.push_back(jmp_imm(BPF_JNE, kType, BPF_DEVCG_DEV_BLOCK, 0));
      if (r.major && *r.major >= 0)
        checks.push_back(jmp_imm(BPF_JNE, kMajor, static_cast<int32_t>(*r.major), 0));
      if (r.minor && *r.minor >= 0)
        checks.push_back(jmp_imm(BPF_JNE, kMinor, static_cast<int32_t>(*r.minor), 0));
      int verdict_len = r.allow ? 1 : 2;
      // A failed check skips the rest of the checks and the verdict, landing on the next rule.
      for (size_t k = 0; k < checks.size(); ++k) {
        checks[k].off = static_cast<int16_t>(checks.size() - k - 1 + verdict_len);
        p.push_back(checks[k]);
      }
      if (r.allow) {
        to_next_bit.push_back(p.size());
        p.push_back(jump(0));
      } else {
        p.push_back(alu_imm(BPF_MOV, kR0, 0));
        p.push_back(exit_insn());
      }
      decided = checks.empty();
    }
    if (!decided) {
      p.push_back(alu_imm(BPF_MOV, kR0, 0));
      p.push_back(exit_insn());
    }
    for (size_t at : to_next_bit) p[at].off = static_cast<int16_t>(p.size() - at - 1);
  }
  p.push_back(alu_imm(BPF_MOV, kR0, 1));
  p.push_back(exit_insn());
  // Jump offsets are 16-bit: thousands of rules would overflow them.
  if (p.size() > 32767)
    return Error("linux.resources.devices: too many rules (" + std::to_string(rules.size()) + ")");
  return p;
}

Status CgroupOps::attach_device_program(const std::string& dir, const std::vector<bpf_insn>& prog) {
  UniqueFd cg(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cg) return Error::sys("open " + dir);

  // Programs attached before (an earlier apply) are detached only after the new one is in, so
  // the cgroup is never without a filter; in between both apply, which only denies more.
  uint32_t old_ids[64] = {};
  union bpf_attr q {};
  q.query.target_fd = static_cast<uint32_t>(cg.get());
  q.query.attach_type = BPF_CGROUP_DEVICE;
  q.query.prog_ids = reinterpret_cast<uint64_t>(old_ids);
  q.query.prog_cnt = 64;
  if (sys_bpf(BPF_PROG_QUERY, &q) != 0) return Error::sys("bpf(BPF_PROG_QUERY) on " + dir);
  uint32_t old_count = std::min<uint32_t>(q.query.prog_cnt, 64);

  // No helper is called, so no GPL-only one: the license string is free; Apache-2.0 is ours.
  static const char kLicense[] = "Apache-2.0";
  union bpf_attr load {};
  load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  load.insns = reinterpret_cast<uint64_t>(prog.data());
  load.insn_cnt = static_cast<uint32_t>(prog.size());
  load.license = reinterpret_cast<uint64_t>(kLicense);
  std::memcpy(load.prog_name, "strata_devices", sizeof("strata_devices"));
  UniqueFd pfd(static_cast<int>(sys_bpf(BPF_PROG_LOAD, &load)));
  if (!pfd) {
    int err = errno;
    // Load again with the verifier's log so the error says why.
    std::string log(16384, '\0');
    load.log_buf = reinterpret_cast<uint64_t>(log.data());
    load.log_size = static_cast<uint32_t>(log.size());
    load.log_level = 1;
    UniqueFd again(static_cast<int>(sys_bpf(BPF_PROG_LOAD, &load)));
    log.resize(std::strlen(log.c_str()));
    if (log.size() > 400) log = "..." + log.substr(log.size() - 400);
    return Error("bpf(BPF_PROG_LOAD) of the device filter (" + std::to_string(prog.size()) +
                     " instructions)" + (log.empty() ? "" : ", verifier: " + log),
                 err);
  }

  union bpf_attr att {};
  att.target_fd = static_cast<uint32_t>(cg.get());
  att.attach_bpf_fd = static_cast<uint32_t>(pfd.get());
  att.attach_type = BPF_CGROUP_DEVICE;
  att.attach_flags = BPF_F_ALLOW_MULTI;
  if (sys_bpf(BPF_PROG_ATTACH, &att) != 0) return Error::sys("bpf(BPF_PROG_ATTACH) to " + dir);

  for (uint32_t i = 0; i < old_count; ++i) {
    union bpf_attr get {};
    get.prog_id = old_ids[i];
    UniqueFd old(static_cast<int>(sys_bpf(BPF_PROG_GET_FD_BY_ID, &get)));
    if (!old) {
      if (errno == ENOENT) continue;
      return Error::sys("bpf(BPF_PROG_GET_FD_BY_ID) " + std::to_string(old_ids[i]));
    }
    union bpf_attr det {};
    det.target_fd = static_cast<uint32_t>(cg.get());
    det.attach_bpf_fd = static_cast<uint32_t>(old.get());
    det.attach_type = BPF_CGROUP_DEVICE;
    if (sys_bpf(BPF_PROG_DETACH, &det) != 0 && errno != ENOENT) {
      return Error::sys("bpf(BPF_PROG_DETACH) of the previous device filter from " + dir);
    }
  }
  return ok();
}

}  // namespace strata::oci::cgroup_internal
