// Applying a process's capability sets between clone() and exec(): the plan is computed in
// the parent; apply_capabilities() only issues prctl/capset syscalls (no allocation).
#pragma once

#include <cstdint>

#include "oci/spec.h"

namespace strata::oci {

struct CapsPlan {
  bool present = false;  // false: the process gets no capabilities at all
  uint64_t bounding = 0, effective = 0, inheritable = 0, permitted = 0, ambient = 0;
  int last_cap = 40;
};

CapsPlan plan_capabilities(const std::optional<Capabilities>& caps);

// Drops the bounding set to plan.bounding, then sets inheritable/permitted/effective with
// capset(2) and raises the ambient set. Call after setuid (with PR_SET_KEEPCAPS set before it).
// Returns 0 or -errno; *step names the failed step (a string literal) and *detail, when the
// step concerns one capability, its name: a capability this process does not hold (not in the
// runtime's bounding set, as CAP_SYS_RESOURCE on a machine whose root lacks it) is EPERM naming it
// rather than capset's bare EPERM.
int apply_capabilities(const CapsPlan& plan, const char** step, const char** detail = nullptr);

// Whether this process's bounding set holds `cap` (prctl PR_CAPBSET_READ): what a container
// made by this process without a user namespace can be granted at most.
bool in_bounding_set(int cap);

}  // namespace strata::oci
