#include "image/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "base/digest.h"
#include "base/fd.h"
#include "base/fs.h"
#include "image/archive_tar.h"
#include "image/file_lock.h"

namespace strata::image {
namespace {

#define ASSERT_OK(expr)                             \
  do {                                              \
    auto s_ = (expr);                               \
    ASSERT_TRUE(s_.ok()) << s_.error().to_string(); \
  } while (0)

// A tar (optionally gzip-compressed) of name -> content, built with libarchive in memory.
std::string make_tar(const std::vector<std::pair<std::string, std::string>>& files, bool gzip = false,
                     const std::vector<std::pair<std::string, std::string>>& symlinks = {}) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (gzip) archive_write_add_filter_gzip(a);
  archive_write_set_bytes_in_last_block(a, 1);  // the same tar with and without gzip
  archive_write_open(
      a, &out, nullptr,
      [](archive*, void* p, const void* buf, size_t n) -> la_ssize_t {
        static_cast<std::string*>(p)->append(static_cast<const char*>(buf), n);
        return static_cast<la_ssize_t>(n);
      },
      nullptr);
  for (const auto& [name, data] : files) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    archive_write_header(a, e);
    archive_write_data(a, data.data(), data.size());
    archive_entry_free(e);
  }
  for (const auto& [name, target] : symlinks) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, AE_IFLNK);
    archive_entry_set_perm(e, 0777);
    archive_entry_set_symlink(e, target.c_str());
    archive_write_header(a, e);
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

class ArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-archive-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto a = ImageService::open(dir_ + "/a");
    ASSERT_TRUE(a.ok()) << a.error().to_string();
    a_.emplace(std::move(*a));
    auto b = ImageService::open(dir_ + "/b");
    ASSERT_TRUE(b.ok()) << b.error().to_string();
    b_.emplace(std::move(*b));
  }
  void TearDown() override { ASSERT_TRUE(fs::remove_tree(dir_).ok()); }

  // An image of two layers (the first gzip-compressed, the second not) stored in `svc`.
  LocalImage make_image(ImageService& svc, const std::string& name, const std::string& text) {
    std::string l1 = make_tar({{"etc/hello", "hello " + text + "\n"}});
    std::string l1gz = make_tar({{"etc/hello", "hello " + text + "\n"}}, true);
    std::string l2 = make_tar({{"etc/second", "second layer of " + text + "\n"}});
    nlohmann::json cfg = {
        {"architecture", "amd64"},
        {"os", "linux"},
        {"config", {{"Cmd", {"cat", "/etc/hello"}}}},
        {"rootfs", {{"type", "layers"}, {"diff_ids", {sha256_digest(l1), sha256_digest(l2)}}}}};
    std::string config = cfg.dump();
    nlohmann::json m = {
        {"schemaVersion", 2},
        {"mediaType", media_type::kOciManifest},
        {"config",
         {{"mediaType", media_type::kOciConfig}, {"digest", sha256_digest(config)}, {"size", config.size()}}},
        {"layers",
         {{{"mediaType", media_type::kOciLayerGzip}, {"digest", sha256_digest(l1gz)}, {"size", l1gz.size()}},
          {{"mediaType", media_type::kOciLayer}, {"digest", sha256_digest(l2)}, {"size", l2.size()}}}}};
    std::string manifest = m.dump();
    for (const auto& blob : {l1gz, l2, config, manifest}) EXPECT_TRUE(svc.content().put_blob(blob).ok());
    auto img = svc.store_image(name, sha256_digest(manifest));
    EXPECT_TRUE(img.ok()) << img.error().to_string();
    return *img;
  }

  Status save(ImageService& svc, const std::vector<std::string>& names, ArchiveFormat f,
              const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) return Error::sys("open " + path);
    return save_images(svc, names, f, fd.get());
  }
  Result<std::vector<LoadedImage>> load(ImageService& svc, const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return Error::sys("open " + path);
    return load_archive(svc, fd.get());
  }
  std::string read_layer_file(ImageService& svc, const LocalImage& img, size_t layer,
                              const std::string& file) {
    auto text = fs::read_file(svc.layer_dir(img.manifest.layers.at(layer).digest) + "/" + file);
    return text ? *text : "<missing: " + text.error().to_string() + ">";
  }
  // Nothing was stored: no record, no blob, no unpacked layer (nor its lock or recorded
  // diff_id), no staging, no ingest file left.
  void expect_empty(ImageService& svc) {
    EXPECT_TRUE(svc.list().empty());
    EXPECT_TRUE(fs::list_dir(svc.content().root() + "/images").empty());
    EXPECT_TRUE(fs::list_dir(svc.content().root() + "/blobs/sha256").empty());
    for (const auto& f : fs::list_dir(svc.content().root() + "/layers/sha256"))
      ADD_FAILURE() << "left in layers/sha256: " << f;
    EXPECT_TRUE(fs::list_dir(svc.content().root() + "/layers/tmp").empty());
    EXPECT_TRUE(fs::list_dir(svc.content().root() + "/ingest").empty());
  }
  // An OCI archive (index.json named `name`) of one image: its layers as given (plain tars),
  // a config whose rootfs.diff_ids are `diff_ids`. With as_dir, an OCI layout directory.
  std::string oci_archive(const std::string& file, const std::string& name,
                          const std::vector<std::string>& layers, const std::vector<std::string>& diff_ids,
                          bool as_dir = false) {
    nlohmann::json cfg = {
        {"architecture", "amd64"}, {"os", "linux"}, {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
    std::string config = cfg.dump();
    nlohmann::json descs = nlohmann::json::array();
    for (const auto& l : layers)
      descs.push_back(
          {{"mediaType", media_type::kOciLayer}, {"digest", sha256_digest(l)}, {"size", l.size()}});
    nlohmann::json m = {
        {"schemaVersion", 2},
        {"mediaType", media_type::kOciManifest},
        {"config",
         {{"mediaType", media_type::kOciConfig}, {"digest", sha256_digest(config)}, {"size", config.size()}}},
        {"layers", descs}};
    std::string manifest = m.dump();
    nlohmann::json index = {{"schemaVersion", 2},
                            {"manifests",
                             {{{"mediaType", media_type::kOciManifest},
                               {"digest", sha256_digest(manifest)},
                               {"size", manifest.size()},
                               {"annotations", {{"org.opencontainers.image.ref.name", name}}}}}}};
    auto blob = [](const std::string& data) {
      return "blobs/sha256/" + std::string(digest_hex(sha256_digest(data)));
    };
    std::vector<std::pair<std::string, std::string>> files = {
        {"oci-layout", R"({"imageLayoutVersion":"1.0.0"})"},
        {"index.json", index.dump()},
        {blob(config), config},
        {blob(manifest), manifest}};
    for (const auto& l : layers) files.emplace_back(blob(l), l);
    if (as_dir) {
      EXPECT_TRUE(fs::mkdir_p(file + "/blobs/sha256").ok());
      for (const auto& [path, data] : files) EXPECT_TRUE(fs::write_file_atomic(file + "/" + path, data).ok());
      return file;
    }
    EXPECT_TRUE(fs::write_file_atomic(file, make_tar(files)).ok());
    return file;
  }
  // Changes one byte of the first occurrence of `needle` in the file.
  void tamper(const std::string& path, const std::string& needle) {
    auto text = fs::read_file(path);
    ASSERT_TRUE(text.ok());
    size_t at = text->find(needle);
    ASSERT_NE(at, std::string::npos) << needle;
    (*text)[at] ^= 0x20;
    ASSERT_OK(fs::write_file_atomic(path, *text));
  }

  std::string dir_;
  std::optional<ImageService> a_, b_;
};

TEST_F(ArchiveTest, OciArchiveRoundTripPreservesDigests) {
  LocalImage orig = make_image(*a_, "localhost/app:1", "oci");
  std::string file = dir_ + "/oci.tar";
  ASSERT_OK(save(*a_, {"localhost/app:1"}, ArchiveFormat::kOciArchive, file));
  auto loaded = load(*b_, file);
  ASSERT_TRUE(loaded.ok()) << loaded.error().to_string();
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].name, "localhost/app:1");
  auto img = b_->get("localhost/app:1");
  ASSERT_TRUE(img.ok()) << img.error().to_string();
  EXPECT_EQ(img->digest, orig.digest);
  EXPECT_EQ(img->id, orig.id);
  ASSERT_EQ(img->manifest.layers.size(), 2u);
  EXPECT_EQ(img->manifest.layers[0].digest, orig.manifest.layers[0].digest);
  EXPECT_EQ(read_layer_file(*b_, *img, 0, "etc/hello"), "hello oci\n");
  EXPECT_EQ(read_layer_file(*b_, *img, 1, "etc/second"), "second layer of oci\n");
}

TEST_F(ArchiveTest, DockerArchiveRoundTripKeepsImageId) {
  LocalImage orig = make_image(*a_, "localhost/app:2", "docker");
  make_image(*a_, "localhost/other:1", "other");
  std::string file = dir_ + "/docker.tar";
  ASSERT_OK(save(*a_, {"localhost/app:2", "localhost/other:1"}, ArchiveFormat::kDockerArchive, file));
  // The layout docker writes: manifest.json with Config/RepoTags/Layers, uncompressed layers.
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto loaded = load_archive(*b_, fd);
  ::close(fd);
  ASSERT_TRUE(loaded.ok()) << loaded.error().to_string();
  ASSERT_EQ(loaded->size(), 2u);
  auto img = b_->get("localhost/app:2");
  ASSERT_TRUE(img.ok()) << img.error().to_string();
  EXPECT_EQ(img->id, orig.id);          // the config is kept byte for byte
  EXPECT_NE(img->digest, orig.digest);  // a new manifest over uncompressed layers
  for (const auto& l : img->manifest.layers) EXPECT_EQ(l.media_type, media_type::kOciLayer);
  EXPECT_EQ(img->manifest.layers[0].digest, orig.config.diff_ids[0]);
  EXPECT_EQ(read_layer_file(*b_, *img, 0, "etc/hello"), "hello docker\n");
  auto other = b_->get("localhost/other:1");
  ASSERT_TRUE(other.ok()) << other.error().to_string();
  EXPECT_EQ(read_layer_file(*b_, *other, 1, "etc/second"), "second layer of other\n");
}

TEST_F(ArchiveTest, OciDirRoundTrip) {
  LocalImage orig = make_image(*a_, "localhost/app:3", "dir");
  std::string out = dir_ + "/layout";
  ASSERT_OK(save_oci_dir(*a_, {orig.id}, out));
  EXPECT_TRUE(fs::exists(out + "/oci-layout"));
  EXPECT_TRUE(fs::exists(out + "/blobs/sha256/" + std::string(digest_hex(orig.digest))));
  EXPECT_FALSE(save_oci_dir(*a_, {orig.id}, out).ok());  // refuses to overwrite
  auto loaded = load_oci_dir(*b_, out);
  ASSERT_TRUE(loaded.ok()) << loaded.error().to_string();
  auto img = b_->get("localhost/app:3");
  ASSERT_TRUE(img.ok()) << img.error().to_string();
  EXPECT_EQ(img->digest, orig.digest);
}

TEST_F(ArchiveTest, TamperedLayerStoresNothing) {
  make_image(*a_, "localhost/app:4", "tamper");
  for (auto f : {ArchiveFormat::kDockerArchive, ArchiveFormat::kOciArchive}) {
    std::string file = dir_ + "/t.tar";
    ASSERT_OK(save(*a_, {"localhost/app:4"}, f, file));
    // The uncompressed second layer's content is in both archives as plain bytes.
    tamper(file, "second layer of tamper");
    auto loaded = load(*b_, file);
    ASSERT_FALSE(loaded.ok());
    EXPECT_NE(loaded.error().message().find("digest"), std::string::npos) << loaded.error().message();
    expect_empty(*b_);
  }
}

TEST_F(ArchiveTest, TruncatedArchiveStoresNothing) {
  make_image(*a_, "localhost/app:5", "truncate");
  for (auto f : {ArchiveFormat::kDockerArchive, ArchiveFormat::kOciArchive}) {
    std::string file = dir_ + "/t.tar";
    ASSERT_OK(save(*a_, {"localhost/app:5"}, f, file));
    auto text = fs::read_file(file);
    ASSERT_TRUE(text.ok());
    // Cut inside the last entry (index.json / manifest.json), then inside a layer.
    for (size_t cut : {text->size() - 1500, text->size() / 2}) {
      ASSERT_OK(fs::write_file_atomic(file, text->substr(0, cut)));
      auto loaded = load(*b_, file);
      ASSERT_FALSE(loaded.ok()) << "cut at " << cut;
      expect_empty(*b_);
    }
  }
}

TEST_F(ArchiveTest, EscapingEntryIsRefused) {
  std::string file = dir_ + "/evil.tar";
  ASSERT_OK(fs::write_file_atomic(file, make_tar({{"../evil", "x"}, {"manifest.json", "[]"}})));
  auto loaded = load(*b_, file);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().message().find("escapes"), std::string::npos) << loaded.error().message();
  EXPECT_FALSE(fs::exists(dir_ + "/b/layers/evil"));
  expect_empty(*b_);
  ASSERT_OK(fs::write_file_atomic(file, make_tar({{"/abs", "x"}})));
  EXPECT_FALSE(load(*b_, file).ok());
}

// The older `docker save` layout: <id>/layer.tar, a layer shared with an earlier image written
// as a symlink to it, and RepoTags null for an image saved by id.
TEST_F(ArchiveTest, DockerLayoutWithSymlinkedLayerAndNoTags) {
  std::string layer = make_tar({{"etc/linked", "through a symlink\n"}});
  nlohmann::json cfg = {{"architecture", "amd64"},
                        {"os", "linux"},
                        {"rootfs", {{"type", "layers"}, {"diff_ids", {sha256_digest(layer)}}}}};
  std::string config = cfg.dump();
  nlohmann::json manifest =
      nlohmann::json::array({{{"Config", "cfg.json"}, {"RepoTags", nullptr}, {"Layers", {"def/layer.tar"}}}});
  std::string file = dir_ + "/old.tar";
  ASSERT_OK(fs::write_file_atomic(
      file, make_tar({{"abc/layer.tar", layer}, {"cfg.json", config}, {"manifest.json", manifest.dump()}},
                     false, {{"def/layer.tar", "../abc/layer.tar"}})));
  auto loaded = load(*b_, file);
  ASSERT_TRUE(loaded.ok()) << loaded.error().to_string();
  ASSERT_EQ(loaded->size(), 1u);
  std::string id = sha256_digest(config);
  EXPECT_EQ((*loaded)[0].id, id);
  EXPECT_EQ((*loaded)[0].name, "localhost/loaded:" + std::string(digest_hex(id)).substr(0, 12));
  auto img = b_->get((*loaded)[0].name);
  ASSERT_TRUE(img.ok()) << img.error().to_string();
  EXPECT_EQ(read_layer_file(*b_, *img, 0, "etc/linked"), "through a symlink\n");

  // A link out of the archive is refused.
  ASSERT_OK(fs::write_file_atomic(
      file, make_tar({{"manifest.json", manifest.dump()}}, false, {{"def/layer.tar", "../../etc/passwd"}})));
  loaded = load(*b_, file);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().message().find("escapes the archive"), std::string::npos)
      << loaded.error().message();
}

// Digests all match but a layer cannot be unpacked: what was stored is undone, and the image
// that had the name before keeps it.
TEST_F(ArchiveTest, FailedUnpackRollsBackAndKeepsThePreviousImage) {
  LocalImage before = make_image(*b_, "localhost/app:6", "before");
  size_t blobs_before = fs::list_dir(b_->content().root() + "/blobs/sha256").size();
  std::string layer = make_tar({{"ok", "x"}, {"../../outside", "y"}});
  nlohmann::json cfg = {{"architecture", "amd64"},
                        {"os", "linux"},
                        {"rootfs", {{"type", "layers"}, {"diff_ids", {sha256_digest(layer)}}}}};
  std::string config = cfg.dump();
  nlohmann::json m = {
      {"schemaVersion", 2},
      {"mediaType", media_type::kOciManifest},
      {"config",
       {{"mediaType", media_type::kOciConfig}, {"digest", sha256_digest(config)}, {"size", config.size()}}},
      {"layers",
       {{{"mediaType", media_type::kOciLayer}, {"digest", sha256_digest(layer)}, {"size", layer.size()}}}}};
  std::string manifest = m.dump();
  nlohmann::json index = {{"schemaVersion", 2},
                          {"manifests",
                           {{{"mediaType", media_type::kOciManifest},
                             {"digest", sha256_digest(manifest)},
                             {"size", manifest.size()},
                             {"annotations", {{"org.opencontainers.image.ref.name", "localhost/app:6"}}}}}}};
  auto blob = [](const std::string& data) {
    return "blobs/sha256/" + std::string(digest_hex(sha256_digest(data)));
  };
  std::string file = dir_ + "/bad-layer.tar";
  ASSERT_OK(fs::write_file_atomic(file, make_tar({{"oci-layout", R"({"imageLayoutVersion":"1.0.0"})"},
                                                  {"index.json", index.dump()},
                                                  {blob(layer), layer},
                                                  {blob(config), config},
                                                  {blob(manifest), manifest}})));
  auto loaded = load(*b_, file);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().message().find("outside"), std::string::npos) << loaded.error().message();
  auto img = b_->get("localhost/app:6");
  ASSERT_TRUE(img.ok()) << img.error().to_string();
  EXPECT_EQ(img->digest, before.digest);
  EXPECT_EQ(fs::list_dir(b_->content().root() + "/blobs/sha256").size(), blobs_before);
  EXPECT_FALSE(b_->content().has(sha256_digest(layer)));
  EXPECT_FALSE(fs::exists(dir_ + "/outside"));
}

// rootfs.diff_ids name the uncompressed layers; an image whose config names other content is
// refused while its layers are unpacked (each blob's own digest is right: only the diff_id
// lies), the error naming the layer and both digests, and nothing is stored.
TEST_F(ArchiveTest, WrongDiffIdStoresNothing) {
  std::string good = make_tar({{"etc/good", "good layer\n"}});
  std::string bad = make_tar({{"etc/evil", "not what the config says\n"}});
  std::string claimed = sha256_digest(make_tar({{"etc/evil", "what the config says\n"}}));
  // The bad layer alone, and after a good one (whose unpacked directory must go too).
  for (auto layers : {std::vector<std::string>{bad}, std::vector<std::string>{good, bad}}) {
    std::vector<std::string> ids;
    for (const auto& l : layers) ids.push_back(l == bad ? claimed : sha256_digest(l));
    for (bool as_dir : {false, true}) {
      SCOPED_TRACE(as_dir ? "OCI layout directory" : "oci-archive");
      std::string src = oci_archive(dir_ + (as_dir ? "/bad-dir" : "/bad-diff.tar"), "localhost/evil:1",
                                    layers, ids, as_dir);
      auto loaded = as_dir ? load_oci_dir(*b_, src) : load(*b_, src);
      ASSERT_FALSE(loaded.ok()) << "an image whose diff_ids lie was stored";
      const std::string& m = loaded.error().message();
      EXPECT_NE(m.find("diff_id mismatch"), std::string::npos) << m;
      EXPECT_NE(m.find("layer " + sha256_digest(bad)), std::string::npos) << m;
      EXPECT_NE(m.find(sha256_digest(bad) + ", the image config's rootfs.diff_ids says " + claimed),
                std::string::npos)
          << m;
      expect_empty(*b_);
      ASSERT_TRUE(fs::remove_tree(src).ok());
    }
  }
  // A docker-archive has no other digest for a layer than its diff_id: the lie is found while
  // the archive is planned, before anything is stored.
  nlohmann::json cfg = {
      {"architecture", "amd64"}, {"os", "linux"}, {"rootfs", {{"type", "layers"}, {"diff_ids", {claimed}}}}};
  nlohmann::json manifest = nlohmann::json::array(
      {{{"Config", "config.json"}, {"RepoTags", {"localhost/evil:2"}}, {"Layers", {"layer.tar"}}}});
  std::string file = dir_ + "/docker.tar";
  ASSERT_OK(fs::write_file_atomic(
      file, make_tar({{"manifest.json", manifest.dump()}, {"config.json", cfg.dump()}, {"layer.tar", bad}})));
  auto loaded = load(*b_, file);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().message().find("content has digest " + sha256_digest(bad) +
                                          ", the config's diff_id is " + claimed),
            std::string::npos)
      << loaded.error().message();
  expect_empty(*b_);
}

// The same blob, already unpacked for an honest image, named by a second image with a wrong
// diff_id: refused as well (a directory that exists is no excuse), and the honest image keeps
// its layer.
TEST_F(ArchiveTest, WrongDiffIdForAnUnpackedBlobIsRefused) {
  std::string layer = make_tar({{"etc/shared", "shared\n"}});
  auto honest =
      load(*b_, oci_archive(dir_ + "/honest.tar", "localhost/honest:1", {layer}, {sha256_digest(layer)}));
  ASSERT_TRUE(honest.ok()) << honest.error().to_string();
  std::string lie = sha256_digest("something else");
  auto loaded = load(*b_, oci_archive(dir_ + "/liar.tar", "localhost/liar:1", {layer}, {lie}));
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().message().find("diff_id mismatch"), std::string::npos) << loaded.error().message();
  EXPECT_NE(loaded.error().message().find(lie), std::string::npos) << loaded.error().message();
  EXPECT_FALSE(b_->get("localhost/liar:1").ok());
  auto img = b_->get("localhost/honest:1");
  ASSERT_TRUE(img.ok()) << img.error().to_string();
  EXPECT_EQ(read_layer_file(*b_, *img, 0, "etc/shared"), "shared\n");
  EXPECT_EQ(b_->list().size(), 1u);
  // Removing the image removes its layer with the diff_id recorded beside it.
  ASSERT_TRUE(b_->remove("localhost/honest:1").ok());
  expect_empty(*b_);
}

// What a killed unpack or pull leaves (a lock file, a recorded diff_id without its directory, a
// half-unpacked tree under tmp/) goes with the next prune; a running unpack's tree does not.
TEST_F(ArchiveTest, PruneRemovesWhatAKilledUnpackLeft) {
  std::string layers = b_->content().root() + "/layers/";
  std::string gone(64, 'a');
  auto blob = b_->content().put_blob("a layer being unpacked");
  ASSERT_TRUE(blob.ok());
  std::string running(digest_hex(*blob));
  ASSERT_OK(fs::write_file_atomic(layers + "sha256/" + gone + ".lock", ""));
  ASSERT_OK(fs::write_file_atomic(layers + "sha256/" + gone + ".diff_id", sha256_digest("x")));
  ASSERT_OK(fs::mkdir_p(layers + "tmp/" + gone + ".123/etc"));
  auto lock = detail::FileLock::acquire(layers + "sha256/" + running + ".lock");
  ASSERT_TRUE(lock.ok());
  ASSERT_OK(fs::mkdir_p(layers + "tmp/" + running + ".456/etc"));
  ASSERT_TRUE(b_->prune().ok());
  EXPECT_EQ(fs::list_dir(layers + "tmp"), std::vector<std::string>{running + ".456"});
  EXPECT_EQ(fs::list_dir(layers + "sha256"), std::vector<std::string>{running + ".lock"});
  lock->release();
  ASSERT_TRUE(b_->prune().ok());
  expect_empty(*b_);  // the blob too: no image references it
}

// A layer directory unpacked before diff_ids were recorded beside it gets its diff_id from its
// blob, once, when an image using it is looked up; a record whose config lies is refused then.
TEST_F(ArchiveTest, LayerUnpackedBeforeDiffIdsWereRecorded) {
  LocalImage img = make_image(*b_, "localhost/old:1", "old");
  std::string l0 = img.manifest.layers[0].digest;
  std::string id_file = b_->layer_dir(l0) + ".diff_id";
  ASSERT_TRUE(fs::exists(id_file));
  ASSERT_EQ(::unlink(id_file.c_str()), 0);
  auto again = b_->get("localhost/old:1");
  ASSERT_TRUE(again.ok()) << again.error().to_string();
  auto recorded = fs::read_file(id_file);
  ASSERT_TRUE(recorded.ok());
  EXPECT_EQ(*recorded, img.config.diff_ids[0]) << "hashed from the blob (gzip-compressed)";
  // A record an older strata stored for an image whose config lies, its layer unpacked then.
  std::string layer = make_tar({{"etc/x", "x\n"}});
  nlohmann::json cfg = {{"architecture", "amd64"},
                        {"os", "linux"},
                        {"rootfs", {{"type", "layers"}, {"diff_ids", {sha256_digest("lie")}}}}};
  std::string config = cfg.dump();
  nlohmann::json m = {
      {"schemaVersion", 2},
      {"mediaType", media_type::kOciManifest},
      {"config",
       {{"mediaType", media_type::kOciConfig}, {"digest", sha256_digest(config)}, {"size", config.size()}}},
      {"layers",
       {{{"mediaType", media_type::kOciLayer}, {"digest", sha256_digest(layer)}, {"size", layer.size()}}}}};
  std::string manifest = m.dump();
  for (const auto& blob : {layer, config, manifest}) ASSERT_OK(b_->content().put_blob(blob));
  ASSERT_OK(fs::mkdir_p(b_->layer_dir(sha256_digest(layer)) + "/etc"));
  ASSERT_OK(b_->content().put_image({"localhost/x:1",
                                     sha256_digest(manifest),
                                     {sha256_digest(manifest), sha256_digest(config), sha256_digest(layer)},
                                     ""}));
  auto lied = b_->get("localhost/x:1");
  ASSERT_FALSE(lied.ok()) << "a stored image whose diff_id lies";
  EXPECT_NE(lied.error().message().find("diff_id mismatch"), std::string::npos) << lied.error().message();
  EXPECT_NE(lied.error().message().find(sha256_digest("lie")), std::string::npos) << lied.error().message();
}

TEST_F(ArchiveTest, MalformedManifestJsonIsAnError) {
  std::string file = dir_ + "/bad.tar";
  ASSERT_OK(fs::write_file_atomic(file, make_tar({{"manifest.json", "[{\"Config\": 5}]"}})));
  auto loaded = load(*b_, file);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().message().find("manifest.json"), std::string::npos) << loaded.error().message();
  expect_empty(*b_);
}

TEST_F(ArchiveTest, ImportRootfsMakesOneLayerImage) {
  std::string file = dir_ + "/rootfs.tar.gz";
  ASSERT_OK(fs::write_file_atomic(
      file, make_tar({{"./bin/tool", "#!/bin/sh\n"}, {"./etc/os", "imported\n"}}, true)));
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  auto r = import_rootfs(*b_, fd.get(), "localhost/imported:x");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  auto img = b_->get("localhost/imported:x");
  ASSERT_TRUE(img.ok()) << img.error().to_string();
  EXPECT_EQ(img->id, r->id);
  ASSERT_EQ(img->manifest.layers.size(), 1u);
  EXPECT_EQ(img->config.cmd, std::vector<std::string>{"sh"});
  EXPECT_EQ(img->config.diff_ids[0], img->manifest.layers[0].digest);
  EXPECT_EQ(read_layer_file(*b_, *img, 0, "etc/os"), "imported\n");
}

TEST_F(ArchiveTest, ImportOfEscapingTarStoresNothing) {
  std::string file = dir_ + "/evil.tar";
  ASSERT_OK(fs::write_file_atomic(file, make_tar({{"../../escape", "x"}})));
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  auto r = import_rootfs(*b_, fd.get(), "");
  ASSERT_FALSE(r.ok());
  expect_empty(*b_);
}

TEST_F(ArchiveTest, ExportTreeWritesRelativeNames) {
  std::string tree = dir_ + "/tree";
  ASSERT_TRUE(fs::mkdir_p(tree + "/etc").ok());
  ASSERT_OK(fs::write_file_atomic(tree + "/etc/written", "by the container\n"));
  ASSERT_EQ(::symlink("/etc/written", (tree + "/link").c_str()), 0);
  std::string file = dir_ + "/export.tar";
  {
    UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    ASSERT_OK(export_tree(tree, fd.get()));
  }
  UniqueFd in(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  auto a = tar::open_reader(in.get());
  ASSERT_TRUE(a.ok());
  std::map<std::string, std::string> seen;
  archive_entry* e = nullptr;
  while (archive_read_next_header(a->get(), &e) == ARCHIVE_OK) {
    std::string data(static_cast<size_t>(archive_entry_size(e)), '\0');
    if (!data.empty()) archive_read_data(a->get(), data.data(), data.size());
    const char* link = archive_entry_symlink(e);
    seen[archive_entry_pathname(e)] = link != nullptr ? std::string("-> ") + link : data;
  }
  EXPECT_EQ(seen["./etc/written"], "by the container\n");
  EXPECT_EQ(seen["./link"], "-> /etc/written");
  EXPECT_EQ(seen.count("./"), 1u);  // the root itself, as podman export writes it
  EXPECT_EQ(seen.count("./etc/"), 1u);
}

TEST(ArchiveEntryName, CleansAndRefuses) {
  EXPECT_EQ(*tar::entry_name("./a//b/"), "a/b");
  EXPECT_FALSE(tar::entry_name("/etc/passwd").ok());
  EXPECT_FALSE(tar::entry_name("a/../../b").ok());
  EXPECT_FALSE(tar::entry_name("./").ok());
}

}  // namespace
}  // namespace strata::image
