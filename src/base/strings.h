// String helpers used across layers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::str {

std::vector<std::string> split(std::string_view s, char sep);
std::string join(const std::vector<std::string>& parts, std::string_view sep);
std::string_view trim(std::string_view s);
bool starts_with(std::string_view s, std::string_view prefix);
std::optional<int64_t> parse_int(std::string_view s);
std::optional<uint64_t> parse_uint(std::string_view s);

// The largest user or group id strata accepts anywhere (users, groups, additional gids, id
// mappings), as runc: (uid_t)-1 means "unchanged" to setresuid/chown, so 4294967295 would keep
// the caller's root, and ids past INT32_MAX are negative to much of userland.
inline constexpr uint32_t kMaxId = 2147483647;
// A decimal user or group id, 0..kMaxId; nullopt otherwise (signs, spaces, overflow).
std::optional<uint32_t> parse_id(std::string_view s);
// "100M", "1g", "512k", "64mb", "1048576" -> bytes (binary units); "-1" stays -1 (unlimited).
// nullopt for anything else.
std::optional<int64_t> parse_size(std::string_view s);

// Standard base64 (RFC 4648 section 4, with padding): the "auth" field of auth.json, Basic
// headers, binary state in JSON snapshots. decode returns nullopt on a character outside the
// alphabet or an impossible length.
std::string base64_encode(std::string_view data);
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace strata::str
