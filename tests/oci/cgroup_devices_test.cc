// Device rules for both cgroup versions, without privileges: the v1 devices.allow/deny lines and
// the v2 BPF_PROG_TYPE_CGROUP_DEVICE program, which a small interpreter here runs against device
// requests (the program is loaded into a real kernel by tests/oci/integration/cgroup_host_test.cc).
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <algorithm>
#include <string>
#include <vector>

#include "oci/cgroup_internal.h"

namespace strata::oci {
namespace {

TEST(CgroupDevicesTest, V1Lines) {
  using cgroup_internal::v1_device_lines;
  using V = std::vector<std::string>;
  EXPECT_EQ(*v1_device_lines({.allow = true, .type = 'c', .major = 1, .minor = 3, .access = "rwm"}),
            V{"c 1:3 rwm"});
  EXPECT_EQ(*v1_device_lines({.allow = true, .type = 'b', .major = 8, .access = "mwr"}), V{"b 8:* rwm"});
  EXPECT_EQ(*v1_device_lines({.allow = true, .type = 'c', .minor = -1, .access = ""}), V{"c *:* rwm"});
  EXPECT_EQ(*v1_device_lines({.allow = false, .type = 'a', .access = "rwm"}), V{"a *:* rwm"});
  // The kernel would read a leading 'a' as "everything, rwm".
  EXPECT_EQ(*v1_device_lines({.allow = true, .type = 'a', .access = "r"}), (V{"c *:* r", "b *:* r"}));
  EXPECT_EQ(*v1_device_lines({.allow = true, .type = 'a', .major = 5, .access = "rwm"}),
            (V{"c 5:* rwm", "b 5:* rwm"}));
  EXPECT_FALSE(v1_device_lines({.type = 'u', .access = "rwm"}).ok());
  EXPECT_FALSE(v1_device_lines({.type = 'c', .access = "rx"}).ok());
  EXPECT_FALSE(v1_device_lines({.type = 'c', .major = int64_t{1} << 33, .access = "r"}).ok());
}

// A small interpreter for the instructions the generator uses, with the checks of the kernel
// verifier that matter here: jumps stay in the program, every instruction is reachable, the
// context is read only at its three fields.
class BpfRunner {
 public:
  explicit BpfRunner(std::vector<bpf_insn> prog) : p_(std::move(prog)) {}

  // 1 allow, 0 deny; -1 when the program does something the interpreter does not know.
  int run(unsigned type, unsigned access, uint32_t major, uint32_t minor) const {
    uint32_t ctx[3] = {(access << 16) | type, major, minor};
    uint64_t r[11] = {};
    size_t pc = 0;
    for (int steps = 0; pc < p_.size() && steps < 100000; ++steps) {
      const bpf_insn& i = p_[pc];
      uint8_t cls = BPF_CLASS(i.code);
      if (cls == BPF_LDX) {
        if (i.code != (BPF_LDX | BPF_MEM | BPF_W) || i.src_reg != 1 || i.off % 4 || i.off < 0 || i.off > 8)
          return -1;
        r[i.dst_reg] = ctx[i.off / 4];
        ++pc;
      } else if (cls == BPF_ALU64) {
        uint64_t v =
            BPF_SRC(i.code) == BPF_X ? r[i.src_reg] : static_cast<uint64_t>(static_cast<int64_t>(i.imm));
        switch (BPF_OP(i.code)) {
          case BPF_MOV:
            r[i.dst_reg] = v;
            break;
          case BPF_AND:
            r[i.dst_reg] &= v;
            break;
          case BPF_RSH:
            r[i.dst_reg] >>= v;
            break;
          default:
            return -1;
        }
        ++pc;
      } else if (cls == BPF_JMP) {
        uint64_t k = static_cast<uint64_t>(static_cast<int64_t>(i.imm));
        switch (BPF_OP(i.code)) {
          case BPF_EXIT:
            return static_cast<int>(r[0]);
          case BPF_JA:
            pc += 1 + i.off;
            break;
          case BPF_JEQ:
            pc += 1 + (r[i.dst_reg] == k ? i.off : 0);
            break;
          case BPF_JNE:
            pc += 1 + (r[i.dst_reg] != k ? i.off : 0);
            break;
          default:
            return -1;
        }
      } else {
        return -1;
      }
    }
    return -1;
  }

  // Every instruction reachable, every jump in range, no fall-through past the end.
  bool well_formed() const {
    std::vector<bool> seen(p_.size());
    std::vector<size_t> todo{0};
    while (!todo.empty()) {
      size_t pc = todo.back();
      todo.pop_back();
      if (pc >= p_.size()) return false;
      if (seen[pc]) continue;
      seen[pc] = true;
      const bpf_insn& i = p_[pc];
      if (BPF_CLASS(i.code) == BPF_JMP) {
        if (BPF_OP(i.code) == BPF_EXIT) continue;
        todo.push_back(pc + 1 + i.off);
        if (BPF_OP(i.code) == BPF_JA) continue;
      }
      todo.push_back(pc + 1);
    }
    return std::all_of(seen.begin(), seen.end(), [](bool b) { return b; });
  }

 private:
  std::vector<bpf_insn> p_;
};

constexpr unsigned kChar = BPF_DEVCG_DEV_CHAR, kBlock = BPF_DEVCG_DEV_BLOCK;
constexpr unsigned kRead = BPF_DEVCG_ACC_READ, kWrite = BPF_DEVCG_ACC_WRITE, kMknod = BPF_DEVCG_ACC_MKNOD;

TEST(CgroupDevicesTest, BpfLastMatchingRuleWinsPerAccess) {
  auto prog = cgroup_internal::device_filter_program({
      {.allow = false, .type = 'a', .access = "rwm"},
      {.allow = true, .type = 'c', .major = 1, .minor = 3, .access = "rwm"},
      {.allow = true, .type = 'c', .major = 1, .minor = 5, .access = "rw"},
      {.allow = false, .type = 'c', .major = 1, .minor = 5, .access = "w"},
      {.allow = true, .type = 'c', .major = 136, .access = "rw"},
  });
  ASSERT_TRUE(prog.ok()) << prog.error().to_string();
  BpfRunner bpf(*prog);
  ASSERT_TRUE(bpf.well_formed());
  EXPECT_EQ(bpf.run(kChar, kRead, 1, 3), 1);
  EXPECT_EQ(bpf.run(kChar, kRead | kWrite, 1, 3), 1);
  EXPECT_EQ(bpf.run(kChar, kMknod, 1, 3), 1);
  EXPECT_EQ(bpf.run(kBlock, kRead, 1, 3), 0) << "type differs";
  EXPECT_EQ(bpf.run(kChar, kRead, 1, 5), 1);
  EXPECT_EQ(bpf.run(kChar, kWrite, 1, 5), 0) << "the later deny wins for w";
  EXPECT_EQ(bpf.run(kChar, kRead | kWrite, 1, 5), 0);
  EXPECT_EQ(bpf.run(kChar, kMknod, 1, 5), 0) << "no rule allows m";
  EXPECT_EQ(bpf.run(kChar, kRead, 136, 7), 1) << "any minor";
  EXPECT_EQ(bpf.run(kChar, kMknod, 136, 7), 0);
  EXPECT_EQ(bpf.run(kChar, kRead, 1, 7), 0) << "default deny";
}

TEST(CgroupDevicesTest, BpfAllowAllThenDenyOne) {
  auto prog = cgroup_internal::device_filter_program({
      {.allow = true, .type = 'a', .access = "rwm"},
      {.allow = false, .type = 'c', .major = 1, .minor = 3, .access = "r"},
  });
  ASSERT_TRUE(prog.ok());
  BpfRunner bpf(*prog);
  ASSERT_TRUE(bpf.well_formed());
  EXPECT_EQ(bpf.run(kChar, kRead, 1, 3), 0);
  EXPECT_EQ(bpf.run(kChar, kWrite, 1, 3), 1);
  EXPECT_EQ(bpf.run(kBlock, kRead | kWrite | kMknod, 8, 0), 1);
  EXPECT_EQ(bpf.run(kChar, kRead, 4, 1), 1);
}

TEST(CgroupDevicesTest, BpfShapes) {
  // No rules: everything denied (never attached by apply(), which leaves devices alone then).
  auto none = cgroup_internal::device_filter_program({});
  ASSERT_TRUE(none.ok());
  BpfRunner n(*none);
  EXPECT_TRUE(n.well_formed());
  EXPECT_EQ(n.run(kChar, kRead, 1, 3), 0);
  // An unconditional rule ends its section: nothing after it may be unreachable.
  auto shadowed = cgroup_internal::device_filter_program({
      {.allow = true, .type = 'c', .major = 1, .minor = 3, .access = "rwm"},
      {.allow = false, .type = 'a', .access = "rwm"},
  });
  ASSERT_TRUE(shadowed.ok());
  BpfRunner s(*shadowed);
  EXPECT_TRUE(s.well_formed());
  EXPECT_EQ(s.run(kChar, kRead, 1, 3), 0);
  // The program starts by splitting the context: type, access, major, minor.
  ASSERT_GE(none->size(), 6u);
  EXPECT_EQ((*none)[0].code, BPF_LDX | BPF_MEM | BPF_W);
  EXPECT_EQ(none->back().code, BPF_JMP | BPF_EXIT);
  EXPECT_FALSE(cgroup_internal::device_filter_program({{.type = 'c', .access = "q"}}).ok());
}

}  // namespace
}  // namespace strata::oci
