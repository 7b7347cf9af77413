// Image archives: `docker save` tarballs (docker-archive), OCI image layouts as a tar
// (oci-archive) or a directory (oci-dir), plain rootfs tarballs (`podman import`) and container
// filesystem exports. Archives are untrusted input: entry names with ".." or a leading '/' are
// refused, metadata files are bounded and parsed by the strict manifest/config parsers, every
// blob is verified against its digest (docker-archive layers against the config's diff_ids),
// and a load that fails at any point leaves no image record and no blob it added.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "image/images.h"

namespace strata::image {

enum class ArchiveFormat { kDockerArchive, kOciArchive, kOciDir };

// "docker-archive", "oci-archive", "oci-dir" (podman's names).
Result<ArchiveFormat> parse_archive_format(std::string_view name);

// Writes the images (names or ids, each resolved with ImageService::get) as a tar archive of
// `format` (kDockerArchive or kOciArchive) to out_fd. Blobs are copied byte for byte, so an
// oci-archive keeps every digest and a docker-archive keeps the config (the image id).
Status save_images(ImageService& svc, const std::vector<std::string>& images, ArchiveFormat format,
                   int out_fd);
// Writes an OCI image layout into `dir`, which must not exist (created through a temporary
// sibling and renamed, so a failed save leaves nothing).
Status save_oci_dir(ImageService& svc, const std::vector<std::string>& images, const std::string& dir);

struct LoadedImage {
  std::string name;  // the name it was stored under
  std::string id;    // config digest
};
// Reads a docker-archive or oci-archive (tar, optionally gzip/zstd/xz compressed) from fd and
// stores its images; names come from RepoTags / org.opencontainers.image.ref.name, unnamed ones
// are stored as localhost/loaded:<12 hex of the id>.
Result<std::vector<LoadedImage>> load_archive(ImageService& svc, int fd);
// The same for an OCI image layout directory.
Result<std::vector<LoadedImage>> load_oci_dir(ImageService& svc, const std::string& dir);

// Stores a rootfs tarball (tar, optionally compressed) read from fd as a one-layer image named
// `name` (localhost/imported:<12 hex of the id> when empty); the config has os/arch of this
// host, the diff_id and Cmd ["sh"].
Result<LoadedImage> import_rootfs(ImageService& svc, int fd, const std::string& name);

// Writes a tar of the tree at `dir` (not following symlinks, not crossing mount points) to out_fd.
Status export_tree(const std::string& dir, int out_fd);

// Writes a tar of the merged view of layer directories in overlayfs form (top first: a
// container's upper directory, then its image's layers), whiteouts applied. The view is a
// read-only overlay mounted in the private mount namespace of a child process (root only), so
// nothing is mounted on the host, whatever happens to us meanwhile.
Status export_layers(const std::vector<std::string>& top_first, int out_fd);

}  // namespace strata::image
