// libFuzzer target for the layer unpacker (STYLE.md section 12): the input bytes are a layer
// (tar, gzip or zstd) unpacked into a fresh directory beside a canary file. Whatever the bytes,
// unpack_layer() must return (an Error that says why, or stats), and nothing may appear or
// change outside the layer directory; the directory is removed after each input.
// Seeds: unpack_fuzz_corpus/ (small layers with links, whiteouts and escape attempts).
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/fs.h"
#include "image/unpack.h"

namespace {

// tmpfs when there is one: the fuzzer creates and removes a tree per input.
std::string scratch_base() { return strata::fs::is_dir("/dev/shm") ? "/dev/shm" : "/tmp"; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string base = scratch_base();
  std::string tmpl = base + "/strata-unpack-fuzz.XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) __builtin_trap();
  const std::string top = tmpl;
  const std::string dest = top + "/layer";
  if (mkdir(dest.c_str(), 0755) != 0) __builtin_trap();
  if (!strata::fs::write_file_atomic(top + "/canary", "canary").ok()) __builtin_trap();

  strata::UniqueFd in(memfd_create("layer", MFD_CLOEXEC));
  if (!in.valid()) __builtin_trap();
  size_t off = 0;
  while (off < size) {
    ssize_t n = write(in.get(), data + off, size - off);
    if (n <= 0) __builtin_trap();
    off += static_cast<size_t>(n);
  }
  if (lseek(in.get(), 0, SEEK_SET) != 0) __builtin_trap();

  strata::image::UnpackOptions opts;
  opts.allow_devices = false;  // no device nodes on the host from random bytes
  auto r = strata::image::unpack_layer(in.get(), dest, opts);
  if (!r.ok() && r.error().message().empty()) __builtin_trap();

  // Nothing beside the layer directory appeared or changed.
  std::vector<std::string> names = strata::fs::list_dir(top);
  if (names.size() != 2) __builtin_trap();
  for (const auto& n : names)
    if (n != "layer" && n != "canary") __builtin_trap();
  auto canary = strata::fs::read_file(top + "/canary");
  if (!canary.ok() || *canary != "canary") __builtin_trap();
  struct stat st {};
  if (lstat(dest.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) __builtin_trap();
  // The root entry may have made the layer directory unreadable; removal needs it back.
  chmod(dest.c_str(), 0755);
  if (!strata::fs::remove_tree(top).ok()) __builtin_trap();
  return 0;
}
