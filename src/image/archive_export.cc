// strata export and strata image export: a tar of a directory tree (a running container's
// merged rootfs, or a merged view of layers), written with libarchive's disk reader so that
// ownership, modes, xattrs, hard links and special files come out as they are on disk.
#include <archive_entry.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "base/fd.h"
#include "base/fs.h"
#include "image/archive.h"
#include "image/overlay.h"
#include "image/archive_tar.h"
#include "image/shown_name.h"

namespace strata::image {

namespace {
constexpr size_t kBlock = 1 << 20;

// A file of the tree for reading: beneath root_fd, no symlink followed on the way, not blocking.
// Mount points are crossed (unlike detail::open_beneath): a file the container had bind-mounted
// (its /etc/hosts) is exported as before; the walk itself does not descend into mounts.
int open_in_tree(int root_fd, const char* rel) {
  open_how how{};
  how.flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(::syscall(SYS_openat2, root_fd, rel, &how, sizeof how));
}
}  // namespace

Status export_tree(const std::string& dir, int out_fd) {
  std::string what = "export " + dir;
  if (!fs::is_dir(dir)) return Error(what + ": not a directory", ENOTDIR);
  UniqueFd root(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) return Error::sys(what + ": open");
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
      return tar::archive_error(out.get(), what + ": write entry " + shown_name(rel));
    if (archive_entry_filetype(e) != AE_IFREG || archive_entry_size(e) == 0 || archive_entry_hardlink(e))
      continue;
    // A running container can swap a directory on this path for a symlink (to "/") between
    // the walk and this open: resolved beneath the tree's fd, following no symlink, the open
    // fails instead of reading a host file into the archive. Non-blocking and checked, since
    // the regular file seen by the walk may be a FIFO by now.
    UniqueFd fd(open_in_tree(root.get(), rel.size() > 2 ? rel.c_str() + 2 : "."));
    if (!fd) return Error::sys(what + ": open " + shown_name(rel));
    struct stat sb {};
    if (::fstat(fd.get(), &sb) != 0) return Error::sys(what + ": stat " + shown_name(rel));
    if (!S_ISREG(sb.st_mode)) return Error(what + ": " + shown_name(rel) + " is no longer a regular file");
    int64_t left = archive_entry_size(e);
    while (left > 0) {
      ssize_t n = ::read(fd.get(), buf.data(), std::min<size_t>(buf.size(), static_cast<size_t>(left)));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Error::sys(what + ": read " + shown_name(rel));
      if (n == 0) break;  // shrank while we read: libarchive pads the entry
      if (archive_write_data(out.get(), buf.data(), static_cast<size_t>(n)) < 0)
        return tar::archive_error(out.get(), what + ": write " + shown_name(rel));
      left -= n;
    }
  }
  if (archive_write_close(out.get()) != ARCHIVE_OK) return tar::archive_error(out.get(), what + ": finish");
  return ok();
}

Status export_layers(const std::vector<std::string>& top_first, int out_fd) {
  if (top_first.empty()) return Error("export: no layers");
  for (const auto& d : top_first)
    if (!fs::is_dir(d)) return Error("export: layer " + d + " is missing", ENOENT);
  // One layer is its own merged view (whiteouts mean nothing in the bottom layer); an overlay
  // without an upper directory needs two lower ones.
  if (top_first.size() == 1) return export_tree(top_first[0], out_fd);
  char tmpl[] = "/tmp/strata-export.XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return Error::sys("export: mkdtemp");
  std::string mnt = tmpl;
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) {
    ::rmdir(mnt.c_str());
    return Error::sys("export: pipe");
  }
  UniqueFd err_r(pipefd[0]), err_w(pipefd[1]);
  pid_t pid = ::fork();
  if (pid < 0) {
    ::rmdir(mnt.c_str());
    return Error::sys("export: fork");
  }
  if (pid == 0) {
    // The child's mount namespace dies with it, and the overlay with it. Its error, if any,
    // goes to the parent as text.
    err_r.reset();
    auto report = [&](const Error& e) {
      std::string m = e.to_string();
      (void)!::write(err_w.get(), m.data(), m.size());
      ::_exit(1);
    };
    if (::unshare(CLONE_NEWNS) != 0) report(Error::sys("export: unshare the mount namespace"));
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
      report(Error::sys("export: make the mounts private"));
    // (No upper directory: the overlay is read-only.)
    if (Status m = mount_overlay(top_first, "", "", mnt); !m.ok()) report(m.error().context("export"));
    Status st = export_tree(mnt, out_fd);
    if (!st.ok()) report(st.error());
    ::_exit(0);
  }
  err_w.reset();
  std::string msg;
  char buf[512];
  ssize_t n;
  while ((n = ::read(err_r.get(), buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) msg.append(buf, static_cast<size_t>(n));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  ::rmdir(mnt.c_str());
  if (!msg.empty()) return Error(msg);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return Error("export: the exporting process died");
  return ok();
}

}  // namespace strata::image
