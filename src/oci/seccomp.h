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
// compile_seccomp() through a per-root cache of compiled programs (seccomp_cache.cc); an empty
// cache_dir compiles every time.
Result<SeccompProgram> compile_seccomp_cached(const Seccomp& spec, const std::string& cache_dir);

// Installs the program with seccomp(2). Needs no_new_privs or CAP_SYS_ADMIN. Returns 0 or
// -errno (-ESRCH when SECCOMP_FILTER_FLAG_TSYNC could not synchronise a thread). An empty
// program installs nothing and returns 0. No allocation.
int load_seccomp(const SeccompProgram& prog);

// The default profile `strata run` gives a container (Docker/podman-like): every syscall fails
// with EPERM except an allow-list of those ordinary programs use; namespace creation, mounts,
// kernel modules, keyrings, BPF and the like stay refused. Architectures: the host's family
// (x86_64, x86, x32 on x86_64 hosts; aarch64, arm on arm64 hosts).
Seccomp default_seccomp_profile();

}  // namespace strata::oci
