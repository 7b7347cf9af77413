// OCI hooks run by the runtime itself (prestart, createRuntime, poststart, poststop): the
// container's state JSON on stdin, the hook's own args and env, an optional timeout
// (runtime-spec config.md "POSIX-platform Hooks"). createContainer and startContainer hooks
// run inside the container and live in init.cc.
#pragma once

#include <string>
#include <vector>

#include "oci/spec.h"

namespace strata::oci {

// Runs each hook in order; the first failure (non-zero exit, signal, timeout, missing binary)
// stops the rest and is returned, naming the kind, the index and the path.
Status run_hooks(const std::vector<Hook>& hooks, const char* kind, const std::string& state_json);

}  // namespace strata::oci
