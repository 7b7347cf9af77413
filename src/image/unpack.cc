// Layer unpacking (unpack.h): libarchive reads and decompresses, LayerTree (unpack_tree.h)
// confines every write to the layer directory, and this file turns each tar entry into the
// file, directory, link, node or whiteout it describes. libarchive's own disk writer is not
// used: it resolves paths itself, and the guarantee here rests on openat2 beneath one fd.
//
// Two libarchive readers in a row: LayerStream undoes the compression (a "raw" reader with the
// gzip and zstd filters) and hands the tar stream on block by block, hashing each block as it
// passes; a tar-only reader parses those blocks. So the diff_id is the digest of exactly what
// was unpacked, computed in the same pass and with no copy of the data.
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

#include "base/digest.h"
#include "base/log.h"
#include "image/shown_name.h"
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

std::string quoted(std::string_view s) { return shown_name(s); }

// The uncompressed tar stream of a layer, hashed as the tar reader pulls it (see the top).
class LayerStream {
 public:
  static Result<std::unique_ptr<LayerStream>> open(int fd);
  // Makes `tar` (a new reader with its formats set) read this stream.
  Status attach(archive* tar);
  // Hashes the rest of the stream: what follows the tar's end-of-archive blocks.
  Status drain();
  uint64_t bytes() const { return bytes_; }
  std::string digest() { return hash_.digest(); }

 private:
  explicit LayerStream(ArchivePtr raw) : raw_(std::move(raw)) {}
  // One block of the stream into *buf (valid until the next call), hashed; 0 at the end, -1
  // with the error set on `reader` when decompression failed.
  la_ssize_t next(archive* reader, const void** buf);
  static la_ssize_t read_cb(archive* a, void* self, const void** buf) {
    return static_cast<LayerStream*>(self)->next(a, buf);
  }

  ArchivePtr raw_;
  Sha256 hash_;
  uint64_t bytes_ = 0;
};

Result<std::unique_ptr<LayerStream>> LayerStream::open(int fd) {
  ArchivePtr raw(archive_read_new());
  if (!raw) return Error("read layer archive: out of memory");
  // Only what a layer may be (image-spec layer.md): tar, plain, gzip or zstd.
  if (archive_read_support_filter_gzip(raw.get()) < ARCHIVE_WARN ||
      archive_read_support_filter_zstd(raw.get()) < ARCHIVE_WARN ||
      archive_read_support_format_raw(raw.get()) != ARCHIVE_OK)
    return archive_error(raw.get(), "read layer archive");
  if (archive_read_open_fd(raw.get(), fd, kReadBlock) != ARCHIVE_OK)
    return archive_error(raw.get(), "read layer archive");
  archive_entry* e = nullptr;
  if (archive_read_next_header(raw.get(), &e) != ARCHIVE_OK)
    return archive_error(raw.get(), "read layer archive");
  // The pipeline is the fd reader plus one entry per compression undone. libarchive would undo
  // any number; a diff_id is the digest after undoing the one the media type names.
  if (int n = archive_filter_count(raw.get()); n > 2) {
    std::string names;
    for (int i = n - 2; i >= 0; --i) {
      const char* f = archive_filter_name(raw.get(), i);
      names += std::string(names.empty() ? "" : " inside ") + (f != nullptr ? f : "?");
    }
    return Error("read layer archive: compressed more than once (" + names + ")");
  }
  return std::unique_ptr<LayerStream>(new LayerStream(std::move(raw)));
}

la_ssize_t LayerStream::next(archive* reader, const void** buf) {
  size_t size = 0;
  la_int64_t offset = 0;
  int r = archive_read_data_block(raw_.get(), buf, &size, &offset);
  if (r == ARCHIVE_EOF) return 0;
  if (r < ARCHIVE_WARN || offset != static_cast<la_int64_t>(bytes_)) {
    const char* msg = archive_error_string(raw_.get());
    int err = archive_errno(raw_.get());
    if (reader != nullptr)
      archive_set_error(reader, err > 0 ? err : EIO, "%s", msg != nullptr ? msg : "decompression failed");
    return -1;
  }
  hash_.update(*buf, size);
  bytes_ += size;
  return static_cast<la_ssize_t>(size);
}

Status LayerStream::attach(archive* tar) {
  if (archive_read_open(tar, this, nullptr, &LayerStream::read_cb, nullptr) != ARCHIVE_OK)
    return archive_error(tar, "read layer archive");
  return ok();
}

Status LayerStream::drain() {
  const void* buf = nullptr;
  for (;;) {
    la_ssize_t n = next(nullptr, &buf);
    if (n == 0) return ok();
    if (n < 0) return archive_error(raw_.get(), "read layer archive");
  }
}

// unpack.h has the list and what is dropped. security.capability is the one security.* name
// kept: docker and containerd write it into every layer they build from a setcap'd file, images
// such as iputils' ping rely on it, and what it grants is capped by the container's bounding
// set (and nothing under no_new_privs). LSM labels are the host's to assign (podman drops
// security.selinux; a label from an image could name a host domain's type), and trusted.* is
// read by host software (overlayfs first of all), never by the container.
bool xattr_allowed(std::string_view n) {
  if (n.starts_with("user.")) return !n.starts_with("user.overlay.");
  return n == "security.capability" || n == "system.posix_acl_access" || n == "system.posix_acl_default";
}

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
    if (!xattr_allowed(n)) {
      log::get("image")->debug("unpack: dropping xattr {}", shown_name(n));
      ++stats_.xattrs_dropped;
      continue;
    }
    int r =
        fd >= 0 ? fsetxattr(fd, name, value, size, 0) : lsetxattr(proc_path.c_str(), name, value, size, 0);
    if (r == 0) continue;
    // Unprivileged, security.capability is not ours to set (podman rootless skips it too).
    if (!opts_.preserve_owner && (errno == EPERM || errno == EACCES || errno == ENOTSUP)) continue;
    return Error::sys("set xattr " + quoted(n));
  }
  return ok();
}

}  // namespace

Result<UnpackStats> unpack_layer(int fd, const std::string& dest, const UnpackOptions& opts) {
  ASSIGN_OR_RETURN(LayerTree tree, LayerTree::open(dest));
  ASSIGN_OR_RETURN(std::unique_ptr<LayerStream> stream, LayerStream::open(fd));
  ArchivePtr a(archive_read_new());
  if (!a) return Error("read layer archive: out of memory");
  if (archive_read_support_format_tar(a.get()) != ARCHIVE_OK)
    return archive_error(a.get(), "read layer archive");
  TRY(stream->attach(a.get()));

  Unpacker u(a.get(), std::move(tree), opts);
  archive_entry* e = nullptr;
  while (true) {
    int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return archive_error(a.get(), "read layer archive");
    ++u.stats().entries;
    const char* raw = archive_entry_pathname(e);
    std::string_view shown = raw != nullptr ? raw : "";
    auto path = detail::clean_entry_path(shown);
    if (!path.ok()) return std::move(path).error().context("entry " + quoted(shown));
    TRY_CTX(u.entry(e, *path), "entry " + quoted(shown));
  }
  TRY(stream->drain());
  UnpackStats& st = u.stats();
  st.tar_bytes = stream->bytes();
  st.diff_id = stream->digest();
  if (st.tar_bytes == 0)
    return Error("read layer archive: empty (not even the end-of-archive blocks of a tar)");
  if (!opts.expected_diff_id.empty() && st.diff_id != opts.expected_diff_id)
    return diff_id_mismatch(st.diff_id, opts.expected_diff_id);
  TRY_CTX(u.finish(), "set directory metadata");
  return u.stats();
}

Result<std::string> layer_diff_id(int fd) {
  ASSIGN_OR_RETURN(std::unique_ptr<LayerStream> stream, LayerStream::open(fd));
  TRY(stream->drain());
  return stream->digest();
}

Error diff_id_mismatch(std::string_view actual, std::string_view expected) {
  return Error("diff_id mismatch: the uncompressed layer has digest " + std::string(actual) +
               ", the image config's rootfs.diff_ids says " + std::string(expected));
}

}  // namespace strata::image
