// Name <-> number tables for signals, rlimits and capabilities, as written in config.json and
// on the runc command line ("SIGKILL", "KILL", "9"; "RLIMIT_NOFILE"; "CAP_SYS_ADMIN").
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::oci {

// Accepts "SIGTERM", "TERM", "term", "15", and "RTMIN+3". nullopt for anything else.
std::optional<int> signal_from_name(std::string_view s);
std::optional<int> rlimit_from_name(std::string_view s);  // "RLIMIT_NOFILE" -> RLIMIT_NOFILE
std::string_view rlimit_name(int resource);
std::optional<int> capability_from_name(std::string_view s);  // "CAP_CHOWN" -> 0
std::string_view capability_name(int cap);                    // 0 -> "CAP_CHOWN"; "" if unknown
// Every capability name this build knows, in number order.
std::vector<std::string> all_capability_names();
// The highest capability the running kernel knows (/proc/sys/kernel/cap_last_cap).
int last_capability();
// The OCI/runc default set given to a container's process (bounding/effective/permitted).
std::vector<std::string> default_capability_names();

}  // namespace strata::oci
