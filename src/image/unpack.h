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
// Extended attributes from the layer (pax SCHILY.xattr.*) are applied only where the image
// format gives them a meaning inside a container (see xattr_allowed() in unpack.cc for why each):
//   user.*                       application data (but user.overlay.*, overlay's own)
//   security.capability          file capabilities, the one xattr docker and containerd record
//                                in the layers they build; bounded by the container's bounding
//                                set, and not gained at all under no_new_privs
//   system.posix_acl_access, system.posix_acl_default   POSIX ACLs, part of the permissions
// Everything else is dropped and counted in `xattrs_dropped`: trusted.* (overlay's
// trusted.overlay.* would redirect lookups into other layers; the namespace belongs to host
// software), other security.* (LSM labels such as security.selinux, which podman drops too, IMA
// and EVM data: the host's policy decides those, not an image) and other system.* names.
// Opaque directories are marked by the unpacker itself from .wh..wh..opq, never taken from a
// layer's xattrs.
//
// Unprivileged use (preserve_owner = false, the default for a non-root euid): ownership is not
// applied, device nodes are skipped (counted in `skipped`, as podman rootless does), allowed
// xattrs the user may not set (security.capability) are skipped, and opaque directories are
// marked with user.overlay.opaque, so the layers must be mounted with `-o userxattr` (Linux >=
// 5.11). Whiteouts stay 0:0 character devices, which Linux >= 5.8 lets any user create.
//
// The layer's diff_id (image-spec config.md: the sha256 of the uncompressed tar stream) is
// computed while unpacking, from the very bytes the tar reader parses, padding after the end of
// the archive included; with expected_diff_id set, a different one fails the unpack. One
// compression at most: a gzip inside a gzip is refused (docker, containerd and podman undo one).
//
// Errors name the entry (`entry "../x": path escapes the layer directory`; names are shown
// escaped and cut, shown_name.h) or the archive (`read layer archive: truncated gzip input`);
// the caller adds which layer it was and removes dest, since a failed unpack leaves a partial
// tree.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"

namespace strata::image {

struct UnpackOptions {
  bool allow_devices = (geteuid() == 0);   // create char/block devices; else skip them
  bool preserve_owner = (geteuid() == 0);  // chown to the tar's numeric uid/gid
  bool overlay_whiteouts = true;           // .wh. entries -> overlay form; false keeps them as files
  bool userxattr = (geteuid() != 0);       // opaque marker as user.overlay.opaque
  std::string expected_diff_id;            // "sha256:<hex>"; empty: computed, not checked
};

struct UnpackStats {
  uint64_t entries = 0;         // tar entries read
  uint64_t bytes = 0;           // file content bytes written
  uint64_t whiteouts = 0;       // whiteouts and opaque markers made
  uint64_t skipped = 0;         // devices (without allow_devices) and aufs ".wh..wh." metadata
  uint64_t xattrs_dropped = 0;  // xattrs outside the allow-list above
  uint64_t tar_bytes = 0;       // the uncompressed stream
  std::string diff_id;          // its sha256, "sha256:<hex>"
};

// Unpacks one layer read from fd (a file or a pipe, positioned at the start) into dest, an
// existing empty directory.
Result<UnpackStats> unpack_layer(int fd, const std::string& dest, const UnpackOptions& opts = {});

// The diff_id of a layer read from fd, without unpacking it (for a layer directory unpacked
// before its diff_id was recorded).
Result<std::string> layer_diff_id(int fd);

// The error for a layer whose content is not what the image config says.
Error diff_id_mismatch(std::string_view actual, std::string_view expected);

}  // namespace strata::image
