// Layer unpacking: one layer tarball (tar, tar+gzip or tar+zstd, detected from the bytes) into
// its own directory, in the form overlayfs reads as a lower layer (image-spec layer.md,
// "Whiteouts"; kernel Documentation/filesystems/overlayfs.rst):
//   a/.wh.b         -> a/b as a character device 0:0 (an overlay whiteout)
//   a/.wh..wh..opq  -> xattr trusted.overlay.opaque=y on a (user.overlay.opaque with userxattr)
// A whiteout and a same-named entry of the same layer mean "deleted below, present here": the
// entry wins, and a directory that replaces a whiteout becomes opaque, which is what the pair
// means to a reader applying the layers in order.
//
// Nothing is written outside dest: names with ".." or a leading '/' are refused; every entry is
// created relative to a directory fd that was opened with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS), so a symlink planted by an earlier entry is never followed; hardlinks
// may only point at earlier non-directory entries of the same layer. Symlinks are stored as
// they are (any target: that is data) and never followed.
//
// Unprivileged use (preserve_owner = false, the default for a non-root euid): ownership is not
// applied, device nodes are skipped (counted in `skipped`, as podman rootless does), xattrs the
// user may not set (trusted.*, security.*) are skipped, and opaque directories are marked with
// user.overlay.opaque, so the layers must be mounted with `-o userxattr` (Linux >= 5.11).
// Whiteouts stay 0:0 character devices, which Linux >= 5.8 lets any user create.
//
// Errors name the entry (`entry "../x": path escapes the layer directory`) or the archive
// (`read layer archive: truncated gzip input`); the caller adds which layer it was and removes
// dest, since a failed unpack leaves a partial tree.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <string>

#include "base/error.h"

namespace strata::image {

struct UnpackOptions {
  bool allow_devices = (geteuid() == 0);   // create char/block devices; else skip them
  bool preserve_owner = (geteuid() == 0);  // chown to the tar's numeric uid/gid
  bool overlay_whiteouts = true;           // .wh. entries -> overlay form; false keeps them as files
  bool userxattr = (geteuid() != 0);       // opaque marker as user.overlay.opaque
};

struct UnpackStats {
  uint64_t entries = 0;    // tar entries read
  uint64_t bytes = 0;      // file content bytes written
  uint64_t whiteouts = 0;  // whiteouts and opaque markers made
  uint64_t skipped = 0;    // devices (without allow_devices) and aufs ".wh..wh." metadata
};

// Unpacks one layer read from fd (a file or a pipe, positioned at the start) into dest, an
// existing empty directory.
Result<UnpackStats> unpack_layer(int fd, const std::string& dest, const UnpackOptions& opts = {});

}  // namespace strata::image
