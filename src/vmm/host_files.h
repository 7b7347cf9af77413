// Host files named by strata-vmm's API clients and command line: kernels, initrds, drive images,
// snapshot files, and the log, metrics and serial outputs. Whoever names them may name anything:
// a FIFO (opening one to read waits for a writer, reading one never ends), /dev/zero (never
// ends), a terminal (opening it can make it the process's controlling terminal), a directory or
// a socket. Every open of such a path in src/vmm goes through these, which keep the rules in one
// place (issue 10, item 8):
//   - inputs (kernel, initrd, snapshot state and memory) are regular files; drive images regular
//     files or block devices. Opened O_NONBLOCK | O_NOCTTY, so that the open itself cannot wait,
//     and checked with fstat before a byte is read; whole-file reads are capped by the caller.
//   - outputs that are appended to (logger, metrics, serial) are regular files, FIFOs or character
//     devices, opened as Firecracker opens them (O_RDWR | O_NONBLOCK, created if missing): a FIFO
//     then needs no reader to open, and a full one drops what is written instead of blocking the
//     writer. O_RDWR also keeps a FIFO open when its reader goes (no EPIPE, no SIGPIPE).
//   - outputs written whole (snapshots) are written to a new file beside the target and renamed
//     over it; the target must be absent or a regular file (never a device node to replace).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"
#include "base/fd.h"

namespace strata::vmm {

// An input file, opened read-only (blocking mode restored once it is known to be a regular
// file). `what` names it in errors: "kernel /k: not a regular file (a FIFO)".
Result<UniqueFd> open_regular_file(const std::string& path, std::string_view what);

// A drive image: a regular file or a block device, read-only or read-write.
Result<UniqueFd> open_disk_image(const std::string& path, bool read_only, std::string_view what);

// An append-only output (PUT /logger log_path, PUT /metrics metrics_path, PUT /serial
// serial_out_path, --log-path, --metrics-path, --console FILE). The fd stays non-blocking: its
// writer must treat EAGAIN as "dropped" (see write_line).
Result<UniqueFd> open_output(const std::string& path, std::string_view what);

// Writes one line to an output from open_output() without ever waiting. A full FIFO or a
// stopped terminal gives EAGAIN: the line is dropped (Firecracker counts such lines as missed).
Status write_line(int fd, std::string_view line, std::string_view what);

// A file written whole and then put in place at `target` by rename(2) (snapshot outputs): made
// with a unique name beside the target (O_EXCL, so nothing planted there is opened), removed on
// destruction unless commit() renamed it. create() refuses a target that exists and is not a
// regular file (a symlink is replaced, not followed).
class NewFile {
 public:
  static Result<NewFile> create(const std::string& target, std::string_view what, mode_t mode = 0600);
  NewFile(NewFile&& o) noexcept;
  NewFile& operator=(NewFile&&) = delete;
  NewFile(const NewFile&) = delete;
  ~NewFile();

  int fd() const { return fd_.get(); }
  const std::string& temp_path() const { return temp_; }
  // Writes all of data at the current offset.
  Status write(std::string_view data);
  // fsync, close, rename over the target.
  Status commit();

 private:
  NewFile(std::string target, std::string temp, std::string what, UniqueFd fd);
  std::string target_, temp_, what_;
  UniqueFd fd_;
  bool done_ = false;
};

// "a FIFO", "a directory", ... for a path's current type; "missing" when it does not exist.
std::string describe_path_type(const std::string& path);

}  // namespace strata::vmm
