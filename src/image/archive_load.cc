// strata image load: docker-archive and OCI layouts (tar or directory) into the content store.
// The tar is read once into a staging directory while every file is hashed; then the images are
// planned and every blob checked before the first one is stored, so a tampered or truncated
// archive stores nothing. Storing (blobs, records, unpacking) is rolled back as a whole.
#include <archive_entry.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <vector>

#include "base/cleanup.h"
#include "base/digest.h"
#include "base/fd.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/rfc3339.h"
#include "image/archive.h"
#include "image/archive_tar.h"
#include "image/shown_name.h"

namespace strata::image {

namespace {

constexpr size_t kBlock = 1 << 20;
constexpr size_t kMaxEntries = 100000;
constexpr int64_t kMaxEntryBytes = int64_t{64} << 30;
constexpr int kMaxLinkHops = 8;

struct Staged {
  std::string path;
  int64_t size = 0;
  std::string digest;  // empty when not hashed yet (files of a layout directory)
};

// The files of the archive by their (cleaned) names.
class Source {
 public:
  // A tar read from fd into `staging_dir` (which exists and is empty).
  static Result<Source> from_tar(int fd, const std::string& staging_dir);
  static Source from_dir(const std::string& dir) {
    Source s;
    s.dir_ = dir;
    return s;
  }

  bool has(const std::string& name) const { return find(name).ok(); }
  Result<Staged> find(const std::string& name) const;
  Result<std::string> read(const std::string& name, size_t max) const;
  // A blob of the layout: present, of the size the descriptor says, and (for a tar, where it
  // was hashed while staging) of the right digest.
  Result<Staged> blob(const Descriptor& d) const;

 private:
  Status stage(archive* a, archive_entry* e, const std::string& name, const std::string& staging_dir);

  std::string dir_;  // set for a layout directory
  std::map<std::string, Staged> files_;
  std::map<std::string, std::string> links_;  // name -> target name
};

// A staged file (ours) or a file of a layout directory (the user's), for reading: a regular file
// still, opened without blocking (a FIFO swapped in since find() looked would hang the load).
Result<UniqueFd> open_staged(const Staged& st) {
  UniqueFd fd(::open(st.path.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return Error::sys("open " + st.path);
  struct stat sb {};
  if (::fstat(fd.get(), &sb) != 0) return Error::sys("stat " + st.path);
  if (!S_ISREG(sb.st_mode))
    return Error(st.path + ": not a regular file (" + fs::file_type_name(sb.st_mode) + ")");
  return fd;
}

// The archive name a relative symlink at `name` points to; one that climbs above the archive's
// root is refused rather than clamped, it can only be a crafted archive.
Result<std::string> link_target(const std::string& name, std::string_view target) {
  std::vector<std::string> parts;
  for (size_t i = 0, j; i < name.size(); i = j + 1) {
    j = name.find('/', i);
    if (j == std::string::npos) break;  // the last component is the link itself
    parts.push_back(name.substr(i, j - i));
  }
  for (size_t i = 0; i <= target.size();) {
    size_t j = target.find('/', i);
    if (j == std::string_view::npos) j = target.size();
    std::string_view part = target.substr(i, j - i);
    if (part == "..") {
      if (parts.empty())
        return Error("read archive: entry " + shown_name(name) + ": symlink to " + shown_name(target) +
                     " escapes the archive");
      parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.emplace_back(part);
    }
    i = j + 1;
  }
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "/") + p;
  return tar::entry_name(out);
}

Result<Source> Source::from_tar(int fd, const std::string& staging_dir) {
  Source s;
  ASSIGN_OR_RETURN(tar::ReadPtr a, tar::open_reader(fd));
  size_t count = 0;
  for (;;) {
    archive_entry* e = nullptr;
    int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return tar::archive_error(a.get(), "read archive");
    if (++count > kMaxEntries)
      return Error("read archive: more than " + std::to_string(kMaxEntries) + " entries");
    const char* raw = archive_entry_pathname(e);
    ASSIGN_OR_RETURN(std::string name, tar::entry_name(raw != nullptr ? raw : ""));
    std::string what = "read archive: entry " + shown_name(name);
    if (s.files_.count(name) != 0 || s.links_.count(name) != 0) return Error(what + ": appears twice");
    if (const char* hl = archive_entry_hardlink(e)) {
      ASSIGN_OR_RETURN(s.links_[name], tar::entry_name(hl));
      continue;
    }
    switch (archive_entry_filetype(e)) {
      case AE_IFDIR:
        continue;
      case AE_IFLNK: {
        const char* target = archive_entry_symlink(e);
        if (target == nullptr || target[0] == '/') return Error(what + ": symlink to an absolute path");
        ASSIGN_OR_RETURN(s.links_[name], link_target(name, target));
        continue;
      }
      case AE_IFREG:
        TRY(s.stage(a.get(), e, name, staging_dir));
        continue;
      default:
        return Error(what + ": not a regular file, directory or link");
    }
  }
  return s;
}

Status Source::stage(archive* a, archive_entry* e, const std::string& name, const std::string& staging_dir) {
  std::string what = "read archive: entry " + shown_name(name);
  int64_t want = archive_entry_size(e);
  if (want < 0 || want > kMaxEntryBytes)
    return Error(what + ": size " + std::to_string(want) + " out of bounds");
  Staged st;
  st.path = staging_dir + "/" + std::to_string(files_.size());
  UniqueFd out(::open(st.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!out) return Error::sys("create staging file " + st.path);
  Sha256 h;
  std::vector<char> buf(kBlock);
  for (;;) {
    la_ssize_t n = archive_read_data(a, buf.data(), buf.size());
    if (n < 0) return tar::archive_error(a, what);
    if (n == 0) break;
    st.size += n;
    if (st.size > want) return Error(what + ": more data than its header says");
    h.update(buf.data(), static_cast<size_t>(n));
    for (la_ssize_t off = 0; off < n;) {
      ssize_t w = ::write(out.get(), buf.data() + off, static_cast<size_t>(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return Error::sys("write staging file " + st.path);
      off += w;
    }
  }
  if (st.size != want)
    return Error(what + ": truncated (" + std::to_string(st.size) + " of " + std::to_string(want) +
                 " bytes)");
  st.digest = h.digest();
  files_[name] = std::move(st);
  return ok();
}

Result<Staged> Source::find(const std::string& name) const {
  if (!dir_.empty()) {
    ASSIGN_OR_RETURN(std::string clean, tar::entry_name(name));
    Staged st;
    st.path = dir_ + "/" + clean;
    struct stat sb;
    if (::lstat(st.path.c_str(), &sb) != 0) return Error::sys("layout file " + st.path);
    if (!S_ISREG(sb.st_mode)) return Error("layout file " + st.path + ": not a regular file");
    st.size = sb.st_size;
    return st;
  }
  std::string cur = name;
  for (int hop = 0; hop <= kMaxLinkHops; hop++) {
    if (auto f = files_.find(cur); f != files_.end()) return f->second;
    auto l = links_.find(cur);
    if (l == links_.end()) return Error("archive has no file " + shown_name(name), ENOENT);
    cur = l->second;
  }
  return Error("archive file " + shown_name(name) + ": too many levels of links", ELOOP);
}

Result<std::string> Source::read(const std::string& name, size_t max) const {
  ASSIGN_OR_RETURN(Staged st, find(name));
  if (st.size > static_cast<int64_t>(max))
    return Error("archive file " + shown_name(name) + ": " + std::to_string(st.size) +
                 " bytes is over the limit of " + std::to_string(max));
  return fs::read_file(st.path, max);
}

Result<Staged> Source::blob(const Descriptor& d) const {
  TRY(validate_digest(d.digest));
  ASSIGN_OR_RETURN(Staged st, find("blobs/sha256/" + std::string(digest_hex(d.digest))));
  if (st.size != d.size)
    return Error("blob " + d.digest + ": " + std::to_string(st.size) + " bytes, the descriptor says " +
                 std::to_string(d.size));
  if (!st.digest.empty() && st.digest != d.digest)
    return Error("blob " + d.digest + ": content has digest " + st.digest);
  return st;
}

// What one image of the archive becomes: blobs to store, then a record per name.
struct Plan {
  std::vector<std::string> names;  // canonical; empty: unnamed
  std::string manifest_digest, index_digest, id;
  std::map<std::string, std::string> bytes;  // digest -> content (manifests, configs)
  std::map<std::string, Staged> files;       // digest -> staged file (layers)
};

// A metadata blob of a layout, verified against its digest.
Result<std::string> read_blob(const Source& src, const Descriptor& d, size_t max) {
  ASSIGN_OR_RETURN(Staged st, src.blob(d));
  ASSIGN_OR_RETURN(std::string body, src.read("blobs/sha256/" + std::string(digest_hex(d.digest)), max));
  if (sha256_digest(body) != d.digest) return Error("blob " + d.digest + ": content has another digest");
  return body;
}

Status plan_image(const Source& src, const Manifest& m, Plan& p) {
  ASSIGN_OR_RETURN(std::string config, read_blob(src, m.config, kMaxConfigBytes));
  ASSIGN_OR_RETURN(ImageConfig cfg, parse_image_config(config));
  TRY(check_config_matches(m, cfg));
  p.id = m.config.digest;
  p.bytes[m.config.digest] = std::move(config);
  for (const auto& l : m.layers) {
    ASSIGN_OR_RETURN(p.files[l.digest], src.blob(l));
  }
  return ok();
}

// The name of an index entry: containerd's full name, else ref.name when it is a reference
// rather than the bare tag docker writes there.
std::vector<std::string> oci_names(const Descriptor& d) {
  for (const char* key : {"io.containerd.image.name", "org.opencontainers.image.ref.name"}) {
    auto it = d.annotations.find(key);
    if (it == d.annotations.end()) continue;
    if (it->second.find_first_of("/:") == std::string::npos) continue;
    if (auto name = canonical_name(it->second)) return {*name};
  }
  return {};
}

Result<std::vector<Plan>> plan_oci(const Source& src) {
  ASSIGN_OR_RETURN(std::string body, src.read("index.json", kMaxManifestBytes));
  ASSIGN_OR_RETURN(AnyManifest any, parse_manifest(body, media_type::kOciIndex));
  if (!std::holds_alternative<Index>(any)) return Error("index.json: not an image index");
  std::vector<Plan> plans;
  for (const auto& top : std::get<Index>(any).manifests) {
    Plan p;
    p.names = oci_names(top);
    Descriptor md = top;
    if (is_index_media_type(top.media_type)) {
      ASSIGN_OR_RETURN(std::string ibody, read_blob(src, top, kMaxManifestBytes));
      ASSIGN_OR_RETURN(AnyManifest inner, parse_manifest(ibody, top.media_type));
      if (!std::holds_alternative<Index>(inner)) return Error("index " + top.digest + ": not an index");
      ASSIGN_OR_RETURN(md, select_platform(std::get<Index>(inner), host_platform()));
      p.index_digest = top.digest;
      p.bytes[top.digest] = std::move(ibody);
    } else if (!is_manifest_media_type(top.media_type)) {
      continue;  // not an image (an artifact); podman skips those too
    }
    ASSIGN_OR_RETURN(std::string mbody, read_blob(src, md, kMaxManifestBytes));
    ASSIGN_OR_RETURN(AnyManifest parsed, parse_manifest(mbody, md.media_type));
    if (!std::holds_alternative<Manifest>(parsed)) return Error("manifest " + md.digest + ": not a manifest");
    TRY_CTX(plan_image(src, std::get<Manifest>(parsed), p), "image " + md.digest);
    p.manifest_digest = md.digest;
    p.bytes[md.digest] = std::move(mbody);
    plans.push_back(std::move(p));
  }
  if (plans.empty()) return Error("index.json lists no image");
  return plans;
}

Result<Plan> plan_docker_entry(const Source& src, const nlohmann::json& e) {
  if (!e.is_object()) return Error("not an object");
  Plan p;
  std::string config_name = e.at("Config").get<std::string>();
  ASSIGN_OR_RETURN(std::string config, src.read(config_name, kMaxConfigBytes));
  ASSIGN_OR_RETURN(ImageConfig cfg, parse_image_config(config));
  auto layers = e.at("Layers").get<std::vector<std::string>>();
  if (layers.size() != cfg.diff_ids.size())
    return Error(std::to_string(layers.size()) + " layers, the config has " +
                 std::to_string(cfg.diff_ids.size()) + " diff_ids");
  if (e.contains("RepoTags") && !e.at("RepoTags").is_null()) {
    for (const auto& tag : e.at("RepoTags").get<std::vector<std::string>>()) {
      ASSIGN_OR_RETURN(std::string name, canonical_name(tag));
      p.names.push_back(name);
    }
  }
  nlohmann::ordered_json layer_descs = nlohmann::ordered_json::array();
  for (size_t i = 0; i < layers.size(); i++) {
    ASSIGN_OR_RETURN(Staged st, src.find(layers[i]));
    if (st.digest.empty()) {  // a file of a directory, not hashed while staging
      ASSIGN_OR_RETURN(UniqueFd in, open_staged(st));
      Sha256 h;
      TRY(fs::read_chunks(
          in.get(), st.path,
          [&](const char* p, size_t n) {
            h.update(p, n);
            return ok();
          },
          kBlock));
      st.digest = h.digest();
    }
    if (st.digest != cfg.diff_ids[i])
      return Error("layer " + shown_name(layers[i]) + ": content has digest " + st.digest +
                   ", the config's diff_id is " + cfg.diff_ids[i]);
    layer_descs.push_back({{"mediaType", media_type::kOciLayer}, {"digest", st.digest}, {"size", st.size}});
    p.files[st.digest] = st;
  }
  p.id = sha256_digest(config);
  nlohmann::ordered_json m = {
      {"schemaVersion", 2},
      {"mediaType", media_type::kOciManifest},
      {"config", {{"mediaType", media_type::kOciConfig}, {"digest", p.id}, {"size", config.size()}}},
      {"layers", layer_descs}};
  std::string body = m.dump();
  p.manifest_digest = sha256_digest(body);
  p.bytes[p.id] = std::move(config);
  p.bytes[p.manifest_digest] = std::move(body);
  return p;
}

Result<std::vector<Plan>> plan_docker(const Source& src) {
  ASSIGN_OR_RETURN(std::string body, src.read("manifest.json", kMaxManifestBytes));
  std::vector<Plan> plans;
  try {
    auto j = nlohmann::json::parse(body);
    if (!j.is_array() || j.empty()) return Error("manifest.json: not a non-empty array");
    for (size_t i = 0; i < j.size(); i++) {
      auto p = plan_docker_entry(src, j[i]);
      if (!p) return std::move(p).error().context("manifest.json[" + std::to_string(i) + "]");
      plans.push_back(std::move(*p));
    }
  } catch (const nlohmann::json::exception& e) {
    return Error(std::string("manifest.json: ") + e.what());
  }
  return plans;
}

// Stores blobs and records; undoes all of it unless commit()ed.
class Transaction {
 public:
  explicit Transaction(ImageService& svc) : svc_(svc) {}
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() {
    if (!done_) rollback();
  }

  // Holds off prune (which would delete the blobs stored here before a record references
  // them) until commit or rollback.
  Status begin() {
    ASSIGN_OR_RETURN(lease_, svc_.content().lease());
    return ok();
  }

  Status put_bytes(const std::string& digest, const std::string& data) {
    bool had = svc_.content().has(digest);
    TRY(svc_.content().put_blob(data, digest));
    if (!had) added_.push_back(digest);
    return ok();
  }
  Status put_file(const std::string& digest, const Staged& st) {
    ContentStore& cs = svc_.content();
    if (cs.has(digest)) return ok();
    ASSIGN_OR_RETURN(ContentStore::BlobWriter w, cs.writer(digest, st.size));
    if (w.already_present()) return ok();
    if (w.offset() > 0) TRY(w.restart());
    added_.push_back(digest);
    ASSIGN_OR_RETURN(UniqueFd in, open_staged(st));
    // A failed copy must not leave partial data that a later pull would resume from.
    Cleanup discard([&] { (void)w.restart(); });
    TRY(fs::read_chunks(
        in.get(), st.path, [&](const char* p, size_t n) { return w.write(p, n); }, kBlock));
    discard.cancel();
    return w.commit();
  }
  Result<LocalImage> store(const std::string& name, const Plan& p) {
    if (!named_.count(name)) {
      auto prev = svc_.content().get_image(name);
      named_[name] = prev ? std::optional<ContentStore::ImageRecord>(*prev) : std::nullopt;
    }
    return svc_.store_image(name, p.manifest_digest, p.index_digest);
  }
  void commit() {
    done_ = true;
    lease_ = ContentStore::Lease();
  }

 private:
  void rollback() {
    // Removing takes the store lock exclusively: our own shared hold must go first.
    lease_ = ContentStore::Lease();
    // Best effort: the archive's error is what the user needs to see.
    for (const auto& [name, prev] : named_) {
      if (prev)
        (void)svc_.content().put_image(*prev);
      else if (svc_.content().get_image(name).ok())
        (void)svc_.remove(name);
    }
    auto gone = svc_.content().remove_unreferenced(added_);
    if (gone) svc_.remove_layers(*gone, {});
  }

  ImageService& svc_;
  std::vector<std::string> added_;
  std::map<std::string, std::optional<ContentStore::ImageRecord>> named_;
  ContentStore::Lease lease_;
  bool done_ = false;
};

Result<std::vector<LoadedImage>> store_plans(ImageService& svc, std::vector<Plan>& plans,
                                             const std::string& unnamed_repo) {
  Transaction tx(svc);
  TRY(tx.begin());
  std::vector<LoadedImage> out;
  for (auto& p : plans) {
    for (const auto& [digest, data] : p.bytes) TRY(tx.put_bytes(digest, data));
    for (const auto& [digest, st] : p.files) TRY_CTX(tx.put_file(digest, st), "store layer " + digest);
    if (p.names.empty()) p.names.push_back(unnamed_repo + ":" + std::string(digest_hex(p.id)).substr(0, 12));
    for (const auto& name : p.names) {
      ASSIGN_OR_RETURN(LocalImage img, tx.store(name, p));
      out.push_back({img.name, img.id});
    }
  }
  tx.commit();
  return out;
}

Result<std::vector<LoadedImage>> load_source(ImageService& svc, const Source& src) {
  std::vector<Plan> plans;
  if (src.has("index.json")) {
    ASSIGN_OR_RETURN(plans, plan_oci(src));
  } else if (src.has("manifest.json")) {
    ASSIGN_OR_RETURN(plans, plan_docker(src));
  } else {
    return Error("neither a docker-archive (manifest.json) nor an OCI layout (index.json)");
  }
  return store_plans(svc, plans, "localhost/loaded");
}

// The rootfs tarball, decompressed, into a staging file (hashed on the way: its digest is the
// layer's diff_id and, stored uncompressed, its blob digest too).
Result<Staged> stage_rootfs(int fd, const std::string& path) {
  tar::ReadPtr a(archive_read_new());
  if (!a) return Error("allocate archive reader", ENOMEM);
  archive_read_support_filter_all(a.get());
  archive_read_support_format_raw(a.get());
  if (archive_read_open_fd(a.get(), fd, kBlock) != ARCHIVE_OK)
    return tar::archive_error(a.get(), "read rootfs");
  archive_entry* e = nullptr;
  if (archive_read_next_header(a.get(), &e) != ARCHIVE_OK) return tar::archive_error(a.get(), "read rootfs");
  Staged st;
  st.path = path;
  UniqueFd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!out) return Error::sys("create staging file " + path);
  Sha256 h;
  std::vector<char> buf(kBlock);
  for (;;) {
    la_ssize_t n = archive_read_data(a.get(), buf.data(), buf.size());
    if (n < 0) return tar::archive_error(a.get(), "read rootfs");
    if (n == 0) break;
    st.size += n;
    if (st.size > kMaxEntryBytes)
      return Error("read rootfs: over " + std::to_string(kMaxEntryBytes) + " bytes");
    h.update(buf.data(), static_cast<size_t>(n));
    for (la_ssize_t off = 0; off < n;) {
      ssize_t w = ::write(out.get(), buf.data() + off, static_cast<size_t>(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return Error::sys("write staging file " + path);
      off += w;
    }
  }
  if (st.size == 0) return Error("read rootfs: empty input");
  st.digest = h.digest();
  return st;
}

}  // namespace

Result<LoadedImage> import_rootfs(ImageService& svc, int fd, const std::string& name) {
  Plan p;
  if (!name.empty()) {
    ASSIGN_OR_RETURN(std::string canonical, canonical_name(name));
    p.names.push_back(canonical);
  }
  std::string staging = svc.content().root() + "/layers/tmp/import-XXXXXX";
  if (::mkdtemp(staging.data()) == nullptr) return Error::sys("import: create staging directory " + staging);
  Cleanup remove_staging([&] { (void)fs::remove_tree(staging); });
  ASSIGN_OR_RETURN(Staged layer, stage_rootfs(fd, staging + "/layer"));
  Platform host = host_platform();
  std::string created = now_rfc3339();
  nlohmann::ordered_json cfg = {
      {"created", created},
      {"architecture", host.architecture},
      {"os", host.os},
      {"config",
       {{"Env", {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}, {"Cmd", {"sh"}}}},
      {"rootfs", {{"type", "layers"}, {"diff_ids", {layer.digest}}}},
      {"history", {{{"created", created}, {"created_by", "strata image import"}}}}};
  if (!host.variant.empty()) cfg["variant"] = host.variant;
  std::string config = cfg.dump();
  p.id = sha256_digest(config);
  nlohmann::ordered_json m = {
      {"schemaVersion", 2},
      {"mediaType", media_type::kOciManifest},
      {"config", {{"mediaType", media_type::kOciConfig}, {"digest", p.id}, {"size", config.size()}}},
      {"layers", {{{"mediaType", media_type::kOciLayer}, {"digest", layer.digest}, {"size", layer.size}}}}};
  std::string body = m.dump();
  p.manifest_digest = sha256_digest(body);
  p.bytes[p.id] = std::move(config);
  p.bytes[p.manifest_digest] = std::move(body);
  p.files[layer.digest] = layer;
  std::vector<Plan> plans{std::move(p)};
  auto r = store_plans(svc, plans, "localhost/imported");
  if (!r) return std::move(r).error().context("import rootfs");
  return r->front();
}

Result<std::vector<LoadedImage>> load_archive(ImageService& svc, int fd) {
  std::string staging = svc.content().root() + "/layers/tmp/load-XXXXXX";
  if (::mkdtemp(staging.data()) == nullptr) return Error::sys("load: create staging directory " + staging);
  Cleanup remove_staging([&] { (void)fs::remove_tree(staging); });
  ASSIGN_OR_RETURN(Source src, Source::from_tar(fd, staging));
  auto r = load_source(svc, src);
  if (!r) return std::move(r).error().context("load archive");
  return r;
}

Result<std::vector<LoadedImage>> load_oci_dir(ImageService& svc, const std::string& dir) {
  auto r = load_source(svc, Source::from_dir(dir));
  if (!r) return std::move(r).error().context("load OCI layout " + dir);
  return r;
}

}  // namespace strata::image
