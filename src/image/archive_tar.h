// libarchive plumbing shared by the image archive code (archive_*.cc): owners for archive
// handles, a tar writer of in-memory and on-disk files, and the entry-name check every archive
// reader applies.
#pragma once

#include <archive.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/error.h"

namespace strata::image::tar {

struct ReadFree {
  void operator()(archive* a) const { archive_read_free(a); }
};
struct WriteFree {
  void operator()(archive* a) const { archive_write_free(a); }
};
using ReadPtr = std::unique_ptr<archive, ReadFree>;
using WritePtr = std::unique_ptr<archive, WriteFree>;

Error archive_error(archive* a, std::string_view step);

// The cleaned relative name of an archive entry ("./a//b" -> "a/b"); refuses absolute names,
// ".." components and names that clean to nothing.
Result<std::string> entry_name(std::string_view raw);

// A reader of any tar flavour behind any compression libarchive knows, from fd.
Result<ReadPtr> open_reader(int fd);

// Writes a pax tar to fd: regular files 0644, mtime 0, owned by root (what docker and podman
// archives carry for their metadata and blobs).
class Writer {
 public:
  static Result<Writer> open(int fd);
  Status add_bytes(const std::string& name, std::string_view data);
  // Copies exactly `size` bytes of the file at `path` (fails when it is not that size).
  Status add_file(const std::string& name, const std::string& path, int64_t size);
  Status close();

 private:
  explicit Writer(WritePtr a) : a_(std::move(a)) {}
  Status header(const std::string& name, int64_t size);
  WritePtr a_;
};

}  // namespace strata::image::tar
