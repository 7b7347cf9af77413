#include "image/images.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "base/cleanup.h"
#include "base/digest.h"
#include "base/fs.h"
#include "base/log.h"
#include "image/file_lock.h"
#include "image/unpack.h"

namespace strata::image {

namespace {

// A layer's lock without waiting: nullopt while an unpack or a removal of the layer holds it.
// No lock file means nobody does (an empty FileLock then).
std::optional<detail::FileLock> lock_if_idle(const std::string& path) {
  auto lock = detail::FileLock::try_existing(path);
  if (!lock || (!lock->held() && fs::exists(path))) return std::nullopt;
  return std::move(*lock);
}

std::string random_suffix() {
  uint64_t r = 0;
  while (::getrandom(&r, sizeof r, 0) != static_cast<ssize_t>(sizeof r)) {
  }
  return std::to_string(r);
}

}  // namespace

Result<std::string> canonical_name(const std::string& ref) {
  ASSIGN_OR_RETURN(Reference r, parse_reference(ref));
  return r.str();
}

Result<ImageService> ImageService::open(const std::string& root) {
  ASSIGN_OR_RETURN(ContentStore store, ContentStore::open(root));
  TRY_CTX(fs::mkdir_p(root + "/layers/sha256", 0700), "open image store " + root);
  TRY_CTX(fs::mkdir_p(root + "/layers/tmp", 0700), "open image store " + root);
  return ImageService(std::move(store), root);
}

std::string ImageService::layer_dir(const std::string& layer_digest) const {
  return root_ + "/layers/sha256/" + std::string(digest_hex(layer_digest));
}

std::string ImageService::diff_id_path(const std::string& layer_digest) const {
  return layer_dir(layer_digest) + ".diff_id";
}

Status ImageService::ensure_unpacked(const Descriptor& layer, const std::string& diff_id) {
  std::string final_dir = layer_dir(layer.digest);
  std::string id_path = diff_id_path(layer.digest);
  // What the blob is known to decompress to: recorded when it was unpacked (and verified).
  auto known_diff_id = [&] {
    auto text = fs::read_file(id_path, 128);
    return text.ok() && is_sha256_digest(*text) ? *text : std::string();
  };
  if (fs::is_dir(final_dir) && known_diff_id() == diff_id) return ok();
  // One unpacker per layer: a concurrent pull of an image sharing it waits here, then finds
  // the directory.
  ASSIGN_OR_RETURN(detail::FileLock lock, detail::FileLock::acquire(final_dir + ".lock"));
  if (fs::is_dir(final_dir)) {
    // The layer is there, unpacked for another image. The blob's content is that image's too,
    // so only its diff_id is left to compare: an image naming the right blob with a wrong
    // diff_id is refused whether or not the blob was unpacked before (containerd keys its
    // snapshots by diff_ids, so it unpacks again and fails the same way).
    std::string known = known_diff_id();
    if (known.empty()) {
      // Unpacked before diff_ids were recorded: hash the blob once.
      std::string blob = store_.blob_path(layer.digest);
      UniqueFd fd(::open(blob.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
      if (!fd) return Error::sys("verify layer " + layer.digest + ": open " + blob);
      auto id = layer_diff_id(fd.get());
      if (!id) return std::move(id).error().context("verify layer " + layer.digest);
      known = *id;
      TRY_CTX(fs::write_file_atomic(id_path, known, 0600), "verify layer " + layer.digest);
    }
    if (known != diff_id) return diff_id_mismatch(known, diff_id).context("layer " + layer.digest);
    return ok();
  }
  // Unpacked aside and renamed into place: a killed unpack leaves only a tmp/ directory (removed
  // by prune), never a half-filled layer that a later container would use. The diff_id is
  // checked by the unpack itself, before anything is renamed.
  std::string tmp = root_ + "/layers/tmp/" + std::string(digest_hex(layer.digest)) + "." + random_suffix();
  if (::mkdir(tmp.c_str(), 0755) != 0) return Error::sys("mkdir " + tmp);
  Cleanup remove_tmp([&] { (void)fs::remove_tree(tmp); });
  std::string blob = store_.blob_path(layer.digest);
  UniqueFd fd(::open(blob.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!fd) return Error::sys("open layer blob " + blob);
  UnpackOptions opts;
  opts.expected_diff_id = diff_id;
  auto stats = unpack_layer(fd.get(), tmp, opts);
  if (!stats) return std::move(stats).error().context("unpack layer " + layer.digest);
  // Recorded before the directory appears: a directory is never there without it.
  TRY_CTX(fs::write_file_atomic(id_path, stats->diff_id, 0600), "unpack layer " + layer.digest);
  if (::rename(tmp.c_str(), final_dir.c_str()) != 0)
    return Error::sys("rename unpacked layer into " + final_dir);
  remove_tmp.cancel();
  log::get("image")->debug("unpacked layer {}: {} entries, {} bytes, diff_id {}", layer.digest,
                           stats->entries, stats->bytes, stats->diff_id);
  if (stats->xattrs_dropped > 0)
    log::get("image")->info("layer {}: dropped {} extended attributes outside the allow-list (unpack.h)",
                            layer.digest, stats->xattrs_dropped);
  return ok();
}

Result<LocalImage> ImageService::pull(const std::string& ref, const PullOptions& opts) {
  std::vector<std::string> added;
  auto img = pull_impl(ref, opts, added);
  if (!img && !added.empty()) {
    // A failed pull stores nothing: the blobs it added that no image references go, with
    // their unpacked layers (partial downloads stay in ingest/ for a resume).
    auto gone = store_.remove_unreferenced(added);
    if (gone) remove_layers(*gone, {});
  }
  return img;
}

Result<LocalImage> ImageService::pull_impl(const std::string& ref, const PullOptions& opts,
                                           std::vector<std::string>& added) {
  ASSIGN_OR_RETURN(Reference r, parse_reference(ref));
  std::string what = "pull " + r.str();
  std::mutex progress_mu;
  auto report = [&](ProgressEvent e) {
    if (!opts.progress) return;
    std::lock_guard<std::mutex> g(progress_mu);
    opts.progress(e);
  };
  RegistryClient client(r.domain, opts.registry);
  // Held until the record is written, so a concurrent prune cannot take blobs we rely on.
  ASSIGN_OR_RETURN(ContentStore::Lease lease, store_.lease());

  auto fetched = client.get_manifest(r.path, r.digest.empty() ? r.tag : r.digest, accept_header());
  if (!fetched) return std::move(fetched).error().context(what);
  FetchedManifest top = std::move(*fetched);
  auto parsed = parse_manifest(top.body, top.media_type);
  if (!parsed) return std::move(parsed).error().context(what + ": manifest " + top.digest);
  std::vector<std::string> blobs;
  std::string index_digest;
  Manifest manifest;
  FetchedManifest mf;
  if (auto* index = std::get_if<Index>(&*parsed)) {
    auto desc = select_platform(*index, opts.platform);
    if (!desc) return std::move(desc).error().context(what);
    auto got = client.get_manifest(r.path, desc->digest, accept_header());
    if (!got) return std::move(got).error().context(what);
    if (got->digest != desc->digest) {
      return Error(what + ": manifest " + desc->digest + " arrived with digest " + got->digest);
    }
    auto inner = parse_manifest(got->body, got->media_type);
    if (!inner) return std::move(inner).error().context(what + ": manifest " + desc->digest);
    if (!std::holds_alternative<Manifest>(*inner))
      return Error(what + ": index " + top.digest + " points at another index");
    manifest = std::get<Manifest>(*inner);
    index_digest = top.digest;
    if (!store_.has(top.digest)) added.push_back(top.digest);
    TRY_CTX(store_.put_blob(top.body, top.digest), what);
    blobs.push_back(top.digest);
    mf = std::move(*got);
  } else {
    manifest = std::get<Manifest>(*parsed);
    mf = std::move(top);
  }
  if (!store_.has(mf.digest)) added.push_back(mf.digest);
  TRY_CTX(store_.put_blob(mf.body, mf.digest), what);
  blobs.push_back(mf.digest);
  report({ProgressEvent::kResolved, "", 0, 0, mf.digest});

  // The size is the registry's word; the config is read whole, so one larger than that is
  // refused before a byte is fetched, not after the disk has filled.
  if (manifest.config.size > static_cast<int64_t>(kMaxConfigBytes))
    return Error(what + ": config " + manifest.config.digest + " is " + std::to_string(manifest.config.size) +
                 " bytes, over the limit of " + std::to_string(kMaxConfigBytes));
  if (!store_.has(manifest.config.digest)) {
    added.push_back(manifest.config.digest);
    TRY_CTX(client.fetch_blob(r.path, manifest.config.digest, manifest.config.size, store_, {}),
            what + ": config");
  }
  auto config_text = store_.read_blob(manifest.config.digest, kMaxConfigBytes);
  if (!config_text) return std::move(config_text).error().context(what + ": config");
  auto config = parse_image_config(*config_text);
  if (!config) return std::move(config).error().context(what + ": config " + manifest.config.digest);
  TRY_CTX(check_config_matches(manifest, *config), what);
  blobs.push_back(manifest.config.digest);
  for (const auto& l : manifest.layers) {
    if (!store_.has(l.digest)) added.push_back(l.digest);
  }

  // Layers in parallel; each is unpacked by the thread that fetched it, as soon as it is in.
  std::atomic<size_t> next{0};
  std::mutex err_mu;
  std::optional<Error> first_error;
  auto worker = [&] {
    for (;;) {
      size_t i = next.fetch_add(1);
      if (i >= manifest.layers.size()) return;
      {
        std::lock_guard<std::mutex> g(err_mu);
        if (first_error) return;
      }
      const Descriptor& layer = manifest.layers[i];
      Status s = ok();
      if (store_.has(layer.digest)) {
        report({ProgressEvent::kLayerCached, layer.digest, static_cast<uint64_t>(layer.size),
                static_cast<uint64_t>(layer.size), ""});
      } else {
        report({ProgressEvent::kLayerStart, layer.digest, 0, static_cast<uint64_t>(layer.size), ""});
        s = client.fetch_blob(r.path, layer.digest, layer.size, store_, [&](uint64_t done, uint64_t total) {
          report({ProgressEvent::kLayerProgress, layer.digest, done, total, ""});
        });
        if (s.ok())
          report({ProgressEvent::kLayerDone, layer.digest, static_cast<uint64_t>(layer.size),
                  static_cast<uint64_t>(layer.size), ""});
      }
      if (s.ok()) {
        s = ensure_unpacked(layer, config->diff_ids[i]);
        if (s.ok()) report({ProgressEvent::kUnpacked, layer.digest, 0, 0, ""});
      }
      if (!s.ok()) {
        std::lock_guard<std::mutex> g(err_mu);
        if (!first_error) first_error = std::move(s).error();
        return;
      }
    }
  };
  size_t n = std::min<size_t>(std::max(1, opts.parallel), manifest.layers.size());
  std::vector<std::thread> threads;
  for (size_t i = 1; i < n; ++i) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  if (first_error) {
    lease = ContentStore::Lease();
    return std::move(*first_error).context(what);
  }
  for (const auto& l : manifest.layers) blobs.push_back(l.digest);

  ContentStore::ImageRecord rec;
  rec.name = r.str();
  rec.digest = mf.digest;
  rec.blobs = blobs;
  TRY_CTX(store_.put_image(rec), what);
  lease = ContentStore::Lease();
  auto img = get(rec.name);
  if (img) report({ProgressEvent::kDone, "", 0, 0, img->id});
  return img;
}

Result<LocalImage> ImageService::load(const ContentStore::ImageRecord& rec) {
  LocalImage img;
  img.name = rec.name;
  img.digest = rec.digest;
  img.created = rec.created;
  ASSIGN_OR_RETURN(std::string body, store_.read_blob(rec.digest, kMaxManifestBytes));
  ASSIGN_OR_RETURN(AnyManifest any, parse_manifest(body));
  if (!std::holds_alternative<Manifest>(any))
    return Error("image " + rec.name + ": record points at an index");
  img.manifest = std::get<Manifest>(any);
  for (const auto& b : rec.blobs) {
    if (b == rec.digest || b == img.manifest.config.digest) continue;
    bool is_layer = false;
    for (const auto& l : img.manifest.layers) is_layer = is_layer || l.digest == b;
    if (!is_layer) img.index_digest = b;
  }
  ASSIGN_OR_RETURN(std::string config, store_.read_blob(img.manifest.config.digest, kMaxConfigBytes));
  ASSIGN_OR_RETURN(img.config, parse_image_config(config));
  TRY_CTX(check_config_matches(img.manifest, img.config), "image " + rec.name);
  img.id = img.manifest.config.digest;
  // Sizes are the manifest's, each 0..INT64_MAX: the sum saturates rather than overflows.
  auto add = [](int64_t a, int64_t b) { return a > INT64_MAX - b ? INT64_MAX : a + b; };
  img.size = img.manifest.config.size;
  for (const auto& l : img.manifest.layers) {
    img.size = add(img.size, l.size);
    img.layer_dirs.push_back(layer_dir(l.digest));
  }
  return img;
}

Result<LocalImage> ImageService::get(const std::string& key) {
  auto try_name = [&](const std::string& name) -> std::optional<ContentStore::ImageRecord> {
    auto rec = store_.get_image(name);
    if (rec) return *rec;
    return std::nullopt;
  };
  std::optional<ContentStore::ImageRecord> found;
  if (auto name = canonical_name(key)) found = try_name(*name);
  if (!found) {
    // An id (config digest) or a unique prefix of one, with or without "sha256:".
    std::string hex(digest_hex(key));
    if (hex.size() >= 3 && hex.find_first_not_of("0123456789abcdef") == std::string::npos) {
      std::optional<ContentStore::ImageRecord> match;
      for (const auto& rec : store_.list_images()) {
        auto img = load(rec);
        if (!img || std::string(digest_hex(img->id)).compare(0, hex.size(), hex) != 0) continue;
        if (match && match->digest != rec.digest)
          return Error("image id prefix \"" + key + "\" is ambiguous");
        match = rec;
      }
      found = match;
    }
  }
  if (!found)
    return Error("image \"" + key + "\" is not present locally (strata image pull " + key + ")", ENOENT);
  ASSIGN_OR_RETURN(LocalImage img, load(*found));
  for (size_t i = 0; i < img.manifest.layers.size(); ++i)
    TRY_CTX(ensure_unpacked(img.manifest.layers[i], img.config.diff_ids[i]), "image " + img.name);
  return img;
}

std::vector<LocalImage> ImageService::list() {
  std::vector<LocalImage> out;
  for (const auto& rec : store_.list_images()) {
    auto img = load(rec);
    if (img) out.push_back(std::move(*img));
  }
  return out;
}

Status ImageService::tag(const std::string& source, const std::string& target) {
  ASSIGN_OR_RETURN(LocalImage img, get(source));
  ASSIGN_OR_RETURN(std::string name, canonical_name(target));
  ASSIGN_OR_RETURN(ContentStore::ImageRecord rec, store_.get_image(img.name));
  rec.name = name;
  rec.created.clear();
  return store_.put_image(rec);
}

void ImageService::remove_layers(const std::vector<std::string>& blob_digests,
                                 const std::set<std::string>& in_use, bool wait) {
  for (const auto& d : blob_digests) {
    std::string dir = layer_dir(d);
    if (in_use.count(dir)) continue;
    // Under the layer's lock, so that an unpack of the same layer (a pull that fetched the blob
    // again meanwhile) is either done or not started; the lock file goes when released.
    std::optional<detail::FileLock> lock;
    if (wait) {
      auto held = detail::FileLock::acquire(dir + ".lock");
      if (!held) {
        log::get("image")->warn("remove layer {}: {}", d, held.error().to_string());
        continue;
      }
      lock = std::move(*held);
    } else {
      lock = lock_if_idle(dir + ".lock");
      if (!lock) continue;
    }
    if (fs::is_dir(dir)) (void)fs::remove_tree(dir);
    ::unlink(diff_id_path(d).c_str());
  }
}

Result<std::vector<std::string>> ImageService::remove(const std::string& key,
                                                      const std::set<std::string>& in_use) {
  std::vector<std::string> names;
  auto name = canonical_name(key);
  if (name && store_.get_image(*name)) {
    names.push_back(*name);
  } else {
    ASSIGN_OR_RETURN(LocalImage img, get(key));
    for (const auto& other : list()) {
      if (other.id == img.id) names.push_back(other.name);
    }
  }
  for (const auto& n : names) {
    ASSIGN_OR_RETURN(std::vector<std::string> gone, store_.remove_image(n));
    remove_layers(gone, in_use);
  }
  return names;
}

Result<std::vector<std::string>> ImageService::prune(const std::set<std::string>& in_use) {
  ASSIGN_OR_RETURN(std::vector<std::string> gone, store_.prune());
  // prune never waits for an unpack: a layer skipped now is an orphan for the next prune.
  remove_layers(gone, in_use, /*wait=*/false);
  // Unpacked layers (and their .diff_id, or a .lock a killed unpack left) whose blob is gone.
  std::set<std::string> orphans;
  for (const auto& name : fs::list_dir(root_ + "/layers/sha256")) {
    std::string digest = "sha256:" + name.substr(0, 64);
    if (is_sha256_digest(digest) && !store_.has(digest)) orphans.insert(digest);
  }
  remove_layers({orphans.begin(), orphans.end()}, in_use, /*wait=*/false);
  // tmp/<hex>.<suffix> is an unpack of layer <hex>: one still running holds the layer's lock
  // (ensure_unpacked), and must not lose its tree before it renames it into place. A lock file
  // that exists but is free was left by a killed unpack: it goes with its tree.
  std::string tmp = root_ + "/layers/tmp/";
  for (const auto& t : fs::list_dir(tmp)) {
    std::string hex = t.substr(0, t.find('.'));
    std::optional<detail::FileLock> lock;
    if (hex.size() == 64) {
      lock = lock_if_idle(root_ + "/layers/sha256/" + hex + ".lock");
      if (!lock) continue;  // its unpack is running
    }
    (void)fs::remove_tree(tmp + t);
  }
  return gone;
}

Status ImageService::push(const std::string& name, const std::string& dest, const RegistryOptions& opts,
                          const ProgressSink& progress) {
  ASSIGN_OR_RETURN(LocalImage img, get(name));
  ASSIGN_OR_RETURN(Reference r, parse_reference(dest.empty() ? img.name : dest));
  std::string what = "push " + r.str();
  RegistryClient client(r.domain, opts);
  std::vector<Descriptor> blobs = img.manifest.layers;
  blobs.push_back(img.manifest.config);
  // Pushing to another repository of the registry the image came from: the registry can mount
  // the blobs it already has there instead of receiving them again.
  std::string mount_from;
  if (auto src = parse_reference(img.name); src && src->domain == r.domain && src->path != r.path)
    mount_from = src->path;
  for (const auto& b : blobs) {
    if (progress) progress({ProgressEvent::kLayerStart, b.digest, 0, static_cast<uint64_t>(b.size), ""});
    TRY_CTX(client.push_blob(r.path, b.digest, store_.blob_path(b.digest), mount_from), what);
    if (progress)
      progress({ProgressEvent::kLayerDone, b.digest, static_cast<uint64_t>(b.size),
                static_cast<uint64_t>(b.size), ""});
  }
  ASSIGN_OR_RETURN(std::string body, store_.read_blob(img.digest, kMaxManifestBytes));
  TRY_CTX(client.put_manifest(r.path, r.digest.empty() ? r.tag : r.digest, body, img.manifest.media_type),
          what);
  if (progress) progress({ProgressEvent::kDone, "", 0, 0, img.digest});
  return ok();
}

Result<LocalImage> ImageService::store_image(const std::string& name, const std::string& manifest_digest,
                                             const std::string& index_digest) {
  ASSIGN_OR_RETURN(std::string canonical, canonical_name(name));
  ASSIGN_OR_RETURN(std::string body, store_.read_blob(manifest_digest, kMaxManifestBytes));
  ASSIGN_OR_RETURN(AnyManifest any, parse_manifest(body));
  if (!std::holds_alternative<Manifest>(any))
    return Error("image " + name + ": " + manifest_digest + " is an index");
  const Manifest& m = std::get<Manifest>(any);
  ContentStore::ImageRecord rec;
  rec.name = canonical;
  rec.digest = manifest_digest;
  if (!index_digest.empty()) rec.blobs.push_back(index_digest);
  rec.blobs.push_back(manifest_digest);
  rec.blobs.push_back(m.config.digest);
  for (const auto& l : m.layers) rec.blobs.push_back(l.digest);
  ASSIGN_OR_RETURN(std::string config, store_.read_blob(m.config.digest, kMaxConfigBytes));
  ASSIGN_OR_RETURN(ImageConfig cfg, parse_image_config(config));
  TRY(check_config_matches(m, cfg));
  TRY(store_.put_image(rec));
  return get(canonical);
}

}  // namespace strata::image
