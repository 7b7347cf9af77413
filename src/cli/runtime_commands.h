// The commands of strata-runtime, built on CLI11; see runtime_main.cc.
#pragma once

#include <string>
#include <vector>

namespace strata::cli {

// `args` without argv[0]; `tail` is the command of exec, or ps's options.
// Index in args of the subcommand: the first word that is neither a global option nor the
// value of one (--root, --log, --log-format, --criu); args.size() when there is none.
size_t subcommand_index(const std::vector<std::string>& args);

// argv: the process's own, to re-execute it from an unwritable copy when a container needs that
// (oci::RuntimeContext::reexec, exe_guard.h).
int run_runtime_cli(const std::vector<std::string>& args, const std::vector<std::string>& tail, char** argv);

}  // namespace strata::cli
