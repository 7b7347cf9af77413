#include "image/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <utility>

namespace strata::image::detail {

Result<FileLock> FileLock::lock(std::string path, bool create, bool block) {
  for (;;) {
    int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (create ? O_CREAT : 0);
    UniqueFd fd(::open(path.c_str(), flags, 0600));
    if (!fd) {
      if (!create && errno == ENOENT) return FileLock();
      return Error::sys("open lock " + path);
    }
    int r;
    do {
      r = ::flock(fd.get(), LOCK_EX | (block ? 0 : LOCK_NB));
    } while (r != 0 && errno == EINTR);
    if (r != 0) {
      if (!block && errno == EWOULDBLOCK) return FileLock();
      return Error::sys("flock " + path);
    }
    // Still the file at the path? Its previous holder may have unlinked it while we waited
    // (and someone may already have made a new one): then this lock protects nothing.
    struct stat held {};
    struct stat now {};
    if (::fstat(fd.get(), &held) != 0) return Error::sys("fstat lock " + path);
    if (::stat(path.c_str(), &now) == 0) {
      if (now.st_dev == held.st_dev && now.st_ino == held.st_ino)
        return FileLock(std::move(path), std::move(fd));
    } else if (errno != ENOENT) {
      return Error::sys("stat lock " + path);
    }
    if (!create) return FileLock();
  }
}

Result<FileLock> FileLock::acquire(std::string path) { return lock(std::move(path), true, true); }

Result<FileLock> FileLock::try_existing(std::string path) { return lock(std::move(path), false, false); }

FileLock::FileLock(FileLock&& o) noexcept : path_(std::move(o.path_)), fd_(std::move(o.fd_)) {}

FileLock& FileLock::operator=(FileLock&& o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_);
    fd_ = std::move(o.fd_);
  }
  return *this;
}

void FileLock::release() {
  if (!fd_) return;
  // While held, the path is this file: only holders unlink it (file_lock.h).
  ::unlink(path_.c_str());
  fd_.reset();
}

}  // namespace strata::image::detail
