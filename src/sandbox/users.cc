#include "sandbox/users.h"

#include <algorithm>
#include <cerrno>
#include <optional>

#include "base/fs.h"
#include "base/strings.h"

namespace strata::sandbox {

namespace {

// name:x:id:... lines; comments and blank lines skipped.
std::vector<std::vector<std::string>> parse_db(std::string_view text) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& line : str::split(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    rows.push_back(str::split(line, ':'));
  }
  return rows;
}

// An id from a line of the image's file: the same range as one a user types.
Result<uint32_t> db_id(const std::string& text, const char* file, const char* what, const std::string& name) {
  auto id = str::parse_id(text);
  if (!id) {
    return Error(std::string(what) + " \"" + name + "\" in the image's " + file + ": " + what + " id \"" +
                 text.substr(0, 32) + "\" is not a number from 0 to " + std::to_string(str::kMaxId));
  }
  return *id;
}

// A number typed as the user or group, or nullopt for a name. Digits out of range are an error:
// they would otherwise be looked up as a name.
Result<std::optional<uint32_t>> typed_id(std::string_view s, const char* what) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string_view::npos)
    return std::optional<uint32_t>();
  auto id = str::parse_id(s);
  if (!id) {
    return Error(std::string(what) + " id " + std::string(s.substr(0, 32)) + " is out of range (0 to " +
                 std::to_string(str::kMaxId) + ")");
  }
  return std::optional<uint32_t>(*id);
}

Result<std::string> read_db(int root_fd, const char* path) {
  auto text = fs::read_file_in_root(root_fd, path, kUserDbLimit);
  if (text) return std::move(*text);
  if (text.error().err() == ENOENT) return std::string();
  return std::move(text).error().context("look up the container's user");
}

}  // namespace

Result<ResolvedUser> resolve_user_in(std::string_view passwd_text, std::string_view group_text,
                                     std::string_view user) {
  ResolvedUser r;
  std::string u(user), g;
  if (auto colon = user.find(':'); colon != std::string::npos) {
    u = std::string(user.substr(0, colon));
    g = std::string(user.substr(colon + 1));
  }
  if (u.empty()) {
    if (!g.empty() || !user.empty())
      return Error("user \"" + std::string(user.substr(0, 64)) + "\": no user name or id");
    u = "0";
  }
  auto passwd = parse_db(passwd_text);
  auto group = parse_db(group_text);
  bool gid_set = false;
  ASSIGN_OR_RETURN(std::optional<uint32_t> uid, typed_id(u, "user"));
  if (uid) {
    r.uid = *uid;
    for (const auto& row : passwd) {
      if (row.size() >= 6 && str::parse_uint(row[2]) == uint64_t{*uid}) {
        ASSIGN_OR_RETURN(r.gid, db_id(row[3], "/etc/passwd", "group", row[0]));
        r.home = row[5];
        gid_set = true;
        break;
      }
    }
  } else {
    bool found = false;
    for (const auto& row : passwd) {
      if (row.size() >= 6 && row[0] == u) {
        ASSIGN_OR_RETURN(r.uid, db_id(row[2], "/etc/passwd", "user", u));
        ASSIGN_OR_RETURN(r.gid, db_id(row[3], "/etc/passwd", "group", u));
        r.home = row[5];
        found = gid_set = true;
        break;
      }
    }
    if (!found) return Error("user \"" + u.substr(0, 64) + "\": no such user in the image's /etc/passwd");
  }
  if (!g.empty()) {
    ASSIGN_OR_RETURN(std::optional<uint32_t> gid, typed_id(g, "group"));
    if (gid) {
      r.gid = *gid;
    } else {
      bool found = false;
      for (const auto& row : group) {
        if (row.size() >= 3 && row[0] == g) {
          ASSIGN_OR_RETURN(r.gid, db_id(row[2], "/etc/group", "group", g));
          found = true;
          break;
        }
      }
      if (!found) return Error("group \"" + g.substr(0, 64) + "\": no such group in the image's /etc/group");
    }
  } else if (!gid_set) {
    r.gid = r.uid;
  }
  // Supplementary groups: every group listing the user by name. A line whose id is out of range
  // is an error (setgroups would refuse it later with a bare EINVAL).
  std::string uname;
  for (const auto& row : passwd) {
    if (row.size() >= 3 && str::parse_uint(row[2]) == uint64_t{r.uid}) {
      uname = row[0];
      break;
    }
  }
  if (!uname.empty()) {
    for (const auto& row : group) {
      if (row.size() < 4) continue;
      for (const auto& member : str::split(row[3], ',')) {
        if (member != uname) continue;
        ASSIGN_OR_RETURN(uint32_t gid, db_id(row[2], "/etc/group", "group", row[0]));
        if (gid != r.gid &&
            std::find(r.additional_gids.begin(), r.additional_gids.end(), gid) == r.additional_gids.end())
          r.additional_gids.push_back(gid);
      }
    }
  }
  // The kernel's NGROUPS_MAX.
  if (r.additional_gids.size() > 65536)
    return Error("user \"" + uname.substr(0, 64) +
                 "\" is in more than 65536 groups in the image's /etc/group");
  return r;
}

Result<ResolvedUser> resolve_user(int root_fd, std::string_view user) {
  if (user.empty()) return ResolvedUser{};
  ASSIGN_OR_RETURN(std::string passwd, read_db(root_fd, "/etc/passwd"));
  ASSIGN_OR_RETURN(std::string group, read_db(root_fd, "/etc/group"));
  return resolve_user_in(passwd, group, user);
}

}  // namespace strata::sandbox
