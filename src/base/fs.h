// Small filesystem helpers returning Result: whole-file reads, atomic writes (write to a
// temporary in the same directory, fsync, rename), mkdir -p and recursive removal.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace strata::fs {

Result<std::string> read_file(const std::string& path);
// Reads fd to its end, handing each chunk (at most buf_size bytes) to `sink`; an error from the
// sink stops the read and is returned. EINTR is retried; a failed read is "read <what>: errno".
// The one read loop of the project: whole files, hashes, copies and archive entries use it.
Status read_chunks(int fd, const std::string& what, const std::function<Status(const char*, size_t)>& sink,
                   size_t buf_size = 64 * 1024);
// Writes `data` to path through a temporary and rename(2): readers see the old or the new
// content, never a partial one. `durable` adds an fsync before the rename, for files that
// must survive a power loss (state under /run does not need it).
Status write_file_atomic(const std::string& path, std::string_view data, mode_t mode = 0644,
                         bool durable = false);
// Writes to an existing file (cgroup and proc files): one write(2), no truncation games.
Status write_file(const std::string& path, std::string_view data);
Status mkdir_p(const std::string& path, mode_t mode = 0755);
// rm -rf that does not cross mount points and does not follow symlinks.
Status remove_tree(const std::string& path);
bool exists(const std::string& path);
bool is_dir(const std::string& path);
std::vector<std::string> list_dir(const std::string& path);
// Joins a and b with exactly one '/'.
std::string join(std::string_view a, std::string_view b);
// Absolute path of p relative to the current directory, lexically cleaned.
std::string absolute(const std::string& p);
// Lexically cleans a path: removes "//", "/./", resolves ".." without touching the filesystem.
std::string clean(std::string_view p);

}  // namespace strata::fs
