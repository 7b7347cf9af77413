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
// Returns 0 or -errno; *step names the failed step (a string literal).
int apply_capabilities(const CapsPlan& plan, const char** step);

}  // namespace strata::oci
