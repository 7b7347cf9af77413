// LayerTree (unpack_tree.h). Directory fds are O_RDONLY rather than O_PATH so that the same fd
// serves fsetxattr/fchmod/fchown; every directory is created by this code with owner rwx and
// only gets its final mode in finish(), so reading it never fails for lack of permission.
#include "image/unpack_tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <climits>

#include "image/shown_name.h"

namespace strata::image::detail {
namespace {

// Enough for the directories one archive is working in at once; bounded so that several
// layers unpacking in parallel stay far from RLIMIT_NOFILE.
constexpr size_t kMaxCachedDirs = 64;

std::string join_path(std::string_view parent, std::string_view name) {
  if (parent.empty()) return std::string(name);
  std::string out(parent);
  out += '/';
  out += name;
  return out;
}

bool is_whiteout(const struct stat& st) { return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0); }

// Empties the directory `name` in dirfd, depth first, staying on device `dev`.
Status remove_contents(int parent_fd, const char* name, dev_t dev, const std::string& shown) {
  UniqueFd fd(openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return Error::sys("open directory " + shown_name(shown) + " to remove it");
  DIR* d = fdopendir(fd.get());
  if (d == nullptr) return Error::sys("read directory " + shown_name(shown));
  int dfd = fd.release();
  Status result;
  while (dirent* ent = readdir(d)) {
    std::string_view n = ent->d_name;
    if (n == "." || n == "..") continue;
    std::string child = shown + "/" + ent->d_name;
    struct stat st {};
    if (fstatat(dfd, ent->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      result = Error::sys("stat " + shown_name(child));
      break;
    }
    if (S_ISDIR(st.st_mode)) {
      if (st.st_dev != dev) {
        result = Error(shown_name(child) + " is a mount point; not removing it");
        break;
      }
      if (Status s = remove_contents(dfd, ent->d_name, dev, child); !s.ok()) {
        result = std::move(s);
        break;
      }
    }
    if (unlinkat(dfd, ent->d_name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) != 0) {
      result = Error::sys("remove " + shown_name(child));
      break;
    }
  }
  closedir(d);
  return result;
}

size_t depth(const std::string& path) {
  return path.empty() ? 0 : 1 + static_cast<size_t>(std::count(path.begin(), path.end(), '/'));
}

}  // namespace

int open_beneath(int dirfd, const char* path, int flags) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags) | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  return static_cast<int>(syscall(SYS_openat2, dirfd, path, &how, sizeof(how)));
}

Result<std::string> clean_entry_path(std::string_view name) {
  if (name.empty()) return Error("empty name");
  if (name.front() == '/') return Error("absolute path refused");
  // The kernel refuses longer paths anyway; refusing here also bounds the recursion in
  // LayerTree::dir().
  if (name.size() >= PATH_MAX) return Error("name longer than " + std::to_string(PATH_MAX - 1) + " bytes");
  std::string out;
  out.reserve(name.size());
  size_t pos = 0;
  while (pos <= name.size()) {
    size_t slash = std::min(name.find('/', pos), name.size());
    std::string_view c = name.substr(pos, slash - pos);
    pos = slash + 1;
    if (c.empty() || c == ".") continue;
    if (c == "..") return Error("path escapes the layer directory");
    if (!out.empty()) out += '/';
    out += c;
  }
  return out;
}

std::pair<std::string_view, std::string_view> split_parent(std::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return {std::string_view(), path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

Result<LayerTree> LayerTree::open(const std::string& dest) {
  UniqueFd fd(::open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Error::sys("open layer directory " + dest);
  return LayerTree(std::move(fd));
}

Result<DirRef> LayerTree::dir(std::string_view path) {
  if (path.empty()) return root_;
  std::string key(path);
  if (auto it = cache_.find(key); it != cache_.end()) return it->second;
  // One openat2 walks the whole path in the kernel; only a missing or odd component takes the
  // slow way, one component at a time from the nearest cached parent.
  UniqueFd fd(open_beneath(root_->get(), key.c_str(), O_RDONLY | O_DIRECTORY));
  if (!fd) {
    if (errno != ENOENT && errno != ELOOP && errno != ENOTDIR && errno != EXDEV)
      return Error::sys("open directory " + shown_name(key));
    auto [parent_path, name] = split_parent(key);
    ASSIGN_OR_RETURN(DirRef parent, dir(parent_path));
    ASSIGN_OR_RETURN(fd, open_or_create_child(parent, parent_path, name));
  }
  if (cache_.size() >= kMaxCachedDirs) cache_.clear();
  auto ref = std::make_shared<const UniqueFd>(std::move(fd));
  cache_.emplace(std::move(key), ref);
  return DirRef(ref);
}

Result<UniqueFd> LayerTree::open_or_create_child(const DirRef& parent, std::string_view parent_path,
                                                 std::string_view name) {
  std::string shown = join_path(parent_path, name);
  std::string n(name);
  bool created = false;
  bool opaque = false;
  for (int attempt = 0; attempt < 3; ++attempt) {
    UniqueFd fd(open_beneath(parent->get(), n.c_str(), O_RDONLY | O_DIRECTORY));
    if (fd) {
      // tar archives need not list parents; docker and podman make the missing ones 0755
      // whatever the umask.
      if (created && fchmod(fd.get(), 0755) != 0) return Error::sys("chmod directory " + shown_name(shown));
      if (opaque) TRY_CTX(make_opaque(fd.get()), "directory " + shown_name(shown));
      return fd;
    }
    if (errno == ENOENT) {
      if (mkdirat(parent->get(), n.c_str(), 0700) != 0 && errno != EEXIST)
        return Error::sys("create directory " + shown_name(shown));
      created = true;
      continue;
    }
    if (errno == ELOOP) return Error(shown_name(shown) + " is a symlink; refusing to follow it");
    if (errno == EXDEV) return Error(shown_name(shown) + " is a mount point; refusing to cross it");
    if (errno != ENOTDIR) return Error::sys("open directory " + shown_name(shown));
    struct stat st {};
    if (fstatat(parent->get(), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && is_whiteout(st) && !opaque) {
      // Deleted in the layers below, recreated in this one: only this layer's content counts.
      if (unlinkat(parent->get(), n.c_str(), 0) != 0)
        return Error::sys("remove whiteout " + shown_name(shown));
      opaque = true;
      continue;
    }
    return Error(shown_name(shown) + " is not a directory");
  }
  return Error(shown_name(shown) + ": changed while being created");
}

Status LayerTree::remove(const DirRef& parent, std::string_view parent_path, std::string_view name) {
  std::string shown = join_path(parent_path, name);
  std::string n(name);
  struct stat st {};
  if (fstatat(parent->get(), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return ok();
    return Error::sys("stat " + shown_name(shown));
  }
  if (S_ISDIR(st.st_mode)) {
    TRY(remove_contents(parent->get(), n.c_str(), st.st_dev, shown));
    forget_under(shown);
  }
  if (unlinkat(parent->get(), n.c_str(), S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) != 0)
    return Error::sys("remove " + shown_name(shown));
  return ok();
}

void LayerTree::forget_under(std::string_view path) {
  auto under = [&](std::string_view p) {
    return p == path || (p.size() > path.size() && p.starts_with(path) && p[path.size()] == '/');
  };
  std::erase_if(cache_, [&](const auto& kv) { return under(kv.first); });
  for (auto& f : fixups_) {
    if (!f.removed && under(f.path)) {
      f.removed = true;
      fixup_index_.erase(f.path);
    }
  }
}

Status LayerTree::make_opaque(int dir_fd) {
  const char* name = userxattr_ ? "user.overlay.opaque" : "trusted.overlay.opaque";
  if (fsetxattr(dir_fd, name, "y", 1, 0) != 0) return Error::sys(std::string("set xattr ") + name);
  return ok();
}

void LayerTree::defer_dir_metadata(const std::string& path, mode_t mode, const timespec* mtime) {
  auto [it, inserted] = fixup_index_.try_emplace(path, fixups_.size());
  if (inserted) fixups_.push_back(DirFixup{path});
  DirFixup& f = fixups_[it->second];
  f.mode = mode;
  f.has_mtime = mtime != nullptr;
  if (mtime != nullptr) f.mtime = *mtime;
}

Status LayerTree::finish() {
  cache_.clear();
  std::vector<const DirFixup*> order;
  for (const auto& f : fixups_)
    if (!f.removed) order.push_back(&f);
  // Children before parents: a parent's final mode may forbid reaching into it.
  std::stable_sort(order.begin(), order.end(),
                   [](const DirFixup* a, const DirFixup* b) { return depth(a->path) > depth(b->path); });
  for (const DirFixup* f : order) {
    UniqueFd owned;
    int fd = root_->get();
    if (!f->path.empty()) {
      owned.reset(open_beneath(root_->get(), f->path.c_str(), O_RDONLY | O_DIRECTORY));
      if (!owned) return Error::sys("open directory " + shown_name(f->path));
      fd = owned.get();
    }
    std::string shown = f->path.empty() ? "." : f->path;
    if (fchmod(fd, f->mode) != 0) return Error::sys("chmod directory " + shown_name(shown));
    if (f->has_mtime) {
      timespec ts[2] = {f->mtime, f->mtime};
      if (futimens(fd, ts) != 0) return Error::sys("set times of directory " + shown_name(shown));
    }
  }
  return ok();
}

}  // namespace strata::image::detail
