#include "image/archive_tar.h"

#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <vector>

#include "base/fd.h"
#include "base/fs.h"
#include "image/shown_name.h"

namespace strata::image::tar {

namespace {
constexpr size_t kBlock = 1 << 20;

struct EntryFree {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};
}  // namespace

Error archive_error(archive* a, std::string_view step) {
  const char* msg = archive_error_string(a);
  return Error(std::string(step) + ": " + (msg != nullptr ? msg : "unknown libarchive error"),
               archive_errno(a));
}

Result<std::string> entry_name(std::string_view raw) {
  auto quoted = [&] { return "entry " + shown_name(raw); };
  if (raw.empty()) return Error("empty entry name");
  if (raw.front() == '/') return Error(quoted() + ": absolute path");
  std::string out;
  size_t i = 0;
  while (i <= raw.size()) {
    size_t j = raw.find('/', i);
    if (j == std::string_view::npos) j = raw.size();
    std::string_view part = raw.substr(i, j - i);
    if (part == "..") return Error(quoted() + ": path escapes the archive");
    if (!part.empty() && part != ".") {
      if (!out.empty()) out.push_back('/');
      out.append(part);
    }
    i = j + 1;
  }
  if (out.empty()) return Error(quoted() + ": names no file");
  return out;
}

Result<ReadPtr> open_reader(int fd) {
  ReadPtr a(archive_read_new());
  if (!a) return Error("allocate archive reader", ENOMEM);
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  if (archive_read_open_fd(a.get(), fd, kBlock) != ARCHIVE_OK) return archive_error(a.get(), "open archive");
  return a;
}

Result<Writer> Writer::open(int fd) {
  WritePtr a(archive_write_new());
  if (!a) return Error("allocate archive writer", ENOMEM);
  if (archive_write_set_format_pax_restricted(a.get()) != ARCHIVE_OK ||
      archive_write_add_filter_none(a.get()) != ARCHIVE_OK ||
      archive_write_set_bytes_in_last_block(a.get(), 1) != ARCHIVE_OK ||
      archive_write_open_fd(a.get(), fd) != ARCHIVE_OK)
    return archive_error(a.get(), "open archive for writing");
  return Writer(std::move(a));
}

Status Writer::header(const std::string& name, int64_t size) {
  std::unique_ptr<archive_entry, EntryFree> e(archive_entry_new());
  if (!e) return Error("allocate archive entry", ENOMEM);
  archive_entry_set_pathname(e.get(), name.c_str());
  archive_entry_set_filetype(e.get(), AE_IFREG);
  archive_entry_set_perm(e.get(), 0644);
  archive_entry_set_size(e.get(), size);
  archive_entry_set_mtime(e.get(), 0, 0);
  if (archive_write_header(a_.get(), e.get()) != ARCHIVE_OK)
    return archive_error(a_.get(), "write archive entry " + name);
  return ok();
}

Status Writer::add_bytes(const std::string& name, std::string_view data) {
  TRY(header(name, static_cast<int64_t>(data.size())));
  if (!data.empty() && archive_write_data(a_.get(), data.data(), data.size()) < 0)
    return archive_error(a_.get(), "write archive entry " + name);
  return ok();
}

Status Writer::add_file(const std::string& name, const std::string& path, int64_t size) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::sys("open " + path);
  TRY(header(name, size));
  auto wrong_size = [&] {
    return Error("write archive entry " + name + ": " + path + " is not " + std::to_string(size) + " bytes");
  };
  int64_t done = 0;
  TRY(fs::read_chunks(
      fd.get(), path,
      [&](const char* p, size_t n) -> Status {
        if (done + static_cast<int64_t>(n) > size) return wrong_size();
        if (archive_write_data(a_.get(), p, n) < 0)
          return archive_error(a_.get(), "write archive entry " + name);
        done += static_cast<int64_t>(n);
        return ok();
      },
      kBlock));
  if (done != size) return wrong_size();
  return ok();
}

Status Writer::close() {
  if (archive_write_close(a_.get()) != ARCHIVE_OK) return archive_error(a_.get(), "finish archive");
  return ok();
}

}  // namespace strata::image::tar
