// Internal to the config.json parser: the pieces of parse_spec() that live in their own files
// (spec.cc: top level, process, root, mounts, hooks; spec_linux.cc: the "linux" object).
#pragma once

#include <string>
#include <vector>

#include "oci/json_reader.h"
#include "oci/spec.h"

namespace strata::oci::spec_internal {

// Reads the "linux" object of config-linux.md into out. Checks that need other parts of the
// spec (hostname needs a uts namespace, ...) are made by parse_spec afterwards.
Status parse_linux(const json_reader::Json& v, const std::string& path, Linux& out,
                   std::vector<std::string>& warnings);

// "/..." (NUL bytes were refused when the string was read).
bool is_absolute(const std::string& p);
// True when a '/'-separated component of p is "..".
bool has_dotdot(std::string_view p);
// A user or group id: 0 to str::kMaxId (runc's limit; (uid_t)-1 means "unchanged" to the kernel).
Status check_id(uint64_t id, const std::string& path);

}  // namespace strata::oci::spec_internal
