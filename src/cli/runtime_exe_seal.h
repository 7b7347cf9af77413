// Keeps container processes from ever holding a writable reference to the strata-runtime binary
// (CVE-2019-5736; see runtime_exe_seal.cc).
#pragma once

#include <string>
#include <vector>

namespace strata::cli {

// True for the subcommands that start processes in a container (create, run, exec).
bool starts_container_processes(const std::vector<std::string>& args);
// Re-execs the runtime from a copy of itself that cannot be written, unless it already runs
// from one. Returns only when nothing needed doing (""), or on failure with what failed.
std::string ensure_unwritable_self(char** argv);

}  // namespace strata::cli
