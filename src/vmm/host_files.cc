// The opening rules for host files named by API clients and the command line; see host_files.h.
#include "vmm/host_files.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"

namespace strata::vmm {

namespace {

std::string named(std::string_view what, const std::string& path) { return std::string(what) + " " + path; }

// Opens without waiting (O_NONBLOCK: a FIFO with no writer, a device that waits for carrier) and
// without taking a terminal as the controlling one (O_NOCTTY).
Result<UniqueFd> open_nowait(const std::string& path, int flags, mode_t mode, std::string_view what) {
  UniqueFd fd(::open(path.c_str(), flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, mode));
  if (!fd) {
    int err = errno;
    // open(2) of a unix socket is ENXIO, whose text ("No such device or address") misleads.
    struct stat st {};
    if (err == ENXIO && ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode))
      return Error(named(what, path) + ": not a regular file (a socket)");
    return Error::sys("open " + named(what, path), err);
  }
  return fd;
}

Result<mode_t> file_type(int fd, std::string_view what, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Error::sys("stat " + named(what, path));
  return st.st_mode;
}

// Back to blocking mode for a file whose reads and writes never wait on another process (regular
// files, block devices): later code need not expect EAGAIN from it.
Status make_blocking(int fd, std::string_view what, const std::string& path) {
  int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0 || ::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) return Error::sys("fcntl " + named(what, path));
  return ok();
}

}  // namespace

std::string describe_path_type(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "missing";
  return fs::file_type_name(st.st_mode);
}

Result<UniqueFd> open_regular_file(const std::string& path, std::string_view what) {
  ASSIGN_OR_RETURN(UniqueFd fd, open_nowait(path, O_RDONLY, 0, what));
  ASSIGN_OR_RETURN(mode_t mode, file_type(fd.get(), what, path));
  if (!S_ISREG(mode))
    return Error(named(what, path) + ": not a regular file (" + fs::file_type_name(mode) + ")");
  TRY(make_blocking(fd.get(), what, path));
  return fd;
}

Result<UniqueFd> open_disk_image(const std::string& path, bool read_only, std::string_view what) {
  ASSIGN_OR_RETURN(UniqueFd fd, open_nowait(path, read_only ? O_RDONLY : O_RDWR, 0, what));
  ASSIGN_OR_RETURN(mode_t mode, file_type(fd.get(), what, path));
  if (!S_ISREG(mode) && !S_ISBLK(mode))
    return Error(named(what, path) + ": not a regular file or a block device (" + fs::file_type_name(mode) +
                 ")");
  TRY(make_blocking(fd.get(), what, path));
  return fd;
}

Result<UniqueFd> open_output(const std::string& path, std::string_view what) {
  // O_RDWR as Firecracker's open_file_nonblock: for a FIFO, opening write-only and non-blocking
  // fails (ENXIO) until a reader is there, and blocking waits for one. O_APPEND: a regular file
  // is added to, never overwritten from its start.
  ASSIGN_OR_RETURN(UniqueFd fd, open_nowait(path, O_RDWR | O_CREAT | O_APPEND, 0644, what));
  ASSIGN_OR_RETURN(mode_t mode, file_type(fd.get(), what, path));
  if (!S_ISREG(mode) && !S_ISFIFO(mode) && !S_ISCHR(mode))
    return Error(named(what, path) + ": not a regular file, a FIFO or a character device (" +
                 fs::file_type_name(mode) + ")");
  return fd;
}

Status write_line(int fd, std::string_view line, std::string_view what) {
  while (!line.empty()) {
    ssize_t n = ::write(fd, line.data(), line.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN)
        return Error::sys("write to " + std::string(what) + ": full (nobody reads it); dropped");
      return Error::sys("write to " + std::string(what));
    }
    line.remove_prefix(static_cast<size_t>(n));
  }
  return ok();
}

NewFile::NewFile(std::string target, std::string temp, std::string what, UniqueFd fd)
    : target_(std::move(target)), temp_(std::move(temp)), what_(std::move(what)), fd_(std::move(fd)) {}

NewFile::NewFile(NewFile&& o) noexcept
    : target_(std::move(o.target_)),
      temp_(std::move(o.temp_)),
      what_(std::move(o.what_)),
      fd_(std::move(o.fd_)),
      done_(std::exchange(o.done_, true)) {}

NewFile::~NewFile() {
  if (!done_ && !temp_.empty()) ::unlink(temp_.c_str());
}

Result<NewFile> NewFile::create(const std::string& target, std::string_view what, mode_t mode) {
  // lstat: rename(2) replaces the directory entry itself, so a symlink there is what would be
  // replaced; a device node, FIFO, socket or directory is refused (renaming over /dev/null would
  // replace the host's /dev/null with a snapshot).
  struct stat st {};
  if (::lstat(target.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
      return Error(named(what, target) + ": exists and is not a regular file (" +
                   fs::file_type_name(st.st_mode) + ")");
  } else if (errno != ENOENT) {
    return Error::sys("stat " + named(what, target));
  }
  std::string temp = target + ".XXXXXX";
  UniqueFd fd(::mkostemp(temp.data(), O_CLOEXEC));  // O_EXCL: a new file, never one planted there
  if (!fd) return Error::sys("create " + named(what, target + ".XXXXXX"));
  NewFile f(target, temp, std::string(what), std::move(fd));
  if (::fchmod(f.fd(), mode) != 0) return Error::sys("chmod " + named(what, temp));
  return f;
}

Status NewFile::write(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd_.get(), data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::sys("write " + named(what_, temp_));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return ok();
}

Status NewFile::commit() {
  if (::fsync(fd_.get()) != 0) return Error::sys("fsync " + named(what_, temp_));
  fd_.reset();
  if (::rename(temp_.c_str(), target_.c_str()) != 0) return Error::sys("rename " + temp_ + " to " + target_);
  done_ = true;
  return ok();
}

}  // namespace strata::vmm
