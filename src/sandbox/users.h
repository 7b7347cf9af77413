// A --user / image User value ("1000", "1000:1000", "nobody", "www-data:www-data") resolved
// against the container's own /etc/passwd and /etc/group, as docker and podman resolve it.
// Both files belong to the container, which may have replaced them before this start: they are
// read from the rootfs fd (fs::read_file_in_root: inside the root, regular files only, at most
// kUserDbLimit bytes), and every id in them is range-checked like one a user typed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace strata::sandbox {

struct ResolvedUser {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids;
  std::string home = "/";
};

// Larger files are refused: a real /etc/passwd is a few KiB.
inline constexpr size_t kUserDbLimit = 4 * 1024 * 1024;

// Resolves `user` against the text of passwd and group (either may be empty). Ids are 0 to
// str::kMaxId; a name that is not in the file, or a matching line with an id out of range, is
// an error naming the file.
Result<ResolvedUser> resolve_user_in(std::string_view passwd, std::string_view group, std::string_view user);

// Reads /etc/passwd and /etc/group inside the root (a missing file counts as empty) and
// resolves. An empty user is root with HOME=/ and reads nothing.
Result<ResolvedUser> resolve_user(int root_fd, std::string_view user);

}  // namespace strata::sandbox
