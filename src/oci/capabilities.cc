// Capabilities of the container's process: the plan (bitmasks) is made in the parent from the
// validated spec; apply_capabilities() runs in the child between clone() and exec() and only
// issues syscalls (STYLE.md section 6). Follows config.md "process.capabilities" of the OCI
// runtime-spec, capabilities(7), prctl(2) PR_CAPBSET_DROP / PR_CAP_AMBIENT and capset(2).
//
// Ordering relative to the change of user (the caller's job, in this order):
//   1. prctl(PR_SET_KEEPCAPS, 1) while still uid 0: a setuid() that leaves no uid 0 clears the
//      permitted set unless keepcaps is set;
//   2. setgroups/setresgid/setresuid to the spec's user: the effective set is cleared whatever
//      keepcaps says, and the ambient set is cleared too;
//   3. apply_capabilities(): it first raises effective back to permitted, because dropping from
//      the bounding set needs CAP_SETPCAP in effective; then it narrows bounding, sets the three
//      sets with capset(2) and raises ambient last (ambient raise checks the new permitted and
//      inheritable sets). keepcaps needs no clearing: execve(2) resets it.
#include "oci/capabilities.h"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "oci/names.h"

namespace strata::oci {

namespace {

uint64_t to_mask(const std::vector<int>& caps, int last_cap) {
  uint64_t mask = 0;
  for (int cap : caps) {
    // A capability newer than the running kernel cannot be granted; runc ignores it too.
    if (cap >= 0 && cap <= last_cap && cap < 64) mask |= uint64_t{1} << cap;
  }
  return mask;
}

// capset(2)/capget(2) through the raw syscall: no libcap dependency, and the glibc wrappers
// are not declared in every libc's headers.
int raw_capget(__user_cap_data_struct data[2]) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  return static_cast<int>(::syscall(SYS_capget, &header, data));
}

int raw_capset(uint64_t effective, uint64_t permitted, uint64_t inheritable) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  // Version 3 takes the 64-bit sets as two 32-bit words, low word first.
  __user_cap_data_struct data[2] = {
      {static_cast<uint32_t>(effective), static_cast<uint32_t>(permitted),
       static_cast<uint32_t>(inheritable)},
      {static_cast<uint32_t>(effective >> 32), static_cast<uint32_t>(permitted >> 32),
       static_cast<uint32_t>(inheritable >> 32)},
  };
  return static_cast<int>(::syscall(SYS_capset, &header, data));
}

int fail(const char** step, const char* name) {
  int err = errno;
  if (step != nullptr) *step = name;
  return -err;
}

}  // namespace

CapsPlan plan_capabilities(const std::optional<Capabilities>& caps) {
  CapsPlan plan;
  plan.last_cap = last_capability();
  if (!caps) return plan;  // present = false: every set stays empty
  plan.present = true;
  plan.bounding = to_mask(caps->bounding, plan.last_cap);
  plan.effective = to_mask(caps->effective, plan.last_cap);
  plan.inheritable = to_mask(caps->inheritable, plan.last_cap);
  plan.permitted = to_mask(caps->permitted, plan.last_cap);
  plan.ambient = to_mask(caps->ambient, plan.last_cap);
  return plan;
}

bool in_bounding_set(int cap) { return ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1; }

int apply_capabilities(const CapsPlan& plan, const char** step, const char** detail) {
  // After setuid() with keepcaps, permitted survives but effective is empty; PR_CAPBSET_DROP
  // needs CAP_SETPCAP in effective, so bring effective back up to permitted first.
  __user_cap_data_struct current[2] = {};
  if (raw_capget(current) != 0) return fail(step, "read capabilities");
  uint64_t permitted = current[0].permitted | (uint64_t{current[1].permitted} << 32);
  uint64_t inheritable = current[0].inheritable | (uint64_t{current[1].inheritable} << 32);
  if (raw_capset(permitted, permitted, inheritable) != 0) return fail(step, "raise effective capabilities");

  for (int cap = 0; cap <= plan.last_cap && cap < 64; ++cap) {
    if ((plan.bounding & (uint64_t{1} << cap)) != 0) continue;
    // EINVAL: a capability the kernel does not know, so nothing to drop.
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
      return fail(step, "drop bounding capability");
    }
  }

  // What we do not hold cannot be granted: capset would say EPERM and nothing more.
  if (uint64_t missing = (plan.permitted | plan.effective) & ~permitted) {
    int cap = __builtin_ctzll(missing);
    if (step != nullptr) *step = "grant capability";
    if (detail != nullptr) *detail = capability_name(cap).data();
    return -EPERM;
  }
  if (raw_capset(plan.effective, plan.permitted, plan.inheritable) != 0) return fail(step, "capset");

  // Kernels before 4.3 have no ambient set: EINVAL is only an error if the spec needs one.
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 &&
      (errno != EINVAL || plan.ambient != 0)) {
    return fail(step, "clear ambient capabilities");
  }
  // The kernel refuses an ambient capability missing from permitted or inheritable; runc skips
  // such a capability rather than failing the container, and so do we.
  uint64_t raisable = plan.ambient & plan.permitted & plan.inheritable;
  for (int cap = 0; cap <= plan.last_cap && cap < 64; ++cap) {
    if ((raisable & (uint64_t{1} << cap)) == 0) continue;
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0) {
      return fail(step, "raise ambient capability");
    }
  }
  return 0;
}

}  // namespace strata::oci
