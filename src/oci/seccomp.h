// Seccomp: linux.seccomp compiled to a classic BPF program with libseccomp in the parent
// (STYLE.md section 6); the child only loads the ready program.
#pragma once

#include <linux/filter.h>

#include <vector>

#include "oci/spec.h"

namespace strata::oci {

struct SeccompProgram {
  std::vector<sock_filter> filter;
  unsigned int flags = 0;  // SECCOMP_FILTER_FLAG_*
  bool empty() const { return filter.empty(); }
};

// Validates names (actions, architectures, operators, flags: each refused by name) and
// compiles. Syscall names unknown to libseccomp are skipped, as runc does, so that profiles
// written for newer kernels still load.
Result<SeccompProgram> compile_seccomp(const Seccomp& spec);

// Installs the program with seccomp(2). Needs no_new_privs or CAP_SYS_ADMIN. Returns 0 or
// -errno. No allocation.
int load_seccomp(const SeccompProgram& prog);

}  // namespace strata::oci
