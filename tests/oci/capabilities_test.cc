// Capabilities: the plan's bitmasks (no privileges), and apply_capabilities() observed from
// inside a forked child through /proc/self/status (root only: dropping from the bounding set
// needs CAP_SETPCAP).
#include "oci/capabilities.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "oci/names.h"

namespace strata::oci {
namespace {

constexpr uint64_t bit(int cap) { return uint64_t{1} << cap; }

TEST(CapabilitiesTest, AbsentCapabilitiesPlanNothing) {
  CapsPlan plan = plan_capabilities(std::nullopt);
  EXPECT_FALSE(plan.present);
  EXPECT_EQ(plan.bounding | plan.effective | plan.inheritable | plan.permitted | plan.ambient, 0u);
  EXPECT_EQ(plan.last_cap, last_capability());
}

TEST(CapabilitiesTest, EachSetBecomesABitmask) {
  Capabilities caps;
  caps.bounding = {CAP_CHOWN, CAP_KILL, CAP_SYS_ADMIN};
  caps.effective = {CAP_KILL};
  caps.permitted = {CAP_KILL, CAP_NET_BIND_SERVICE};
  caps.inheritable = {CAP_NET_BIND_SERVICE};
  caps.ambient = {CAP_NET_BIND_SERVICE};
  CapsPlan plan = plan_capabilities(caps);
  EXPECT_TRUE(plan.present);
  EXPECT_EQ(plan.bounding, bit(CAP_CHOWN) | bit(CAP_KILL) | bit(CAP_SYS_ADMIN));
  EXPECT_EQ(plan.effective, bit(CAP_KILL));
  EXPECT_EQ(plan.permitted, bit(CAP_KILL) | bit(CAP_NET_BIND_SERVICE));
  EXPECT_EQ(plan.inheritable, bit(CAP_NET_BIND_SERVICE));
  EXPECT_EQ(plan.ambient, bit(CAP_NET_BIND_SERVICE));
}

TEST(CapabilitiesTest, PresentButEmptyIsPresent) {
  CapsPlan plan = plan_capabilities(Capabilities{});
  EXPECT_TRUE(plan.present);
  EXPECT_EQ(plan.bounding, 0u);
}

TEST(CapabilitiesTest, CapabilitiesTheKernelLacksAreLeftOut) {
  int last = last_capability();
  if (last >= 63) GTEST_SKIP() << "the kernel knows every capability number";
  Capabilities caps;
  caps.bounding = {CAP_CHOWN, last, last + 1};
  CapsPlan plan = plan_capabilities(caps);
  EXPECT_EQ(plan.bounding, bit(CAP_CHOWN) | bit(last));
}

// What a child saw after apply_capabilities().
struct Report {
  int rc = 0;
  char step[64] = {};
  char detail[64] = {};
  char status[8192] = {};
};

// Forks; the child runs `before` (e.g. a change of user) and apply_capabilities(plan), then
// sends back the result and its /proc/self/status.
template <class F>
Report apply_in_child(const CapsPlan& plan, F before) {
  int fds[2];
  EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    Report r;
    const char* step = "";
    const char* detail = "";
    r.rc = before();
    if (r.rc == 0) r.rc = apply_capabilities(plan, &step, &detail);
    std::strncpy(r.step, step, sizeof(r.step) - 1);
    std::strncpy(r.detail, detail, sizeof(r.detail) - 1);
    int fd = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ssize_t n = ::read(fd, r.status, sizeof(r.status) - 1);
      (void)n;
      ::close(fd);
    }
    ssize_t w = ::write(fds[1], &r, sizeof(r));
    ::_exit(w == static_cast<ssize_t>(sizeof(r)) ? 0 : 1);
  }
  ::close(fds[1]);
  Report r;
  size_t done = 0;
  while (done < sizeof(r)) {
    ssize_t n = ::read(fds[0], reinterpret_cast<char*>(&r) + done, sizeof(r) - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(done, sizeof(r));
  return r;
}

// The hex mask on the "Cap...:" line of /proc/PID/status.
uint64_t cap_line(const Report& r, const char* key) {
  const char* line = std::strstr(r.status, key);
  if (line == nullptr) {
    ADD_FAILURE() << key << " missing from /proc/self/status";
    return ~uint64_t{0};
  }
  return std::strtoull(line + std::strlen(key), nullptr, 16);
}

CapsPlan plan_of(std::initializer_list<int> bounding, std::initializer_list<int> others,
                 std::initializer_list<int> ambient = {}) {
  Capabilities caps;
  caps.bounding = bounding;
  caps.effective = caps.permitted = caps.inheritable = others;
  caps.ambient = ambient;
  return plan_capabilities(caps);
}

TEST(CapabilitiesTest, ApplyNarrowsBoundingToChown) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (CAP_SETPCAP)";
  Report r = apply_in_child(plan_of({CAP_CHOWN}, {CAP_CHOWN}, {CAP_CHOWN}), [] { return 0; });
  ASSERT_EQ(r.rc, 0) << r.step << ": " << std::strerror(-r.rc);
  EXPECT_EQ(cap_line(r, "CapBnd:"), bit(CAP_CHOWN));
  EXPECT_EQ(cap_line(r, "CapEff:"), bit(CAP_CHOWN));
  EXPECT_EQ(cap_line(r, "CapPrm:"), bit(CAP_CHOWN));
  EXPECT_EQ(cap_line(r, "CapInh:"), bit(CAP_CHOWN));
  EXPECT_EQ(cap_line(r, "CapAmb:"), bit(CAP_CHOWN));
}

TEST(CapabilitiesTest, AbsentPlanLeavesNoCapabilities) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (CAP_SETPCAP)";
  Report r = apply_in_child(plan_capabilities(std::nullopt), [] { return 0; });
  ASSERT_EQ(r.rc, 0) << r.step << ": " << std::strerror(-r.rc);
  for (const char* key : {"CapBnd:", "CapEff:", "CapPrm:", "CapInh:", "CapAmb:"}) {
    EXPECT_EQ(cap_line(r, key), 0u) << key;
  }
}

// The documented order: keepcaps, setuid to a non-root user (which empties effective), then
// apply. The ambient set is what carries a capability across exec for a non-root user.
TEST(CapabilitiesTest, ApplyAfterSetuidWithKeepcaps) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (setuid, CAP_SETPCAP)";
  CapsPlan plan = plan_of({CAP_CHOWN, CAP_NET_BIND_SERVICE}, {CAP_NET_BIND_SERVICE}, {CAP_NET_BIND_SERVICE});
  Report r = apply_in_child(plan, [] {
    if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return -errno;
    if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) return -errno;
    return 0;
  });
  ASSERT_EQ(r.rc, 0) << r.step << ": " << std::strerror(-r.rc);
  EXPECT_EQ(cap_line(r, "CapBnd:"), bit(CAP_CHOWN) | bit(CAP_NET_BIND_SERVICE));
  EXPECT_EQ(cap_line(r, "CapEff:"), bit(CAP_NET_BIND_SERVICE));
  EXPECT_EQ(cap_line(r, "CapPrm:"), bit(CAP_NET_BIND_SERVICE));
  EXPECT_EQ(cap_line(r, "CapAmb:"), bit(CAP_NET_BIND_SERVICE));
}

TEST(CapabilitiesTest, AmbientCapabilityOutsidePermittedIsSkipped) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (CAP_SETPCAP)";
  Capabilities caps;
  caps.bounding = caps.effective = caps.permitted = {CAP_CHOWN, CAP_KILL};
  caps.inheritable = {CAP_CHOWN};
  caps.ambient = {CAP_CHOWN, CAP_KILL, CAP_NET_RAW};  // KILL: not inheritable; NET_RAW: neither
  Report r = apply_in_child(plan_capabilities(caps), [] { return 0; });
  ASSERT_EQ(r.rc, 0) << r.step << ": " << std::strerror(-r.rc);
  EXPECT_EQ(cap_line(r, "CapAmb:"), bit(CAP_CHOWN));
  EXPECT_EQ(cap_line(r, "CapPrm:"), bit(CAP_CHOWN) | bit(CAP_KILL));
}

// Without keepcaps, setuid() to a non-root user empties permitted: the bounding set can no
// longer be narrowed, and the failure names its step.
TEST(CapabilitiesTest, FailureNamesTheStep) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (setuid)";
  Report r = apply_in_child(plan_of({CAP_CHOWN}, {CAP_CHOWN}), [] {
    if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) return -errno;
    return 0;
  });
  EXPECT_EQ(r.rc, -EPERM);
  EXPECT_STREQ(r.step, "drop bounding capability");
}

// A capability this process does not hold (CAP_SYS_RESOURCE on these machines' root) is named,
// not capset's bare EPERM.
TEST(CapabilitiesTest, ACapabilityNotHeldIsNamed) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (CAP_SETPCAP)";
  Report r = apply_in_child(plan_of({CAP_CHOWN, CAP_SYS_RESOURCE}, {CAP_CHOWN, CAP_SYS_RESOURCE}), [] {
    // Lose it first (bounding and permitted), as a machine whose root lacks it has.
    if (::prctl(PR_CAPBSET_DROP, CAP_SYS_RESOURCE, 0, 0, 0) != 0) return -errno;
    __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct d[2] = {};
    if (::syscall(SYS_capget, &h, d) != 0) return -errno;
    d[0].permitted &= ~(1u << CAP_SYS_RESOURCE);
    d[0].effective &= ~(1u << CAP_SYS_RESOURCE);
    if (::syscall(SYS_capset, &h, d) != 0) return -errno;
    return 0;
  });
  EXPECT_EQ(r.rc, -EPERM);
  EXPECT_STREQ(r.step, "grant capability");
  EXPECT_STREQ(r.detail, "CAP_SYS_RESOURCE");
}

}  // namespace
}  // namespace strata::oci
