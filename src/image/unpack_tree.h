// The destination side of layer unpacking (unpack.h), internal to src/image: a directory tree
// that is only ever reached through fds opened beneath its root without following symlinks,
// with a small cache of directory fds (tar entries come grouped by directory, so most entries
// reuse the previous entry's parent instead of walking the path again), and the directory
// modes and mtimes that can only be applied once everything inside has been written.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/error.h"
#include "base/fd.h"

namespace strata::image::detail {

// A directory fd (O_PATH) shared by the cache and whoever is creating entries in it, so that
// evicting it from the cache never closes an fd still in use.
using DirRef = std::shared_ptr<const UniqueFd>;

// "./a//b/" -> "a/b"; "." or "./" -> "" (the layer root). Refuses empty names, absolute paths
// and any ".." component (even one that would stay inside) with a message naming the problem.
Result<std::string> clean_entry_path(std::string_view name);

// "a/b/c" -> {"a/b", "c"}; "c" -> {"", "c"}.
std::pair<std::string_view, std::string_view> split_parent(std::string_view path);

class LayerTree {
 public:
  static Result<LayerTree> open(const std::string& dest);
  int root_fd() const { return root_->get(); }

  // The directory at a clean path ("" is the root), created with mode 0755 where missing (tar
  // archives need not list parents). A symlink or non-directory on the way is an error; a
  // whiteout on the way becomes an opaque directory (see unpack.h).
  Result<DirRef> dir(std::string_view path);

  // Removes `name` in the directory at parent_path, recursively when it is a directory (not
  // crossing into other filesystems, following no symlinks), and forgets cached fds and
  // pending fixups under it.
  Status remove(const DirRef& parent, std::string_view parent_path, std::string_view name);

  // Marks the directory at path opaque (overlay xattr).
  Status make_opaque(int dir_fd);

  // A directory's mode and mtime, applied by finish() after its content exists (creating an
  // entry in a directory changes its mtime; a read-only mode would stop the creation).
  void defer_dir_metadata(const std::string& path, mode_t mode, const timespec* mtime);
  // Applies deferred directory metadata, deepest first.
  Status finish();

  void set_userxattr(bool on) { userxattr_ = on; }

 private:
  struct DirFixup {
    std::string path;
    mode_t mode = 0;
    timespec mtime{};
    bool has_mtime = false;
    bool removed = false;
  };

  explicit LayerTree(UniqueFd root) : root_(std::make_shared<UniqueFd>(std::move(root))) {}
  Result<UniqueFd> open_or_create_child(const DirRef& parent, std::string_view parent_path,
                                        std::string_view name);
  void forget_under(std::string_view path);

  DirRef root_;
  std::unordered_map<std::string, DirRef> cache_;
  std::vector<DirFixup> fixups_;
  std::unordered_map<std::string, size_t> fixup_index_;
  bool userxattr_ = false;
};

// openat2(dirfd, path, flags, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
// RESOLVE_NO_XDEV); -1 with errno on failure.
int open_beneath(int dirfd, const char* path, int flags);

}  // namespace strata::image::detail
