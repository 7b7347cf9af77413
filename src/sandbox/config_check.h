// The values of a ContainerConfig checked as docker and podman check them, whoever built it
// (strata run's flags merged with an image config, a record read back, later the orchestrator):
// numbers finite and in range, names well formed. A value that passes here cannot become a
// record strata can neither show nor remove (an `inf` CPU count was written as JSON null), a
// quota that overflows, or a setresuid(-1).
#pragma once

#include <string_view>

#include "base/error.h"
#include "sandbox/record.h"

namespace strata::sandbox {

// docker's minimum memory limit: below it a container dies before its init reports.
inline constexpr int64_t kMinMemoryBytes = 6 * 1024 * 1024;
// docker's smallest --cpus.
inline constexpr double kMinCpus = 0.01;

// Every field of c; errors name the flag a user would have typed ("--cpus inf: ...").
Status check_config(const ContainerConfig& c);

// --cpus: finite, from 0.01 to the CPUs this machine has.
Status check_cpus(double cpus);
// --hostname: RFC 1123 (letters, digits and '-' in dot-separated labels of 1-63, not starting or
// ending with '-'), at most 64 bytes (the kernel's limit for a UTS name).
Status check_hostname(std::string_view name);

}  // namespace strata::sandbox
