// strata export: a tar of a directory tree (a running container's merged rootfs), written
// with libarchive's disk reader so that ownership, modes, xattrs, hard links and special files
// come out as they are on disk.
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "base/fd.h"
#include "base/fs.h"
#include "image/archive.h"
#include "image/archive_tar.h"

namespace strata::image {

namespace {
constexpr size_t kBlock = 1 << 20;
}  // namespace

Status export_tree(const std::string& dir, int out_fd) {
  std::string what = "export " + dir;
  if (!fs::is_dir(dir)) return Error(what + ": not a directory", ENOTDIR);
  tar::ReadPtr disk(archive_read_disk_new());
  if (!disk) return Error(what + ": allocate disk reader", ENOMEM);
  archive_read_disk_set_symlink_physical(disk.get());
  // The container's own mounts (proc, sys, volumes) are not its filesystem.
  archive_read_disk_set_behavior(disk.get(), ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS);
  archive_read_disk_set_standard_lookup(disk.get());
  if (archive_read_disk_open(disk.get(), dir.c_str()) != ARCHIVE_OK)
    return tar::archive_error(disk.get(), what);
  tar::WritePtr out(archive_write_new());
  if (!out) return Error(what + ": allocate archive writer", ENOMEM);
  if (archive_write_set_format_pax_restricted(out.get()) != ARCHIVE_OK ||
      archive_write_open_fd(out.get(), out_fd) != ARCHIVE_OK)
    return tar::archive_error(out.get(), what + ": open output");
  std::vector<char> buf(kBlock);
  for (;;) {
    archive_entry* e = archive_entry_new();
    if (e == nullptr) return Error(what + ": allocate archive entry", ENOMEM);
    std::unique_ptr<archive_entry, void (*)(archive_entry*)> owner(e, archive_entry_free);
    int r = archive_read_next_header2(disk.get(), e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return tar::archive_error(disk.get(), what);
    std::string path = archive_entry_pathname(e);
    if (archive_read_disk_can_descend(disk.get())) archive_read_disk_descend(disk.get());
    // Names relative to the tree, as `podman export` writes them.
    std::string rel = path.size() > dir.size()
                          ? "." + path.substr(dir.back() == '/' ? dir.size() - 1 : dir.size())
                          : std::string(".");
    archive_entry_set_pathname(e, rel.c_str());
    if (const char* hl = archive_entry_hardlink(e)) {
      std::string h = hl;
      if (h.compare(0, dir.size(), dir) == 0)
        archive_entry_set_hardlink(e,
                                   ("." + h.substr(dir.back() == '/' ? dir.size() - 1 : dir.size())).c_str());
    }
    if (archive_write_header(out.get(), e) < ARCHIVE_WARN)
      return tar::archive_error(out.get(), what + ": write entry " + rel);
    if (archive_entry_filetype(e) != AE_IFREG || archive_entry_size(e) == 0 || archive_entry_hardlink(e))
      continue;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return Error::sys(what + ": open " + path);
    int64_t left = archive_entry_size(e);
    while (left > 0) {
      ssize_t n = ::read(fd.get(), buf.data(), std::min<size_t>(buf.size(), static_cast<size_t>(left)));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Error::sys(what + ": read " + path);
      if (n == 0) break;  // shrank while we read: libarchive pads the entry
      if (archive_write_data(out.get(), buf.data(), static_cast<size_t>(n)) < 0)
        return tar::archive_error(out.get(), what + ": write " + rel);
      left -= n;
    }
  }
  if (archive_write_close(out.get()) != ARCHIVE_OK) return tar::archive_error(out.get(), what + ": finish");
  return ok();
}

}  // namespace strata::image
