// Layer unpacking (unpack.h): libarchive reads and decompresses, LayerTree (unpack_tree.h)
// confines every write to the layer directory, and this file turns each tar entry into the
// file, directory, link, node or whiteout it describes. libarchive's own disk writer is not
// used: it resolves paths itself, and the guarantee here rests on openat2 beneath one fd.
#include "image/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <unordered_set>

#include "base/log.h"
#include "image/unpack_tree.h"

namespace strata::image {
namespace {

using detail::DirRef;
using detail::LayerTree;

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kWhiteoutMeta = ".wh..wh.";  // aufs bookkeeping, never content
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";
constexpr size_t kReadBlock = 1 << 20;

struct ArchiveFree {
  void operator()(archive* a) const { archive_read_free(a); }
};
using ArchivePtr = std::unique_ptr<archive, ArchiveFree>;

Error archive_error(archive* a, std::string_view step) {
  const char* msg = archive_error_string(a);
  return Error(std::string(step) + ": " + (msg != nullptr ? msg : "unknown libarchive error"),
               archive_errno(a));
}

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// What one entry asks for, read once from libarchive.
struct EntryMeta {
  mode_t mode = 0;  // permission bits incl. setuid/setgid/sticky
  uid_t uid = 0;
  gid_t gid = 0;
  bool has_mtime = false;
  timespec times[2]{};  // atime, mtime
};

class Unpacker {
 public:
  Unpacker(archive* a, LayerTree tree, const UnpackOptions& opts)
      : a_(a), tree_(std::move(tree)), opts_(opts) {
    tree_.set_userxattr(opts.userxattr);
  }

  Status entry(archive_entry* e, const std::string& path);
  Status finish() { return tree_.finish(); }
  const UnpackStats& stats() const { return stats_; }
  UnpackStats& stats() { return stats_; }

 private:
  Result<EntryMeta> read_meta(archive_entry* e);
  Status whiteout(const DirRef& parent, std::string_view parent_path, std::string_view name);
  Status directory(archive_entry* e, const EntryMeta& m, const DirRef& parent, const std::string& path,
                   const char* name);
  Status regular(archive_entry* e, const EntryMeta& m, const DirRef& parent, const std::string& path,
                 const char* name);
  Status hardlink(archive_entry* e, const DirRef& parent, const std::string& path, const char* name);
  // Creates one non-directory with `make` (which returns 0 or -1/errno), replacing whatever
  // was there, as tar does.
  template <class F>
  Status create(const DirRef& parent, std::string_view parent_path, const char* name, F make);
  Status set_xattrs(archive_entry* e, int fd, const std::string& proc_path);
  Status set_node_meta(archive_entry* e, const EntryMeta& m, const DirRef& parent, const char* name,
                       bool is_symlink);

  archive* a_;
  LayerTree tree_;
  UnpackOptions opts_;
  UnpackStats stats_;
  // Non-directories made so far: the only things a hardlink may point at.
  std::unordered_set<std::string> made_;
};

Result<EntryMeta> Unpacker::read_meta(archive_entry* e) {
  EntryMeta m;
  m.mode = archive_entry_perm(e) & 07777;
  la_int64_t uid = archive_entry_uid(e);
  la_int64_t gid = archive_entry_gid(e);
  // (uid_t)-1 means "leave unchanged" to chown; anything that does not fit is not an id.
  if (uid < 0 || uid >= 0xFFFFFFFFLL) return Error("uid " + std::to_string(uid) + " out of range");
  if (gid < 0 || gid >= 0xFFFFFFFFLL) return Error("gid " + std::to_string(gid) + " out of range");
  m.uid = static_cast<uid_t>(uid);
  m.gid = static_cast<gid_t>(gid);
  if (archive_entry_mtime_is_set(e)) {
    m.has_mtime = true;
    m.times[1] = {static_cast<time_t>(archive_entry_mtime(e)), archive_entry_mtime_nsec(e)};
    m.times[0] = m.times[1];
    if (archive_entry_atime_is_set(e))
      m.times[0] = {static_cast<time_t>(archive_entry_atime(e)), archive_entry_atime_nsec(e)};
  }
  return m;
}

Status Unpacker::entry(archive_entry* e, const std::string& path) {
  ASSIGN_OR_RETURN(EntryMeta m, read_meta(e));
  mode_t type = archive_entry_filetype(e);
  const char* hardlink_target = archive_entry_hardlink(e);

  if (path.empty()) {
    // "./": the layer root's own metadata (overlay shows the topmost layer's root).
    if (hardlink_target != nullptr || type != AE_IFDIR) return Error("the layer root is not a directory");
    if (opts_.preserve_owner && fchownat(tree_.root_fd(), "", m.uid, m.gid, AT_EMPTY_PATH) != 0)
      return Error::sys("chown");
    TRY(set_xattrs(e, tree_.root_fd(), ""));
    tree_.defer_dir_metadata(path, m.mode, m.has_mtime ? &m.times[1] : nullptr);
    return ok();
  }

  auto [parent_path, base] = detail::split_parent(path);
  ASSIGN_OR_RETURN(DirRef parent, tree_.dir(parent_path));
  if (opts_.overlay_whiteouts && base.starts_with(kWhiteoutPrefix))
    return whiteout(parent, parent_path, base);
  std::string name_buf(base);
  const char* name = name_buf.c_str();

  if (hardlink_target != nullptr) return hardlink(e, parent, path, name);
  switch (type) {
    case AE_IFDIR:
      return directory(e, m, parent, path, name);
    case AE_IFREG:
      return regular(e, m, parent, path, name);
    case AE_IFLNK: {
      const char* target = archive_entry_symlink(e);
      if (target == nullptr || *target == '\0') return Error("symlink without a target");
      TRY(create(parent, parent_path, name, [&] { return symlinkat(target, parent->get(), name); }));
      made_.insert(path);
      return set_node_meta(e, m, parent, name, true);
    }
    case AE_IFIFO:
    case AE_IFCHR:
    case AE_IFBLK: {
      if (type != AE_IFIFO && !opts_.allow_devices) {
        log::get("image")->debug("unpack: skipping device node {} (devices not allowed)", path);
        ++stats_.skipped;
        return ok();
      }
      dev_t dev = type == AE_IFIFO ? 0 : makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
      TRY(create(parent, parent_path, name, [&] { return mknodat(parent->get(), name, type | 0600, dev); }));
      made_.insert(path);
      return set_node_meta(e, m, parent, name, false);
    }
    default:
      return Error("unsupported entry type " + std::to_string(type));
  }
}

Status Unpacker::whiteout(const DirRef& parent, std::string_view parent_path, std::string_view name) {
  if (name == kOpaqueMarker) {
    ++stats_.whiteouts;
    return tree_.make_opaque(parent->get());
  }
  if (name.starts_with(kWhiteoutMeta)) {
    ++stats_.skipped;
    return ok();
  }
  std::string target(name.substr(kWhiteoutPrefix.size()));
  if (target.empty() || target == "." || target == "..") return Error("whiteout names no file");
  ++stats_.whiteouts;
  if (mknodat(parent->get(), target.c_str(), S_IFCHR | 0000, makedev(0, 0)) == 0) return ok();
  if (errno != EEXIST) return Error::sys("create whiteout " + quoted(target));
  // The same layer also has the file: it stays (the whiteout only hides lower layers). A
  // directory here must not show the lower one's content through it, so it becomes opaque.
  struct stat st {};
  if (fstatat(parent->get(), target.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return Error::sys("stat " + quoted(target));
  if (!S_ISDIR(st.st_mode)) return ok();
  ASSIGN_OR_RETURN(DirRef dir,
                   tree_.dir(parent_path.empty() ? target : std::string(parent_path) + "/" + target));
  return tree_.make_opaque(dir->get());
}

Status Unpacker::directory(archive_entry* e, const EntryMeta& m, const DirRef& parent,
                           const std::string& path, const char* name) {
  auto [parent_path, base] = detail::split_parent(path);
  bool opaque = false;
  if (mkdirat(parent->get(), name, 0700) != 0) {
    if (errno != EEXIST) return Error::sys("create directory");
    struct stat st {};
    if (fstatat(parent->get(), name, &st, AT_SYMLINK_NOFOLLOW) != 0) return Error::sys("stat");
    if (!S_ISDIR(st.st_mode)) {
      // A directory replacing a whiteout: see unpack.h.
      opaque = opts_.overlay_whiteouts && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
      TRY(tree_.remove(parent, parent_path, base));
      if (mkdirat(parent->get(), name, 0700) != 0) return Error::sys("create directory");
    }
  }
  ASSIGN_OR_RETURN(DirRef dir, tree_.dir(path));
  if (opts_.preserve_owner && fchown(dir->get(), m.uid, m.gid) != 0) return Error::sys("chown");
  TRY(set_xattrs(e, dir->get(), ""));
  if (opaque) TRY(tree_.make_opaque(dir->get()));
  tree_.defer_dir_metadata(path, m.mode, m.has_mtime ? &m.times[1] : nullptr);
  return ok();
}

Status Unpacker::regular(archive_entry* e, const EntryMeta& m, const DirRef& parent, const std::string& path,
                         const char* name) {
  std::string_view parent_path = detail::split_parent(path).first;
  UniqueFd fd;
  // O_EXCL|O_NOFOLLOW: never write through whatever was there (a symlink, a hardlink into
  // another file of this layer); tar replaces it instead.
  TRY(create(parent, parent_path, name, [&] {
    fd.reset(openat(parent->get(), name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    return fd ? 0 : -1;
  }));
  made_.insert(path);
  const void* buf = nullptr;
  size_t size = 0;
  la_int64_t offset = 0;
  la_int64_t pos = 0;
  while (true) {
    int r = archive_read_data_block(a_, &buf, &size, &offset);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return archive_error(a_, "read data");
    if (offset < pos) return Error("data blocks out of order");
    if (offset > pos && lseek(fd.get(), offset, SEEK_SET) < 0) return Error::sys("seek");  // a sparse hole
    const char* p = static_cast<const char*>(buf);
    size_t left = size;
    while (left > 0) {
      ssize_t n = write(fd.get(), p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Error::sys("write");
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
    pos = offset + static_cast<la_int64_t>(size);
    stats_.bytes += size;
  }
  la_int64_t want = archive_entry_size(e);
  if (want > pos && ftruncate(fd.get(), want) != 0) return Error::sys("truncate");  // trailing hole
  // chown before chmod: chown clears setuid/setgid; xattrs after chown, which drops
  // security.capability.
  if (opts_.preserve_owner && fchown(fd.get(), m.uid, m.gid) != 0) return Error::sys("chown");
  if (fchmod(fd.get(), m.mode) != 0) return Error::sys("chmod");
  TRY(set_xattrs(e, fd.get(), ""));
  if (m.has_mtime && futimens(fd.get(), m.times) != 0) return Error::sys("set times");
  return ok();
}

Status Unpacker::hardlink(archive_entry* e, const DirRef& parent, const std::string& path, const char* name) {
  auto target = detail::clean_entry_path(archive_entry_hardlink(e));
  if (!target.ok())
    return std::move(target).error().context("hardlink target " + quoted(archive_entry_hardlink(e)));
  if (!made_.contains(*target))
    return Error("hardlink target " + quoted(*target) + " is not an earlier file of this layer");
  auto [target_parent_path, target_base] = detail::split_parent(*target);
  ASSIGN_OR_RETURN(DirRef target_parent, tree_.dir(target_parent_path));
  std::string target_name(target_base);
  std::string_view parent_path = detail::split_parent(path).first;
  // flags 0: link the target itself, never what a symlink target would point at.
  TRY(create(parent, parent_path, name,
             [&] { return linkat(target_parent->get(), target_name.c_str(), parent->get(), name, 0); }));
  made_.insert(path);
  return ok();
}

template <class F>
Status Unpacker::create(const DirRef& parent, std::string_view parent_path, const char* name, F make) {
  if (make() == 0) return ok();
  if (errno != EEXIST) return Error::sys("create");
  TRY(tree_.remove(parent, parent_path, name));
  if (make() != 0) return Error::sys("create");
  return ok();
}

Status Unpacker::set_node_meta(archive_entry* e, const EntryMeta& m, const DirRef& parent, const char* name,
                               bool is_symlink) {
  if (opts_.preserve_owner && fchownat(parent->get(), name, m.uid, m.gid, AT_SYMLINK_NOFOLLOW) != 0)
    return Error::sys("chown");
  // fchmodat follows symlinks, so it is only used on the fifo or device node just made here
  // (symlink modes mean nothing on Linux).
  if (!is_symlink && fchmodat(parent->get(), name, m.mode, 0) != 0) return Error::sys("chmod");
  // No fd can be opened on a symlink or a node for fsetxattr without side effects (opening a
  // fifo blocks); its path through the parent's fd reaches exactly it.
  if (archive_entry_xattr_count(e) > 0)
    TRY(set_xattrs(e, -1, "/proc/self/fd/" + std::to_string(parent->get()) + "/" + name));
  if (m.has_mtime && utimensat(parent->get(), name, m.times, AT_SYMLINK_NOFOLLOW) != 0)
    return Error::sys("set times");
  return ok();
}

Status Unpacker::set_xattrs(archive_entry* e, int fd, const std::string& proc_path) {
  if (archive_entry_xattr_reset(e) == 0) return ok();
  const char* name = nullptr;
  const void* value = nullptr;
  size_t size = 0;
  while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
    std::string_view n = name;
    // Overlay's own xattrs (opaque, redirect, metacopy, origin) are made here from whiteouts;
    // taken from a layer they would let it redirect lookups into other layers.
    if (n.starts_with("trusted.overlay.") || n.starts_with("user.overlay.")) continue;
    int r =
        fd >= 0 ? fsetxattr(fd, name, value, size, 0) : lsetxattr(proc_path.c_str(), name, value, size, 0);
    if (r == 0) continue;
    // Unprivileged, trusted.* and security.* are not ours to set (podman rootless skips them too).
    if (!opts_.preserve_owner && (errno == EPERM || errno == EACCES || errno == ENOTSUP)) continue;
    return Error::sys("set xattr " + std::string(n));
  }
  return ok();
}

}  // namespace

Result<UnpackStats> unpack_layer(int fd, const std::string& dest, const UnpackOptions& opts) {
  ASSIGN_OR_RETURN(LayerTree tree, LayerTree::open(dest));
  ArchivePtr a(archive_read_new());
  if (!a) return Error("read layer archive: out of memory");
  // Only what a layer may be (image-spec layer.md): tar, plain, gzip or zstd.
  if (archive_read_support_filter_gzip(a.get()) < ARCHIVE_WARN ||
      archive_read_support_filter_zstd(a.get()) < ARCHIVE_WARN ||
      archive_read_support_format_tar(a.get()) != ARCHIVE_OK)
    return archive_error(a.get(), "read layer archive");
  if (archive_read_open_fd(a.get(), fd, kReadBlock) != ARCHIVE_OK)
    return archive_error(a.get(), "read layer archive");

  Unpacker u(a.get(), std::move(tree), opts);
  archive_entry* e = nullptr;
  while (true) {
    int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return archive_error(a.get(), "read layer archive");
    ++u.stats().entries;
    const char* raw = archive_entry_pathname(e);
    std::string shown = raw != nullptr ? raw : "";
    auto path = detail::clean_entry_path(shown);
    if (!path.ok()) return std::move(path).error().context("entry " + quoted(shown));
    TRY_CTX(u.entry(e, *path), "entry " + quoted(shown));
  }
  TRY_CTX(u.finish(), "set directory metadata");
  return u.stats();
}

}  // namespace strata::image
