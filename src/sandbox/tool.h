// run_tool: a helper program (mkfs.ext4, cp) run to completion, its stderr kept for the error.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"

namespace strata::sandbox {

// Runs argv (looked up in PATH) with stdin and stdout on /dev/null; fails with what it printed
// on stderr (up to 4 KiB) when it does not exit 0.
Status run_tool(const std::vector<std::string>& argv);

}  // namespace strata::sandbox
