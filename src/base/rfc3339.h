// RFC 3339 timestamps in UTC, as the OCI state, podman and the registries write them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace strata {

// "2026-11-23T09:08:00Z"
std::string now_rfc3339();
// "2026-11-23T09:08:00.123456789Z" (runc's state and podman's logs carry nanoseconds)
std::string now_rfc3339_nanos();
// Seconds since the epoch of "YYYY-MM-DDTHH:MM:SS" followed by anything (a fraction, Z);
// nullopt when it does not start so.
std::optional<int64_t> parse_rfc3339(std::string_view s);

}  // namespace strata
