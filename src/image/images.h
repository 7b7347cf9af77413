// ImageService: what the CLI and the sandbox layer ask of images. Pull (manifest -> platform ->
// config -> layers fetched in parallel and unpacked as each arrives), local lookup, push, tags,
// removal. Layers are unpacked once per layer digest under <root>/layers/sha256/<hex>/ and
// shared by every image and container using them (a container's root is an overlay of them).
// Every path that brings an image in (pull, load, import) ends in ensure_unpacked(), which
// checks each layer against the config's rootfs.diff_ids; a mismatch stores nothing.
#pragma once

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "image/image_config.h"
#include "image/manifest.h"
#include "image/reference.h"
#include "image/registry.h"
#include "image/store.h"

namespace strata::image {

// Progress of a pull or push, for the CLI's bars or lines.
struct ProgressEvent {
  enum Kind { kResolved, kLayerStart, kLayerProgress, kLayerDone, kLayerCached, kUnpacked, kDone } kind;
  std::string digest;  // the blob (empty for kResolved/kDone)
  uint64_t done = 0, total = 0;
  std::string message;  // kResolved: the manifest digest; kDone: the image id
};
using ProgressSink = std::function<void(const ProgressEvent&)>;

struct PullOptions {
  RegistryOptions registry;
  Platform platform = host_platform();
  int parallel = 4;  // layers fetched at once
  ProgressSink progress;
};

struct LocalImage {
  std::string name;    // canonical reference ("docker.io/library/busybox:latest") or empty
  std::string digest;  // the manifest's (the index's when pulled through one is `index_digest`)
  std::string index_digest;
  std::string id;  // the config digest, as docker and podman name an image
  Manifest manifest;
  ImageConfig config;
  std::vector<std::string> layer_dirs;  // unpacked, bottom first
  std::string created;                  // when it was stored
  int64_t size = 0;                     // compressed bytes of config and layers
};

class ImageService {
 public:
  static Result<ImageService> open(const std::string& root);

  // Pulls `ref` ("busybox", "127.0.0.1:5000/team/app:1", "...@sha256:..") and stores it under
  // its canonical name. A pull interrupted at any point is finished or redone by the next one.
  Result<LocalImage> pull(const std::string& ref, const PullOptions& opts);
  // A local image by name (normalized like a reference), id, or unique id prefix; layers that
  // are missing on disk are unpacked again from their blobs.
  Result<LocalImage> get(const std::string& name_or_id);
  std::vector<LocalImage> list();
  // Adds a name for an existing image.
  Status tag(const std::string& source, const std::string& target);
  // Removes the name (or every name of an id); blobs and unpacked layers no image references
  // any more are deleted, except the layer directories in `in_use` (the lower layers of
  // containers, which outlive their image as with docker's rmi -f). Returns the names removed.
  Result<std::vector<std::string>> remove(const std::string& name_or_id,
                                          const std::set<std::string>& in_use = {});
  // Deletes unreferenced blobs, layers (but those in `in_use`) and half-finished downloads and
  // unpacks (not one still running).
  Result<std::vector<std::string>> prune(const std::set<std::string>& in_use = {});
  // Pushes a local image to `dest` (defaults to its own name): blobs the registry has are
  // skipped, then the manifest, byte for byte (so the digest is the same).
  Status push(const std::string& name, const std::string& dest, const RegistryOptions& opts,
              const ProgressSink& progress);

  // Stores an image from blobs already in the content store (import/load paths).
  Result<LocalImage> store_image(const std::string& name, const std::string& manifest_digest,
                                 const std::string& index_digest = {});

  ContentStore& content() { return store_; }
  std::string layer_dir(const std::string& layer_digest) const;
  // Removes the unpacked layers of these blobs (with their recorded diff_ids), except the
  // directories in `in_use`; waits for an unpack of one of them to end, or with wait = false
  // skips it.
  void remove_layers(const std::vector<std::string>& blob_digests, const std::set<std::string>& in_use,
                     bool wait = true);

 private:
  ImageService(ContentStore store, std::string root) : store_(std::move(store)), root_(std::move(root)) {}
  Result<LocalImage> pull_impl(const std::string& ref, const PullOptions& opts,
                               std::vector<std::string>& added);
  Result<LocalImage> load(const ContentStore::ImageRecord& rec);
  // Unpacks the layer blob once, checking that it decompresses to `diff_id` (the image
  // config's); concurrent callers wait for the first one (a per-layer lock). The diff_id found
  // is kept beside the directory (<dir>.diff_id), so an image that names an unpacked blob with
  // another diff_id is refused too.
  Status ensure_unpacked(const Descriptor& layer, const std::string& diff_id);
  std::string diff_id_path(const std::string& layer_digest) const;

  ContentStore store_;
  std::string root_;
};

// Normalizes what a user typed into the name images are stored under.
Result<std::string> canonical_name(const std::string& ref);

}  // namespace strata::image
