// The commands of strata-runtime, built on CLI11; see runtime_main.cc.
#pragma once

#include <string>
#include <vector>

namespace strata::cli {

// `args` without argv[0]; `tail` is the command of exec, or ps's options.
int run_runtime_cli(const std::vector<std::string>& args, const std::vector<std::string>& tail);

}  // namespace strata::cli
