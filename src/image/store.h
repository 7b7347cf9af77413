// ContentStore: the sha256-addressed blob store and the image records that reference blobs.
//
// On-disk layout under the root (default /var/lib/strata):
//   lock                  store-wide flock (see "Locking protocol")
//   blobs/sha256/<hex>    verified blobs, read-only (0444); only ever created by rename(2)
//   ingest/<hex>          partial download of one blob (resumable)
//   ingest/<hex>.lock     per-blob flock, held by the one writer of that blob; exists only while
//                         a writer holds or waits for it (file_lock.h)
//   images/<name>.json    image records; <name> is the image name percent-encoded (or "@" and the
//                         sha256 of the name when that is too long for a file name)
//
// Invariants: a file in blobs/ always has the content its name says (it is verified before the
// rename that creates it, so a killed pull leaves only ingest/ files); an image record only lists
// blobs that are present.
//
// Locking protocol (flock(2); works across threads and processes because every holder opens
// the lock file itself):
//   - `lock` shared: writer() (held by the BlobWriter until it is destroyed), put_image(),
//     and lease() (a pull holds one from its first has()/writer() until its put_image(), so that
//     the blobs it found or fetched cannot be pruned before its record references them).
//   - `lock` exclusive: remove_image() and prune(), the only operations that delete blobs or
//     ingest files. They wait for every shared holder.
//   - `ingest/<hex>.lock` exclusive: one writer per blob; a second writer of the same blob waits,
//     then finds the blob present. The writer removes the lock file when it is done (committed,
//     failed or abandoned), before releasing it; a waiter that then holds a removed file starts
//     over on the current one (detail::FileLock), so removing it never lets two writers in.
//     prune() removes the ones a killed process left.
// A thread holding a lease or a BlobWriter must not call remove_image()/prune(): it would wait for
// itself.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/digest.h"
#include "base/error.h"
#include "base/fd.h"
#include "image/file_lock.h"

namespace strata::image {

class ContentStore {
 public:
  static constexpr const char* kDefaultRoot = "/var/lib/strata";

  // Opens (creating the layout when missing) the store at `root`.
  static Result<ContentStore> open(const std::string& root);

  const std::string& root() const { return root_; }

  // True when the blob is present (false for a malformed digest).
  bool has(std::string_view digest) const;
  // Where a blob with this (valid) digest lives, present or not.
  std::string blob_path(std::string_view digest) const;
  // Reads a small blob (manifest, config) whole; refuses one larger than max_size and re-verifies
  // the digest, so a blob altered on disk is reported, never returned.
  Result<std::string> read_blob(std::string_view digest, size_t max_size) const;
  // Stores `data`; returns its digest. With expected_digest, a mismatch stores nothing.
  Result<std::string> put_blob(std::string_view data, std::string_view expected_digest = {});

  // A shared hold on the store: while alive, remove_image() and prune() wait.
  class Lease {
   public:
    Lease() = default;
    explicit Lease(UniqueFd fd) : fd_(std::move(fd)) {}

   private:
    UniqueFd fd_;
  };
  Result<Lease> lease() const;

  // Streaming, resumable ingest of one blob. Move-only; the destructor without commit() keeps
  // the partial data for a later resume and releases the locks.
  class BlobWriter {
   public:
    BlobWriter(BlobWriter&&) noexcept;
    BlobWriter& operator=(BlobWriter&&) noexcept;
    BlobWriter(const BlobWriter&) = delete;
    BlobWriter& operator=(const BlobWriter&) = delete;
    ~BlobWriter();

    // The blob was (or became, while this writer waited for the lock) present: nothing to write.
    bool already_present() const { return present_; }
    // Bytes of partial data present now: where a download resumes (Range: bytes=offset-).
    uint64_t offset() const { return offset_; }
    // Appends data. Writing past the expected size fails and discards the partial data.
    Status write(const void* p, size_t n);
    // Discards the partial data (the server did not honour a Range request).
    Status restart();
    // Verifies size and digest, fsyncs and renames the blob into blobs/. A mismatch deletes the
    // partial data and returns an error naming both digests.
    Status commit();

   private:
    friend class ContentStore;
    BlobWriter() = default;
    Status fail_and_discard(Error e);

    std::string root_;
    std::string digest_;
    std::string ingest_path_;
    std::string blob_path_;
    int64_t expected_size_ = -1;
    uint64_t offset_ = 0;
    bool present_ = false;
    bool done_ = false;
    UniqueFd store_lock_;
    detail::FileLock blob_lock_;
    UniqueFd data_;
    Sha256 hash_;
  };
  // expected_size < 0: unknown. Blocks while another writer of the same blob holds its lock.
  Result<BlobWriter> writer(std::string_view digest, int64_t expected_size);

  // An image: name -> manifest digest, plus every blob it references (manifest or index,
  // config, layers). A blob's reference count is the number of records listing it.
  struct ImageRecord {
    std::string name;
    std::string digest;
    std::vector<std::string> blobs;
    std::string created;  // RFC 3339 UTC; put_image fills it when empty
  };
  // Writes the record atomically, replacing one of the same name (whose blobs lose a reference;
  // those left unreferenced are deleted by the next prune()). Every blob must be present.
  Status put_image(const ImageRecord& record);
  Result<ImageRecord> get_image(const std::string& name) const;
  // Sorted by name; unreadable records are skipped with a warning.
  std::vector<ImageRecord> list_images() const;
  // Removes the record and deletes the blobs no other record references; returns their digests
  // (the caller removes the unpacked layers of those).
  Result<std::vector<std::string>> remove_image(const std::string& name);
  // Deletes blobs no record references and ingest files no writer holds; returns the digests of
  // the deleted blobs.
  Result<std::vector<std::string>> prune();
  // Deletes those of `digests` that no record references (what a failed pull had stored);
  // returns the deleted ones. Takes the exclusive lock, like prune().
  Result<std::vector<std::string>> remove_unreferenced(const std::vector<std::string>& digests);

  // The file name a record of `name` is stored under (exposed for tests).
  static std::string encode_name(std::string_view name);

 private:
  explicit ContentStore(std::string root) : root_(std::move(root)) {}
  Result<UniqueFd> lock_store(bool exclusive) const;
  Result<std::vector<ImageRecord>> read_records(bool strict) const;
  std::string image_path(std::string_view name) const;

  std::string root_;
};

}  // namespace strata::image
