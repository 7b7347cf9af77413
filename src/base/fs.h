// Small filesystem helpers returning Result: whole-file reads, atomic writes (write to a
// temporary in the same directory, fsync, rename), mkdir -p and recursive removal, and the
// operations on a tree that is not ours (a container's rootfs): paths resolved inside it from a
// directory fd, never joined into host paths (STYLE.md section 7).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/fd.h"

namespace strata::fs {

// The most read_file() takes unless told otherwise: records, configs, manifests, /proc files.
inline constexpr size_t kReadLimit = 16 * 1024 * 1024;

// Reads a regular file whole. It is opened non-blocking (a FIFO cannot hang the reader) and
// refused unless it is a regular file ("not a regular file (a FIFO)"); more than max_bytes is
// EFBIG, so /dev/zero or a huge file named by a user or planted in a tree cannot eat memory.
// ENOENT and the other open errors keep their errno ("open PATH: ENOENT ...").
Result<std::string> read_file(const std::string& path, size_t max_bytes = kReadLimit);
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
// "a FIFO", "a directory", "a character device"...: what a file type is, for errors.
std::string file_type_name(mode_t mode);

// --- A tree that is not ours -------------------------------------------------------------
// Everything inside a container's rootfs is hostile at every start: any component may be a
// symlink (absolute ones included), ".." or a device node that a previous run of the container
// planted. These resolve `path` (absolute or relative, taken as inside the root) from root_fd
// with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS): a symlink to /etc/shadow means the
// root's own /etc/shadow, ".." stops at the root. Paths in errors are the in-root ones.

// An O_PATH fd of `path` inside the root (flags may add O_DIRECTORY, O_NOFOLLOW).
Result<UniqueFd> open_in_root(int root_fd, std::string_view path, int flags = 0);
// Reads a regular file inside the root: resolved as above, checked to be a regular file before
// it is opened for reading (opening a device node can have effects), read non-blocking, at most
// max_bytes (EFBIG beyond).
Result<std::string> read_file_in_root(int root_fd, std::string_view path, size_t max_bytes);
// mkdir -p inside the root: each missing component is made with mkdirat() in its parent, which
// was itself resolved inside the root; an existing non-directory is ENOTDIR. Returns an O_PATH
// fd of the directory. New directories get `mode` and, when uid/gid are not -1, that owner.
Result<UniqueFd> mkdir_in_root(int root_fd, std::string_view path, mode_t mode = 0755, uid_t uid = -1,
                               gid_t gid = -1);

// Lexically cleans a path: removes "//", "/./", resolves ".." without touching the filesystem.
std::string clean(std::string_view p);

}  // namespace strata::fs
