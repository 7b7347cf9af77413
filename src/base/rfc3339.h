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
// Nanoseconds since the epoch of a whole RFC 3339 time: "YYYY-MM-DDTHH:MM:SS", an optional
// fraction (up to 9 digits), then "Z" or "+HH:MM"/"-HH:MM". nullopt for anything else.
std::optional<int64_t> parse_rfc3339_nanos(std::string_view s);
// A Go duration as podman and kubectl take them ("90s", "10m", "1h30m", "1.5h", "250ms"; units
// ns us ms s m h), in nanoseconds; nullopt for anything else (a bare number included).
std::optional<int64_t> parse_duration_nanos(std::string_view s);
// A point in time as `podman logs --since/--until` take it, in nanoseconds since the epoch: an
// RFC 3339 time, Unix seconds with an optional fraction ("1700000000.5"), or a duration meaning
// that long before now_ns.
std::optional<int64_t> parse_time_arg(std::string_view s, int64_t now_ns);

}  // namespace strata
