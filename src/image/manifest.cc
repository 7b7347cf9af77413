// Manifest and index parsing (manifest.h). JSON is read through src/oci's json_reader so that
// every error names its field ("layers[2].digest: expected a string, got 3"); unknown fields
// are ignored rather than refused (image-spec: "implementations MUST ignore unknown properties"),
// so ObjectReader::finish() is never called here.
#include "image/manifest.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <nlohmann/json.hpp>

#include "base/digest.h"
#include "image/shown_name.h"
#include "oci/json_reader.h"

namespace strata::image {
namespace {

namespace jr = oci::json_reader;
using jr::Json;
using jr::ObjectReader;

constexpr std::string_view kDockerSchema1 = "application/vnd.docker.distribution.manifest.v1+json";
constexpr std::string_view kDockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws";

constexpr std::array<std::string_view, 4> kForeignLayers = {
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
};

// A Content-Type without parameters, lowercased; "" for the generic answers that say nothing
// about which manifest this is.
std::string normalize_content_type(std::string_view ct) {
  ct = ct.substr(0, ct.find(';'));
  while (!ct.empty() && (ct.front() == ' ' || ct.front() == '\t')) ct.remove_prefix(1);
  while (!ct.empty() && (ct.back() == ' ' || ct.back() == '\t')) ct.remove_suffix(1);
  std::string out(ct);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  if (out == "application/json" || out == "text/plain" || out == "application/octet-stream") return "";
  return out;
}

Status parse_platform_object(const Json& v, const std::string& path, Platform& out) {
  ASSIGN_OR_RETURN(auto r, ObjectReader::open(v, path));
  TRY(r.read_required("os", out.os));
  TRY(r.read_required("architecture", out.architecture));
  TRY(r.read("variant", out.variant));
  TRY(r.read("os.version", out.os_version));
  TRY(r.read("os.features", out.os_features));
  return ok();
}

Result<Descriptor> parse_descriptor(const Json& v, const std::string& path) {
  ASSIGN_OR_RETURN(auto r, ObjectReader::open(v, path));
  Descriptor d;
  TRY(r.read_required("mediaType", d.media_type));
  TRY(r.read_required("digest", d.digest));
  TRY_CTX(validate_digest(d.digest), r.path_of("digest"));
  TRY(r.read_required("size", d.size));
  if (d.size < 0) return Error(r.path_of("size") + ": " + std::to_string(d.size) + " is negative");
  TRY(r.read("urls", d.urls));
  TRY(r.read("annotations", d.annotations));
  if (const Json* p = r.find("platform")) {
    Platform platform;
    TRY(parse_platform_object(*p, r.path_of("platform"), platform));
    d.platform = std::move(platform);
  }
  return d;
}

Result<Index> parse_index(ObjectReader& r, std::string mt) {
  Index index;
  index.media_type = std::move(mt);
  ASSIGN_OR_RETURN(const Json* list, r.require("manifests"));
  TRY(jr::check_array(*list, "manifests"));
  index.manifests.reserve(list->size());
  for (size_t i = 0; i < list->size(); ++i) {
    ASSIGN_OR_RETURN(Descriptor d, parse_descriptor((*list)[i], jr::element_path("manifests", i)));
    index.manifests.push_back(std::move(d));
  }
  TRY(r.read("annotations", index.annotations));
  return index;
}

Result<Manifest> parse_image_manifest(ObjectReader& r, std::string mt) {
  Manifest m;
  m.media_type = std::move(mt);
  ASSIGN_OR_RETURN(const Json* config, r.require("config"));
  ASSIGN_OR_RETURN(m.config, parse_descriptor(*config, "config"));
  if (m.config.media_type != media_type::kOciConfig && m.config.media_type != media_type::kDockerConfig)
    return Error("config.mediaType: " + shown_name(m.config.media_type) +
                 " is not an image config (an artifact rather than a container image?)");
  ASSIGN_OR_RETURN(const Json* layers, r.require("layers"));
  TRY(jr::check_array(*layers, "layers"));
  m.layers.reserve(layers->size());
  for (size_t i = 0; i < layers->size(); ++i) {
    std::string path = jr::element_path("layers", i);
    ASSIGN_OR_RETURN(Descriptor d, parse_descriptor((*layers)[i], path));
    if (std::find(kForeignLayers.begin(), kForeignLayers.end(), d.media_type) != kForeignLayers.end())
      return Error(path + ".mediaType: non-distributable (foreign) layer type " + shown_name(d.media_type) +
                   " is not supported");
    if (!is_layer_media_type(d.media_type))
      return Error(path + ".mediaType: " + shown_name(d.media_type) + " is not a layer media type");
    m.layers.push_back(std::move(d));
  }
  TRY(r.read("annotations", m.annotations));
  return m;
}

Result<AnyManifest> parse_any(std::string_view body, std::string_view content_type) {
  if (body.size() > kMaxManifestBytes)
    return Error(std::to_string(body.size()) + " bytes is over the limit of " +
                 std::to_string(kMaxManifestBytes));
  ASSIGN_OR_RETURN(Json j, jr::parse(body, "JSON"));
  TRY(jr::check_object(j, "manifest"));
  ASSIGN_OR_RETURN(auto r, ObjectReader::open(j, ""));
  std::string mt;
  TRY(r.read("mediaType", mt));
  if (mt.empty()) mt = normalize_content_type(content_type);
  int64_t schema = 0;
  bool has_schema = r.find("schemaVersion") != nullptr;
  if (has_schema) TRY(r.read("schemaVersion", schema));
  if (mt == kDockerSchema1 || mt == kDockerSchema1Signed || (has_schema && schema == 1))
    return Error(
        "Docker schema 1 manifests are not supported (deprecated since 2017); re-push the image "
        "with a current client");
  if (!has_schema) return Error("schemaVersion: required");
  if (schema != 2) return Error("schemaVersion: " + std::to_string(schema) + " is not supported (want 2)");
  if (mt.empty()) {
    // An OCI manifest or index may omit mediaType; its shape says which it is.
    if (r.find("manifests") != nullptr)
      mt = std::string(media_type::kOciIndex);
    else if (r.find("config") != nullptr || r.find("layers") != nullptr)
      mt = std::string(media_type::kOciManifest);
    else
      return Error("no mediaType, and neither manifests nor config and layers");
  }
  if (is_index_media_type(mt)) {
    ASSIGN_OR_RETURN(Index index, parse_index(r, std::move(mt)));
    return AnyManifest(std::move(index));
  }
  if (is_manifest_media_type(mt)) {
    ASSIGN_OR_RETURN(Manifest m, parse_image_manifest(r, std::move(mt)));
    return AnyManifest(std::move(m));
  }
  return Error("mediaType: unsupported manifest media type " + shown_name(mt));
}

}  // namespace

Result<AnyManifest> parse_manifest(std::string_view body, std::string_view content_type) {
  auto r = parse_any(body, content_type);
  if (!r.ok()) return std::move(r).error().context("parse manifest");
  return r;
}

bool is_layer_media_type(std::string_view media_type) { return layer_compression(media_type).has_value(); }

std::optional<Compression> layer_compression(std::string_view mt) {
  if (mt == media_type::kOciLayer) return Compression::kNone;
  if (mt == media_type::kOciLayerGzip || mt == media_type::kDockerLayerGzip) return Compression::kGzip;
  if (mt == media_type::kOciLayerZstd) return Compression::kZstd;
  return std::nullopt;
}

bool is_index_media_type(std::string_view mt) {
  return mt == media_type::kOciIndex || mt == media_type::kDockerManifestList;
}

bool is_manifest_media_type(std::string_view mt) {
  return mt == media_type::kOciManifest || mt == media_type::kDockerManifest;
}

std::string_view accept_header() {
  static const std::string kAccept =
      std::string(media_type::kOciIndex) + ", " + std::string(media_type::kOciManifest) + ", " +
      std::string(media_type::kDockerManifestList) + ", " + std::string(media_type::kDockerManifest);
  return kAccept;
}

}  // namespace strata::image
