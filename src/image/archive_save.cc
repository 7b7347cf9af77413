// strata image save: docker-archive (the `docker save` tar), oci-archive and oci-dir writers.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "base/cleanup.h"
#include "base/digest.h"
#include "base/fd.h"
#include "base/fs.h"
#include "image/archive.h"
#include "image/archive_tar.h"

namespace strata::image {

namespace {

using Json = nlohmann::ordered_json;
constexpr size_t kBlock = 1 << 20;

// Where the files of a save go: a tar stream or a directory.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual Status add_bytes(const std::string& name, std::string_view data) = 0;
  virtual Status add_file(const std::string& name, const std::string& path, int64_t size) = 0;
};

class TarSink : public Sink {
 public:
  explicit TarSink(tar::Writer w) : w_(std::move(w)) {}
  Status add_bytes(const std::string& name, std::string_view data) override {
    return w_.add_bytes(name, data);
  }
  Status add_file(const std::string& name, const std::string& path, int64_t size) override {
    return w_.add_file(name, path, size);
  }
  Status close() { return w_.close(); }

 private:
  tar::Writer w_;
};

Status copy_fd(int in, int out, const std::string& what) {
  return fs::read_chunks(
      in, what,
      [&](const char* p, size_t n) -> Status {
        for (size_t off = 0; off < n;) {
          ssize_t w = ::write(out, p + off, n - off);
          if (w < 0 && errno == EINTR) continue;
          if (w < 0) return Error::sys("write " + what);
          off += static_cast<size_t>(w);
        }
        return ok();
      },
      kBlock);
}

class DirSink : public Sink {
 public:
  explicit DirSink(std::string dir) : dir_(std::move(dir)) {}
  Status add_bytes(const std::string& name, std::string_view data) override {
    std::string path = dir_ + "/" + name;
    TRY(fs::mkdir_p(path.substr(0, path.rfind('/'))));
    return fs::write_file_atomic(path, data);
  }
  Status add_file(const std::string& name, const std::string& path, int64_t) override {
    std::string dest = dir_ + "/" + name;
    TRY(fs::mkdir_p(dest.substr(0, dest.rfind('/'))));
    UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in) return Error::sys("open " + path);
    UniqueFd out(::open(dest.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!out) return Error::sys("create " + dest);
    return copy_fd(in.get(), out.get(), dest);
  }

 private:
  std::string dir_;
};

struct SavedImage {
  LocalImage img;
  std::string manifest_body;
};

Result<std::vector<SavedImage>> resolve(ImageService& svc, const std::vector<std::string>& images) {
  if (images.empty()) return Error("save: no image given");
  std::vector<SavedImage> out;
  for (const auto& key : images) {
    ASSIGN_OR_RETURN(LocalImage img, svc.get(key));
    ASSIGN_OR_RETURN(std::string body, svc.content().read_blob(img.digest, kMaxManifestBytes));
    out.push_back({std::move(img), std::move(body)});
  }
  return out;
}

Status write_oci(ImageService& svc, const std::vector<SavedImage>& images, Sink& sink) {
  TRY(sink.add_bytes("oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
  std::set<std::string> written;
  Json index = {{"schemaVersion", 2}, {"mediaType", media_type::kOciIndex}, {"manifests", Json::array()}};
  for (const auto& s : images) {
    std::vector<Descriptor> blobs = s.img.manifest.layers;
    blobs.push_back(s.img.manifest.config);
    for (const auto& d : blobs) {
      if (!written.insert(d.digest).second) continue;
      TRY_CTX(sink.add_file("blobs/sha256/" + std::string(digest_hex(d.digest)),
                            svc.content().blob_path(d.digest), d.size),
              "save blob " + d.digest);
    }
    if (written.insert(s.img.digest).second)
      TRY(sink.add_bytes("blobs/sha256/" + std::string(digest_hex(s.img.digest)), s.manifest_body));
    Json desc = {
        {"mediaType", s.img.manifest.media_type}, {"digest", s.img.digest}, {"size", s.manifest_body.size()}};
    if (!s.img.name.empty()) desc["annotations"] = {{"org.opencontainers.image.ref.name", s.img.name}};
    index["manifests"].push_back(desc);
  }
  return sink.add_bytes("index.json", index.dump());
}

// A layer as docker writes it: the uncompressed tar. Compressed blobs are expanded into a
// temporary file whose digest must be the config's diff_id.
class LayerFile {
 public:
  static Result<LayerFile> make(ImageService& svc, const Descriptor& layer, const std::string& diff_id) {
    LayerFile f;
    if (layer_compression(layer.media_type) == Compression::kNone) {
      f.path_ = svc.content().blob_path(layer.digest);
      f.size_ = layer.size;
      if (layer.digest != diff_id)
        return Error("layer " + layer.digest + ": digest differs from the config's diff_id " + diff_id);
      return f;
    }
    std::string tmpl = svc.content().root() + "/layers/tmp/save-XXXXXX";
    int raw = ::mkstemp(tmpl.data());
    if (raw < 0) return Error::sys("create temporary for layer " + layer.digest);
    f.tmp_ = f.path_ = tmpl;
    UniqueFd out(raw);
    std::string blob = svc.content().blob_path(layer.digest);
    UniqueFd in(::open(blob.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in) return Error::sys("open layer blob " + blob);
    tar::ReadPtr a(archive_read_new());
    if (!a) return Error("allocate archive reader", ENOMEM);
    archive_read_support_filter_all(a.get());
    archive_read_support_format_raw(a.get());
    if (archive_read_open_fd(a.get(), in.get(), kBlock) != ARCHIVE_OK)
      return tar::archive_error(a.get(), "decompress layer " + layer.digest);
    archive_entry* e = nullptr;
    if (archive_read_next_header(a.get(), &e) != ARCHIVE_OK)
      return tar::archive_error(a.get(), "decompress layer " + layer.digest);
    Sha256 h;
    std::vector<char> buf(kBlock);
    for (;;) {
      la_ssize_t n = archive_read_data(a.get(), buf.data(), buf.size());
      if (n < 0) return tar::archive_error(a.get(), "decompress layer " + layer.digest);
      if (n == 0) break;
      h.update(buf.data(), static_cast<size_t>(n));
      for (la_ssize_t off = 0; off < n;) {
        ssize_t w = ::write(out.get(), buf.data() + off, static_cast<size_t>(n - off));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return Error::sys("write " + tmpl);
        off += w;
      }
      f.size_ += n;
    }
    std::string got = h.digest();
    if (got != diff_id)
      return Error("layer " + layer.digest + ": uncompressed digest " + got + " is not the diff_id " +
                   diff_id);
    return f;
  }
  LayerFile(LayerFile&& o) noexcept : path_(std::move(o.path_)), tmp_(std::move(o.tmp_)), size_(o.size_) {
    o.tmp_.clear();
  }
  LayerFile& operator=(LayerFile&&) = delete;
  ~LayerFile() {
    if (!tmp_.empty()) ::unlink(tmp_.c_str());
  }
  const std::string& path() const { return path_; }
  int64_t size() const { return size_; }

 private:
  LayerFile() = default;
  std::string path_, tmp_;
  int64_t size_ = 0;
};

Status write_docker(ImageService& svc, const std::vector<SavedImage>& images, Sink& sink) {
  Json manifest = Json::array();
  Json repositories = Json::object();
  std::set<std::string> written;
  for (const auto& s : images) {
    const Manifest& m = s.img.manifest;
    std::string what = "save image " + (s.img.name.empty() ? s.img.id : s.img.name);
    if (m.layers.size() != s.img.config.diff_ids.size())
      return Error(what + ": the config's diff_ids do not match the layers");
    std::string config_name = std::string(digest_hex(m.config.digest)) + ".json";
    if (written.insert(config_name).second)
      TRY_CTX(sink.add_file(config_name, svc.content().blob_path(m.config.digest), m.config.size), what);
    Json layers = Json::array();
    for (size_t i = 0; i < m.layers.size(); i++) {
      const std::string& diff_id = s.img.config.diff_ids[i];
      std::string name = std::string(digest_hex(diff_id)) + ".tar";
      layers.push_back(name);
      if (!written.insert(name).second) continue;
      ASSIGN_OR_RETURN(LayerFile f, LayerFile::make(svc, m.layers[i], diff_id));
      TRY_CTX(sink.add_file(name, f.path(), f.size()), what);
    }
    Json tags = Json::array();
    if (!s.img.name.empty()) {
      auto ref = parse_reference(s.img.name);
      if (ref && !ref->tag.empty() && ref->digest.empty()) {
        tags.push_back(ref->str());
        if (!m.layers.empty())
          repositories[ref->repository()][ref->tag] = std::string(digest_hex(s.img.config.diff_ids.back()));
      }
    }
    manifest.push_back({{"Config", config_name}, {"RepoTags", tags}, {"Layers", layers}});
  }
  TRY(sink.add_bytes("manifest.json", manifest.dump()));
  if (!repositories.empty()) TRY(sink.add_bytes("repositories", repositories.dump()));
  return ok();
}

}  // namespace

Result<ArchiveFormat> parse_archive_format(std::string_view name) {
  if (name == "docker-archive") return ArchiveFormat::kDockerArchive;
  if (name == "oci-archive") return ArchiveFormat::kOciArchive;
  if (name == "oci-dir") return ArchiveFormat::kOciDir;
  return Error("format \"" + std::string(name) + "\": expected docker-archive, oci-archive or oci-dir");
}

Status save_images(ImageService& svc, const std::vector<std::string>& images, ArchiveFormat format,
                   int out_fd) {
  if (format == ArchiveFormat::kOciDir) return Error("save: oci-dir is written to a directory, not a stream");
  // Blobs being copied cannot be pruned under us (an `image rm` of a saved image waits).
  ASSIGN_OR_RETURN(ContentStore::Lease lease, svc.content().lease());
  ASSIGN_OR_RETURN(std::vector<SavedImage> saved, resolve(svc, images));
  ASSIGN_OR_RETURN(tar::Writer w, tar::Writer::open(out_fd));
  TarSink sink(std::move(w));
  if (format == ArchiveFormat::kOciArchive)
    TRY_CTX(write_oci(svc, saved, sink), "save oci-archive");
  else
    TRY_CTX(write_docker(svc, saved, sink), "save docker-archive");
  return sink.close();
}

Status save_oci_dir(ImageService& svc, const std::vector<std::string>& images, const std::string& dir) {
  ASSIGN_OR_RETURN(ContentStore::Lease lease, svc.content().lease());
  ASSIGN_OR_RETURN(std::vector<SavedImage> saved, resolve(svc, images));
  if (fs::exists(dir)) return Error("save oci-dir " + dir + ": already exists", EEXIST);
  std::string tmp = dir + ".tmp-XXXXXX";
  if (::mkdtemp(tmp.data()) == nullptr) return Error::sys("save oci-dir: create " + tmp);
  Cleanup remove_tmp([&] { (void)fs::remove_tree(tmp); });
  DirSink sink(tmp);
  TRY_CTX(write_oci(svc, saved, sink), "save oci-dir " + dir);
  if (::chmod(tmp.c_str(), 0755) != 0) return Error::sys("save oci-dir: chmod " + tmp);
  if (::rename(tmp.c_str(), dir.c_str()) != 0)
    return Error::sys("save oci-dir: rename " + tmp + " to " + dir);
  remove_tmp.cancel();
  return ok();
}

}  // namespace strata::image
