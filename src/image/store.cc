// ContentStore: layout, blob reads and the resumable BlobWriter. Image records, reference
// counts and pruning are in store_images.cc.
#include "image/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "base/fs.h"

namespace strata::image {

namespace {

Status write_all(int fd, const void* p, size_t n, const std::string& path) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Error::sys("write " + path);
    }
    c += w;
    n -= static_cast<size_t>(w);
  }
  return ok();
}

Status fsync_dir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Error::sys("open " + dir);
  if (::fsync(fd.get()) != 0) return Error::sys("fsync " + dir);
  return ok();
}

// flock that retries on EINTR.
int flock_retry(int fd, int op) {
  int r;
  do {
    r = ::flock(fd, op);
  } while (r != 0 && errno == EINTR);
  return r;
}

}  // namespace

Result<ContentStore> ContentStore::open(const std::string& root) {
  if (root.empty()) return Error("open content store: empty root path");
  std::string abs = fs::absolute(root);
  for (const char* sub : {"blobs/sha256", "ingest", "images"}) {
    TRY_CTX(fs::mkdir_p(fs::join(abs, sub), 0700), "open content store " + abs);
  }
  std::string lock = fs::join(abs, "lock");
  UniqueFd fd(::open(lock.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return Error::sys("open content store " + abs + ": create " + lock);
  return ContentStore(abs);
}

Result<UniqueFd> ContentStore::lock_store(bool exclusive) const {
  std::string path = fs::join(root_, "lock");
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return Error::sys("open store lock " + path);
  if (flock_retry(fd.get(), exclusive ? LOCK_EX : LOCK_SH) != 0) return Error::sys("flock " + path);
  return fd;
}

Result<ContentStore::Lease> ContentStore::lease() const {
  ASSIGN_OR_RETURN(UniqueFd fd, lock_store(false));
  return Lease(std::move(fd));
}

bool ContentStore::has(std::string_view digest) const {
  if (!is_sha256_digest(digest)) return false;
  struct stat st;
  return ::stat(blob_path(digest).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string ContentStore::blob_path(std::string_view digest) const {
  return root_ + "/blobs/sha256/" + std::string(digest_hex(digest));
}

Result<std::string> ContentStore::read_blob(std::string_view digest, size_t max_size) const {
  std::string what = "read blob " + std::string(digest);
  TRY_CTX(validate_digest(digest), what);
  std::string path = blob_path(digest);
  // blobs/ is ours (0700), but a store is a directory like any other: a FIFO or device there
  // must not hang or feed the reader.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return Error::sys(what + ": open " + path);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return Error::sys(what + ": fstat " + path);
  if (!S_ISREG(st.st_mode)) return Error(what + ": " + path + " is " + fs::file_type_name(st.st_mode));
  if (static_cast<uint64_t>(st.st_size) > max_size)
    return Error(what + ": " + std::to_string(st.st_size) + " bytes, more than the limit of " +
                 std::to_string(max_size));
  std::string out;
  out.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::read(fd.get(), out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::sys(what + ": read " + path);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  std::string actual = sha256_digest(out);
  if (actual != digest) return Error(what + ": content on disk has digest " + actual + " (corrupt store)");
  return out;
}

Result<std::string> ContentStore::put_blob(std::string_view data, std::string_view expected_digest) {
  std::string actual = sha256_digest(data);
  if (!expected_digest.empty() && actual != expected_digest) {
    TRY_CTX(validate_digest(expected_digest), "store blob");
    return Error("store blob " + std::string(expected_digest) + ": content has digest " + actual);
  }
  ASSIGN_OR_RETURN(BlobWriter w, writer(actual, static_cast<int64_t>(data.size())));
  if (w.already_present()) return actual;
  // A partial file from an interrupted pull of the same blob is replaced, not appended to.
  if (w.offset() > 0) TRY(w.restart());
  TRY(w.write(data.data(), data.size()));
  TRY(w.commit());
  return actual;
}

Result<ContentStore::BlobWriter> ContentStore::writer(std::string_view digest, int64_t expected_size) {
  std::string what = "ingest blob " + std::string(digest);
  TRY_CTX(validate_digest(digest), what);
  BlobWriter w;
  w.root_ = root_;
  w.digest_ = std::string(digest);
  w.expected_size_ = expected_size;
  w.blob_path_ = blob_path(digest);
  std::string hex(digest_hex(digest));
  w.ingest_path_ = root_ + "/ingest/" + hex;
  ASSIGN_OR_RETURN(w.store_lock_, lock_store(false));
  if (has(digest)) {
    w.present_ = true;
    return w;
  }
  auto blob_lock = detail::FileLock::acquire(w.ingest_path_ + ".lock");
  if (!blob_lock) return std::move(blob_lock).error().context(what);
  w.blob_lock_ = std::move(*blob_lock);
  // Another writer may have committed the blob while this one waited for the lock.
  if (has(digest)) {
    w.present_ = true;
    w.blob_lock_.release();
    return w;
  }
  w.data_ = UniqueFd(::open(w.ingest_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!w.data_) return Error::sys(what + ": open " + w.ingest_path_);
  struct stat st;
  if (::fstat(w.data_.get(), &st) != 0) return Error::sys(what + ": fstat " + w.ingest_path_);
  uint64_t existing = static_cast<uint64_t>(st.st_size);
  if (expected_size >= 0 && existing > static_cast<uint64_t>(expected_size)) existing = 0;
  if (existing == 0) {
    if (::ftruncate(w.data_.get(), 0) != 0) return Error::sys(what + ": truncate " + w.ingest_path_);
  } else {
    // Resuming: the hash must cover the bytes already there.
    char buf[1 << 16];
    uint64_t done = 0;
    while (done < existing) {
      ssize_t n = ::pread(w.data_.get(), buf, sizeof buf, static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Error::sys(what + ": read " + w.ingest_path_);
      if (n == 0) break;
      w.hash_.update(buf, static_cast<size_t>(n));
      done += static_cast<uint64_t>(n);
    }
    existing = done;
  }
  if (::lseek(w.data_.get(), static_cast<off_t>(existing), SEEK_SET) < 0)
    return Error::sys(what + ": seek " + w.ingest_path_);
  w.offset_ = existing;
  return w;
}

ContentStore::BlobWriter::BlobWriter(BlobWriter&& o) noexcept = default;
ContentStore::BlobWriter& ContentStore::BlobWriter::operator=(BlobWriter&& o) noexcept = default;
ContentStore::BlobWriter::~BlobWriter() {
  // An empty partial file has nothing to resume: a failed request leaves no trace. The lock
  // file goes with blob_lock_ (after this body, while data_ is already closed).
  if (data_ && !done_ && offset_ == 0) ::unlink(ingest_path_.c_str());
}

Status ContentStore::BlobWriter::fail_and_discard(Error e) {
  if (data_) {
    ::unlink(ingest_path_.c_str());
    data_.reset();
  }
  done_ = true;
  return e;
}

Status ContentStore::BlobWriter::write(const void* p, size_t n) {
  if (present_) return ok();
  if (done_ || !data_) return Error("ingest blob " + digest_ + ": write after commit or failure");
  if (expected_size_ >= 0 && offset_ + n > static_cast<uint64_t>(expected_size_))
    return fail_and_discard(Error("ingest blob " + digest_ + ": more data than the expected " +
                                  std::to_string(expected_size_) + " bytes"));
  Status st = write_all(data_.get(), p, n, ingest_path_);
  if (!st.ok()) return std::move(st).error().context("ingest blob " + digest_);
  hash_.update(p, n);
  offset_ += n;
  return ok();
}

Status ContentStore::BlobWriter::restart() {
  if (present_) return ok();
  if (done_ || !data_) return Error("ingest blob " + digest_ + ": restart after commit or failure");
  if (::ftruncate(data_.get(), 0) != 0 || ::lseek(data_.get(), 0, SEEK_SET) < 0)
    return Error::sys("ingest blob " + digest_ + ": truncate " + ingest_path_);
  hash_ = Sha256();
  offset_ = 0;
  return ok();
}

Status ContentStore::BlobWriter::commit() {
  if (present_) return ok();
  std::string what = "commit blob " + digest_;
  if (done_ || !data_) return Error(what + ": already committed or failed");
  if (expected_size_ >= 0 && offset_ != static_cast<uint64_t>(expected_size_))
    return fail_and_discard(Error(what + ": got " + std::to_string(offset_) + " bytes, expected " +
                                  std::to_string(expected_size_)));
  std::string actual = hash_.digest();
  if (actual != digest_)
    return fail_and_discard(Error(what + ": digest mismatch: expected " + digest_ + ", got " + actual));
  if (::fchmod(data_.get(), 0444) != 0) return Error::sys(what + ": chmod " + ingest_path_);
  if (::fsync(data_.get()) != 0) return Error::sys(what + ": fsync " + ingest_path_);
  if (::rename(ingest_path_.c_str(), blob_path_.c_str()) != 0)
    return Error::sys(what + ": rename " + ingest_path_ + " to " + blob_path_);
  data_.reset();
  done_ = true;
  blob_lock_.release();  // a waiting writer now finds the blob present
  TRY_CTX(fsync_dir(root_ + "/blobs/sha256"), what);
  return ok();
}

}  // namespace strata::image
