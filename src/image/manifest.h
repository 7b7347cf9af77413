// Image manifests and indexes: OCI image-spec (manifest.md, image-index.md, descriptor.md) and
// Docker's image manifest v2 schema 2 (manifest and manifest list), which have the same shape
// under other media types. Parsing is strict about what strata uses (types, digests, sizes,
// schemaVersion, media types) and ignores fields it does not know, as both specs require.
// Image configs are in image_config.h; platforms and their selection in this header too, since
// a descriptor carries one.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/error.h"

namespace strata::image {

namespace media_type {
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kOciLayer = "application/vnd.oci.image.layer.v1.tar";
inline constexpr std::string_view kOciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr std::string_view kOciLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr std::string_view kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerConfig = "application/vnd.docker.container.image.v1+json";
inline constexpr std::string_view kDockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip";
}  // namespace media_type

// Largest manifest/index body accepted (the limit containers/image uses too); a registry
// client should stop reading past it.
inline constexpr size_t kMaxManifestBytes = 4 << 20;

struct Platform {
  std::string os, architecture, variant, os_version;
  std::vector<std::string> os_features;
  bool operator==(const Platform&) const = default;
};

struct Descriptor {
  std::string media_type, digest;
  int64_t size = 0;
  std::vector<std::string> urls;
  std::map<std::string, std::string> annotations;
  std::optional<Platform> platform;
};

struct Index {
  std::string media_type;  // kOciIndex or kDockerManifestList
  std::vector<Descriptor> manifests;
  std::map<std::string, std::string> annotations;
};

struct Manifest {
  std::string media_type;          // kOciManifest or kDockerManifest
  Descriptor config;               // media type kOciConfig or kDockerConfig
  std::vector<Descriptor> layers;  // each of a layer media type (is_layer_media_type)
  std::map<std::string, std::string> annotations;
};

using AnyManifest = std::variant<Index, Manifest>;

// Parses a manifest or index. `content_type` is what the registry answered (parameters such as
// "; charset=utf-8" are ignored); the body's own mediaType wins when present, and when neither
// says (an OCI manifest may omit it, a registry may answer application/json) the shape decides.
// Docker schema 1, non-distributable layers and artifacts that are not images are refused.
Result<AnyManifest> parse_manifest(std::string_view body, std::string_view content_type = {});

enum class Compression { kNone, kGzip, kZstd };
bool is_layer_media_type(std::string_view media_type);
// The compression of a layer media type; nullopt for a type that is not a layer.
std::optional<Compression> layer_compression(std::string_view media_type);
bool is_index_media_type(std::string_view media_type);
bool is_manifest_media_type(std::string_view media_type);

// The Accept header a registry client sends for manifests (indexes and manifests, OCI first).
std::string_view accept_header();

// The platform this process runs on: os "linux", architecture as GOARCH spells it (amd64,
// arm64, arm, 386, ...), variant for arm (v6, v7, v8).
Platform host_platform();
// "linux/arm64/v8" <-> Platform; parse_platform refuses anything but 2 or 3 non-empty parts.
std::string platform_string(const Platform& p);
Result<Platform> parse_platform(std::string_view s);
// The index entry for `want`: os and architecture must match; the variant must match exactly,
// else an entry that names no variant is taken. Only image manifests are candidates (not nested
// indexes or attestations). The error lists what the index offers.
Result<Descriptor> select_platform(const Index& index, const Platform& want);

}  // namespace strata::image
