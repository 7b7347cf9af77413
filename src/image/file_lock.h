// FileLock: an exclusive flock(2) on a lock file that exists only while it is held or waited
// for, internal to src/image (the per-blob ingest locks of the content store, the per-layer
// unpack locks of ImageService). A lock file left after every use would be one file per blob or
// layer ever handled.
//
// The protocol that makes removing the file safe: only a holder unlinks it, and it does so
// before it releases the lock. A waiter that wakes up holding a file that is no longer the one
// at the path (unlinked, or already replaced by a newer one) closes it and starts over, so two
// holders can never each lock a different inode of the same path and both believe they are
// alone. Anything that wants to delete a lock file (prune) must hold it in the same way.
#pragma once

#include <string>

#include "base/error.h"
#include "base/fd.h"

namespace strata::image::detail {

class FileLock {
 public:
  FileLock() = default;
  // Creates the file when missing and blocks until it is held (EINTR is retried).
  static Result<FileLock> acquire(std::string path);
  // Without blocking: an empty FileLock when another process or fd holds it, or when the file
  // does not exist (nobody holds or waits for it).
  static Result<FileLock> try_existing(std::string path);

  FileLock(FileLock&& o) noexcept;
  FileLock& operator=(FileLock&& o) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock() { release(); }

  bool held() const { return fd_.valid(); }
  // Unlinks the file and releases the lock (what the destructor does).
  void release();

 private:
  FileLock(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  static Result<FileLock> lock(std::string path, bool create, bool block);

  std::string path_;
  UniqueFd fd_;
};

}  // namespace strata::image::detail
