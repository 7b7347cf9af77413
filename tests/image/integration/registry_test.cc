// The registry client against the real Debian docker-registry (distribution 2.8): anonymous,
// htpasswd, token auth (with a token server of ours) and HTTPS; and against scripted servers for
// the failures a real registry will not produce on demand (5xx, cut connections, redirects,
// wrong content).
#include "image/registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/digest.h"
#include "base/fs.h"
#include "image/images.h"
#include "image/store.h"
#include "registry_fixture.h"

namespace strata::image {
namespace {

using namespace registry_test;
using testing::HasSubstr;

constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";

// How many requests the registry completed with this method and a URI starting so (its log has
// one "response completed" line per request, with http.request.method and http.request.uri).
size_t requests(const RegistryProcess& reg, const std::string& method, const std::string& uri_prefix) {
  size_t n = 0;
  std::string log = reg.log(), m = "http.request.method=" + method + " ",
              u = "http.request.uri=\"" + uri_prefix;
  for (size_t pos = 0, end; pos < log.size(); pos = end + 1) {
    end = log.find('\n', pos);
    if (end == std::string::npos) end = log.size();
    std::string_view line(log.data() + pos, end - pos);
    if (line.find("msg=\"response completed") != std::string_view::npos &&
        line.find(m) != std::string_view::npos && line.find(u) != std::string_view::npos)
      ++n;
  }
  return n;
}

struct TestImage {
  std::string config, config_path, config_digest;
  std::string layer, layer_path, layer_digest;
  std::string manifest, manifest_digest;
};

// A config, a 3 MiB layer of pseudo-random bytes and the OCI manifest naming them.
TestImage make_image(const std::string& dir, uint32_t seed = 1) {
  TestImage t;
  t.config = R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"seed":)" +
             std::to_string(seed) + "}";
  t.layer.resize(3 << 20);
  uint32_t x = seed * 2654435761u + 1;
  for (char& c : t.layer) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  t.config_digest = sha256_digest(t.config);
  t.layer_digest = sha256_digest(t.layer);
  t.config_path = dir + "/config-" + std::to_string(seed);
  t.layer_path = dir + "/layer-" + std::to_string(seed);
  write_text(t.config_path, t.config);
  write_text(t.layer_path, t.layer);
  nlohmann::json m = {{"schemaVersion", 2},
                      {"mediaType", kOciManifest},
                      {"config",
                       {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                        {"digest", t.config_digest},
                        {"size", t.config.size()}}},
                      {"layers",
                       {{{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
                         {"digest", t.layer_digest},
                         {"size", t.layer.size()}}}}};
  t.manifest = m.dump();
  t.manifest_digest = sha256_digest(t.manifest);
  return t;
}

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auth_file_ = tmp_.path() + "/auth.json";
    ASSERT_TRUE(fs::mkdir_p(tmp_.path() + "/reg").ok());
    auto s = ContentStore::open(tmp_.path() + "/store");
    ASSERT_TRUE(s.ok());
    store_.emplace(std::move(*s));
  }
  RegistryOptions opts() const {
    RegistryOptions o;
    o.auth_file = auth_file_;
    o.certs_dir = tmp_.path() + "/certs.d";
    o.retries = 2;
    o.retry_backoff = std::chrono::milliseconds(10);
    o.timeout = std::chrono::milliseconds(10000);
    return o;
  }
  void push_image(RegistryClient& c, const TestImage& img, const std::string& repo = "team/app",
                  const std::string& tag = "v1") {
    Status st = c.push_blob(repo, img.config_digest, img.config_path);
    ASSERT_TRUE(st.ok()) << st.error().to_string();
    st = c.push_blob(repo, img.layer_digest, img.layer_path);
    ASSERT_TRUE(st.ok()) << st.error().to_string();
    st = c.put_manifest(repo, tag, img.manifest, kOciManifest);
    ASSERT_TRUE(st.ok()) << st.error().to_string();
  }
  void expect_store_empty() {
    EXPECT_TRUE(fs::list_dir(store_->root() + "/blobs/sha256").empty());
    for (const auto& f : fs::list_dir(store_->root() + "/ingest"))
      EXPECT_NE(f.find(".lock"), std::string::npos) << "partial data left: " << f;
  }

  TempDir tmp_;
  std::string auth_file_;
  std::optional<ContentStore> store_;
};

TEST_F(RegistryTest, AnonymousPushPullRoundTrip) {
  RegistryProcess reg(tmp_.path() + "/reg", {});
  ASSERT_TRUE(reg.ready()) << reg.log();
  RegistryClient c(reg.domain(), opts());
  ASSERT_TRUE(c.ping().ok());
  TestImage img = make_image(tmp_.path());
  auto has = c.has_blob("team/app", img.layer_digest);
  ASSERT_TRUE(has.ok()) << has.error().to_string();
  EXPECT_FALSE(*has);
  push_image(c, img);
  EXPECT_TRUE(*c.has_blob("team/app", img.layer_digest));
  // A blob the repository has is skipped: a HEAD, no upload session.
  size_t uploads = requests(reg, "POST", "/v2/team/app/blobs/uploads/");
  size_t heads = requests(reg, "HEAD", "/v2/team/app/blobs/" + img.layer_digest);
  EXPECT_TRUE(c.push_blob("team/app", img.layer_digest, img.layer_path).ok());
  EXPECT_EQ(requests(reg, "POST", "/v2/team/app/blobs/uploads/"), uploads) << "present: no upload started";
  EXPECT_EQ(requests(reg, "HEAD", "/v2/team/app/blobs/" + img.layer_digest), heads + 1) << reg.log();

  auto m = c.get_manifest("team/app", "v1",
                          std::string(kOciManifest) + ", application/vnd.oci.image.index.v1+json");
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  EXPECT_EQ(m->body, img.manifest);
  EXPECT_EQ(m->media_type, kOciManifest);
  EXPECT_EQ(m->digest, img.manifest_digest);
  auto by_digest = c.get_manifest("team/app", img.manifest_digest, kOciManifest);
  ASSERT_TRUE(by_digest.ok()) << by_digest.error().to_string();
  EXPECT_EQ(by_digest->body, img.manifest);

  std::vector<std::pair<uint64_t, uint64_t>> progress;
  auto record = [&](uint64_t done, uint64_t total) { progress.emplace_back(done, total); };
  Status st =
      c.fetch_blob("team/app", img.config_digest, static_cast<int64_t>(img.config.size()), *store_, record);
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  st = c.fetch_blob("team/app", img.layer_digest, static_cast<int64_t>(img.layer.size()), *store_, record);
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_EQ(*store_->read_blob(img.config_digest, 1 << 20), img.config);
  EXPECT_EQ(*store_->read_blob(img.layer_digest, 8 << 20), img.layer);
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back().first, img.layer.size());
  EXPECT_EQ(progress.back().second, img.layer.size());

  // A cross-repository mount: the blob appears in the other repository without an upload (one
  // POST with mount=, answered 201; no PATCH or PUT of data).
  st = c.push_blob("other/app", img.layer_digest, img.layer_path, "team/app");
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_TRUE(*c.has_blob("other/app", img.layer_digest));
  EXPECT_EQ(requests(reg, "POST",
                     "/v2/other/app/blobs/uploads/?mount=sha256%3A" + img.layer_digest.substr(7) +
                         "&from=team%2Fapp"),
            1u)
      << reg.log();
  EXPECT_EQ(requests(reg, "PATCH", "/v2/other/app/blobs/uploads/"), 0u);
  EXPECT_EQ(requests(reg, "PUT", "/v2/other/app/blobs/uploads/"), 0u);
}

TEST_F(RegistryTest, ResumesAHalfFetchedBlob) {
  RegistryProcess reg(tmp_.path() + "/reg", {});
  ASSERT_TRUE(reg.ready()) << reg.log();
  RegistryClient c(reg.domain(), opts());
  TestImage img = make_image(tmp_.path());
  push_image(c, img);
  const size_t half = img.layer.size() / 2;
  {
    auto w = store_->writer(img.layer_digest, static_cast<int64_t>(img.layer.size()));
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(w->write(img.layer.data(), half).ok());
  }
  std::vector<uint64_t> seen;
  Status st = c.fetch_blob("team/app", img.layer_digest, static_cast<int64_t>(img.layer.size()), *store_,
                           [&](uint64_t done, uint64_t) { seen.push_back(done); });
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  ASSERT_FALSE(seen.empty());
  // Had the registry not honoured the Range request, the writer would have restarted from 0.
  EXPECT_GT(seen.front(), half);
  EXPECT_EQ(*store_->read_blob(img.layer_digest, 8 << 20), img.layer);
}

TEST_F(RegistryTest, ParallelFetchesWithOneClient) {
  RegistryProcess reg(tmp_.path() + "/reg", {});
  ASSERT_TRUE(reg.ready()) << reg.log();
  RegistryClient c(reg.domain(), opts());
  std::vector<TestImage> imgs;
  for (uint32_t i = 1; i <= 4; ++i) {
    imgs.push_back(make_image(tmp_.path(), i));
    ASSERT_TRUE(c.push_blob("team/app", imgs.back().layer_digest, imgs.back().layer_path).ok());
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (const auto& img : imgs)
    threads.emplace_back([&, &img = img] {
      if (!c.fetch_blob("team/app", img.layer_digest, static_cast<int64_t>(img.layer.size()), *store_, {})
               .ok())
        ++failures;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  for (const auto& img : imgs) EXPECT_EQ(*store_->read_blob(img.layer_digest, 8 << 20), img.layer);
}

TEST_F(RegistryTest, HtpasswdBasicAuth) {
  std::string htpasswd = tmp_.path() + "/htpasswd";
  ASSERT_EQ(run("htpasswd -Bbn alice s3cret > " + htpasswd + " 2>/dev/null"), 0);
  RegistryConfig cfg;
  cfg.auth_yaml = "auth:\n  htpasswd:\n    realm: basic-realm\n    path: " + htpasswd + "\n";
  RegistryProcess reg(tmp_.path() + "/reg", cfg);
  ASSERT_TRUE(reg.ready()) << reg.log();
  TestImage img = make_image(tmp_.path());
  {
    RegistryClient anon(reg.domain(), opts());
    Status st = anon.ping();
    ASSERT_FALSE(st.ok());
    EXPECT_THAT(st.error().message(), HasSubstr("login " + reg.domain() + ": GET /v2/: 401 Unauthorized"));
    EXPECT_THAT(st.error().message(), HasSubstr("strata login " + reg.domain()));
  }
  ASSERT_TRUE(save_credentials(auth_file_, reg.domain(), "alice", "wrong").ok());
  {
    RegistryClient bad(reg.domain(), opts());
    Status st = bad.push_blob("team/app", img.config_digest, img.config_path);
    ASSERT_FALSE(st.ok());
    EXPECT_THAT(st.error().message(), HasSubstr("401 Unauthorized"));
    EXPECT_THAT(st.error().message(), HasSubstr("credentials refused"));
  }
  ASSERT_TRUE(save_credentials(auth_file_, reg.domain(), "alice", "s3cret").ok());
  RegistryClient good(reg.domain(), opts());
  ASSERT_TRUE(good.ping().ok());
  push_image(good, img);
  auto m = good.get_manifest("team/app", "v1", kOciManifest);
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  EXPECT_EQ(m->body, img.manifest);
  Status st = good.fetch_blob("team/app", img.layer_digest, -1, *store_, {});
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_TRUE(store_->has(img.layer_digest));
}

TEST_F(RegistryTest, TokenAuth) {
  make_cert(tmp_.path(), "token", "DNS:token.strata.test");
  TokenServer tokens(read_text(tmp_.path() + "/token.key"), read_text(tmp_.path() + "/token.crt"),
                     "strata-issuer", "alice", "s3cret");
  RegistryConfig cfg;
  cfg.auth_yaml =
      "auth:\n  token:\n    realm: " + tokens.realm() +
      "\n    service: strata-registry\n    issuer: strata-issuer\n    rootcertbundle: " + tmp_.path() +
      "/token.crt\n";
  RegistryProcess reg(tmp_.path() + "/reg", cfg);
  ASSERT_TRUE(reg.ready()) << reg.log();
  TestImage img = make_image(tmp_.path());

  ASSERT_TRUE(save_credentials(auth_file_, reg.domain(), "alice", "s3cret").ok());
  RegistryClient c(reg.domain(), opts());
  Status st = c.ping();
  ASSERT_TRUE(st.ok()) << st.error().to_string() << "\n" << reg.log();
  push_image(c, img);
  auto m = c.get_manifest("team/app", "v1", kOciManifest);
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  st = c.fetch_blob("team/app", img.layer_digest, static_cast<int64_t>(img.layer.size()), *store_, {});
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  auto reqs = tokens.requests();
  ASSERT_FALSE(reqs.empty());
  for (const auto& r : reqs) {
    EXPECT_EQ(r.header("authorization"), "Basic " + base64_encode("alice:s3cret"));
    EXPECT_THAT(r.target, HasSubstr("service=strata-registry"));
  }
  // Tokens are cached per scope: more calls with known scopes ask for no new token.
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(*c.has_blob("team/app", img.layer_digest));
  EXPECT_EQ(tokens.requests().size(), reqs.size());

  {
    // Anonymous tokens allow pulling only.
    RegistryOptions o = opts();
    o.auth_file = tmp_.path() + "/none.json";
    RegistryClient anon(reg.domain(), o);
    auto am = anon.get_manifest("team/app", "v1", kOciManifest);
    ASSERT_TRUE(am.ok()) << am.error().to_string();
    Status push = anon.put_manifest("team/app", "v2", img.manifest, kOciManifest);
    ASSERT_FALSE(push.ok());
    EXPECT_THAT(push.error().message(),
                HasSubstr("push " + reg.domain() + "/team/app: manifest \"v2\": 401"));
    EXPECT_THAT(push.error().message(), HasSubstr("strata login"));
  }
  ASSERT_TRUE(save_credentials(auth_file_, reg.domain(), "alice", "nope").ok());
  RegistryClient bad(reg.domain(), opts());
  auto bm = bad.get_manifest("team/app", "v1", kOciManifest);
  ASSERT_FALSE(bm.ok());
  EXPECT_THAT(bm.error().message(), HasSubstr("token server http://"));
  EXPECT_THAT(bm.error().message(), HasSubstr("401 Unauthorized"));
  EXPECT_THAT(bm.error().message(), HasSubstr("strata login " + reg.domain()));
}

TEST_F(RegistryTest, HttpsWithASelfSignedCertificate) {
  make_cert(tmp_.path(), "server", "IP:127.0.0.1");
  RegistryConfig cfg;
  cfg.tls_cert = tmp_.path() + "/server.crt";
  cfg.tls_key = tmp_.path() + "/server.key";
  RegistryProcess reg(tmp_.path() + "/reg", cfg);
  ASSERT_TRUE(reg.ready()) << reg.log();
  TestImage img = make_image(tmp_.path());
  {
    RegistryClient c(reg.domain(), opts());
    Status st = c.ping();
    ASSERT_FALSE(st.ok());
    EXPECT_THAT(st.error().message(), HasSubstr("certificate verification failed"));
    EXPECT_THAT(st.error().message(), HasSubstr("self-signed"));
    EXPECT_THAT(st.error().message(), HasSubstr("--tls-verify=false"));
  }
  {
    RegistryOptions o = opts();
    o.tls_verify = false;
    RegistryClient c(reg.domain(), o);
    ASSERT_TRUE(c.ping().ok());
    push_image(c, img);
  }
  {
    RegistryOptions o = opts();
    o.ca_file = cfg.tls_cert;
    RegistryClient c(reg.domain(), o);
    auto m = c.get_manifest("team/app", "v1", kOciManifest);
    ASSERT_TRUE(m.ok()) << m.error().to_string();
    Status st =
        c.fetch_blob("team/app", img.layer_digest, static_cast<int64_t>(img.layer.size()), *store_, {});
    ASSERT_TRUE(st.ok()) << st.error().to_string();
  }
  {
    std::string d = tmp_.path() + "/certs.d/" + reg.domain();
    ASSERT_TRUE(fs::mkdir_p(d).ok());
    write_text(d + "/ca.crt", read_text(cfg.tls_cert));
    RegistryClient c(reg.domain(), opts());
    Status st = c.ping();
    EXPECT_TRUE(st.ok()) << st.error().to_string();
  }
}

TEST_F(RegistryTest, UnknownManifestAndBlobAreClearErrors) {
  RegistryProcess reg(tmp_.path() + "/reg", {});
  ASSERT_TRUE(reg.ready()) << reg.log();
  RegistryClient c(reg.domain(), opts());
  TestImage img = make_image(tmp_.path());
  push_image(c, img);
  auto m = c.get_manifest("team/app", "v9", kOciManifest);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().message(),
            "pull " + reg.domain() +
                "/team/app: manifest \"v9\": 404 Not Found (MANIFEST_UNKNOWN: manifest unknown)");
  std::string absent = sha256_digest("absent");
  Status st = c.fetch_blob("team/app", absent, 6, *store_, {});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(), "pull " + reg.domain() + "/team/app: blob " + absent +
                                      ": 404 Not Found (BLOB_UNKNOWN: blob unknown to registry)");
  expect_store_empty();
}

ScriptedReply server_error(const ScriptedRequest&) {
  return {500,
          {{"Content-Type", "application/json"}},
          R"({"errors":[{"code":"UNKNOWN","message":"disk on fire"}]})"};
}

TEST_F(RegistryTest, ServerErrorsAreRetriedThenReported) {
  ScriptedServer srv(server_error);
  RegistryClient c(srv.origin(), opts());
  std::string d = sha256_digest("blob");
  Status st = c.fetch_blob("team/app", d, 4, *store_, {});
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.error().message(), HasSubstr("pull " + srv.origin() + "/team/app: blob " + d +
                                              ": 500 Internal Server Error (UNKNOWN: disk on fire)"));
  EXPECT_THAT(st.error().message(), HasSubstr("gave up after 3 attempts"));
  EXPECT_EQ(srv.requests().size(), 3u) << "one attempt and two retries";
  expect_store_empty();
  auto m = c.get_manifest("team/app", "v1", kOciManifest);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.error().message(), HasSubstr("manifest \"v1\": 500 Internal Server Error"));
  EXPECT_EQ(srv.requests().size(), 6u);
}

TEST_F(RegistryTest, TransientFailuresThenSuccess) {
  std::atomic<int> n{0};
  std::string body = make_image(tmp_.path()).manifest;
  ScriptedServer srv([&](const ScriptedRequest&) -> ScriptedReply {
    if (n++ < 2) return {503, {}, "busy"};
    return {200, {{"Content-Type", kOciManifest}}, body};
  });
  RegistryClient c(srv.origin(), opts());
  auto m = c.get_manifest("team/app", "v1", kOciManifest);
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  EXPECT_EQ(m->body, body);
  EXPECT_EQ(srv.requests().size(), 3u);
}

// The connection drops half-way through a blob: the retry asks for the rest with a Range
// request and the blob is complete and verified at the end.
TEST_F(RegistryTest, CutDownloadResumesWithRange) {
  std::string blob(300000, '\0');
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>(i * 7);
  std::string d = sha256_digest(blob);
  ScriptedServer srv([&](const ScriptedRequest& r) -> ScriptedReply {
    std::string range = r.header("range");
    if (range.empty()) {
      ScriptedReply rep{200, {}, blob};
      rep.cut_after = 120000;
      return rep;
    }
    size_t from = std::stoul(range.substr(6));
    return {206,
            {{"Content-Range", "bytes " + std::to_string(from) + "-" + std::to_string(blob.size() - 1) + "/" +
                                   std::to_string(blob.size())}},
            blob.substr(from)};
  });
  RegistryClient c(srv.origin(), opts());
  Status st = c.fetch_blob("team/app", d, static_cast<int64_t>(blob.size()), *store_, {});
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  auto reqs = srv.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].header("range"), "");
  EXPECT_EQ(reqs[1].header("range"), "bytes=120000-");
  EXPECT_EQ(*store_->read_blob(d, 1 << 20), blob);
}

// Blob GETs are redirected to storage on another origin, which must not see the registry's
// credentials.
TEST_F(RegistryTest, RedirectsDropAuthorizationForOtherHosts) {
  std::string blob = "stored elsewhere";
  std::string d = sha256_digest(blob);
  ScriptedServer storage([&](const ScriptedRequest&) -> ScriptedReply { return {200, {}, blob}; });
  ScriptedServer registry([&](const ScriptedRequest& r) -> ScriptedReply {
    if (r.header("authorization").empty()) return {401, {{"WWW-Authenticate", R"(Basic realm="r")"}}, ""};
    return {307, {{"Location", "http://" + storage.origin() + "/bucket/" + std::string(digest_hex(d))}}, ""};
  });
  ASSERT_TRUE(save_credentials(auth_file_, registry.origin(), "alice", "s3cret").ok());
  RegistryClient c(registry.origin(), opts());
  Status st = c.fetch_blob("team/app", d, static_cast<int64_t>(blob.size()), *store_, {});
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_EQ(*store_->read_blob(d, 100), blob);
  auto regs = registry.requests();
  ASSERT_EQ(regs.size(), 2u);
  EXPECT_EQ(regs[1].header("authorization"), "Basic " + base64_encode("alice:s3cret"));
  auto stor = storage.requests();
  ASSERT_EQ(stor.size(), 1u);
  EXPECT_EQ(stor[0].header("authorization"), "");
}

TEST_F(RegistryTest, WrongContentAndOversizedManifestsStoreNothing) {
  std::string claimed = sha256_digest("the real blob");
  ScriptedServer srv([&](const ScriptedRequest& r) -> ScriptedReply {
    if (r.target.find("/manifests/") != std::string::npos)
      return {200, {{"Content-Type", kOciManifest}}, std::string(5 << 20, ' ')};
    return {200, {}, "a forged blob"};
  });
  RegistryClient c(srv.origin(), opts());
  Status st = c.fetch_blob("team/app", claimed, 13, *store_, {});
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.error().message(), HasSubstr(claimed));
  EXPECT_THAT(st.error().message(), HasSubstr(sha256_digest("a forged blob")));
  expect_store_empty();
  auto m = c.get_manifest("team/app", "v1", kOciManifest);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.error().message(), HasSubstr("larger than the limit"));
  auto bad = c.get_manifest("team/app", "sha256:" + std::string(64, '0'), kOciManifest);
  ASSERT_FALSE(bad.ok());
}

// Everything an image store holds under its root, relative ("" when nothing).
std::string store_leftovers(const std::string& root) {
  std::string out;
  for (const char* sub : {"images", "blobs/sha256", "layers/sha256", "layers/tmp", "ingest"})
    for (const auto& f : fs::list_dir(root + "/" + sub)) out += std::string(sub) + "/" + f + "\n";
  return out;
}

// The pull path end to end against the real registry: an image whose blobs are all what their
// digests say, but whose config's rootfs.diff_ids name other content, is refused by
// ImageService::pull while the layer is unpacked, and the failed pull stores nothing.
TEST_F(RegistryTest, PullRefusesAWrongDiffIdAndStoresNothing) {
  RegistryProcess reg(tmp_.path() + "/reg", {});
  ASSERT_TRUE(reg.ready()) << reg.log();
  RegistryClient c(reg.domain(), opts());
  std::string src = tmp_.path() + "/layer-src";
  ASSERT_TRUE(fs::mkdir_p(src + "/etc").ok());
  write_text(src + "/etc/served", "what the registry serves\n");
  std::string layer_path = tmp_.path() + "/layer.tar";
  ASSERT_EQ(run("tar --numeric-owner --mtime=@0 -C " + src + " -cf " + layer_path + " etc"), 0);
  std::string layer = read_text(layer_path);
  std::string claimed = sha256_digest("what the config claims");
  std::string config =
      R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[")" + claimed + R"("]}})";
  std::string config_path = tmp_.path() + "/config.json";
  write_text(config_path, config);
  nlohmann::json m = {{"schemaVersion", 2},
                      {"mediaType", kOciManifest},
                      {"config",
                       {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                        {"digest", sha256_digest(config)},
                        {"size", config.size()}}},
                      {"layers",
                       {{{"mediaType", "application/vnd.oci.image.layer.v1.tar"},
                         {"digest", sha256_digest(layer)},
                         {"size", layer.size()}}}}};
  ASSERT_TRUE(c.push_blob("team/evil", sha256_digest(config), config_path).ok());
  ASSERT_TRUE(c.push_blob("team/evil", sha256_digest(layer), layer_path).ok());
  ASSERT_TRUE(c.put_manifest("team/evil", "v1", m.dump(), kOciManifest).ok());

  std::string root = tmp_.path() + "/images";
  auto svc = ImageService::open(root);
  ASSERT_TRUE(svc.ok()) << svc.error().to_string();
  PullOptions po;
  po.registry = opts();
  auto img = svc->pull(reg.domain() + "/team/evil:v1", po);
  ASSERT_FALSE(img.ok()) << "pulled an image whose diff_id lies";
  EXPECT_THAT(img.error().message(), HasSubstr("diff_id mismatch"));
  EXPECT_THAT(img.error().message(), HasSubstr("layer " + sha256_digest(layer)));
  EXPECT_THAT(img.error().message(),
              HasSubstr(sha256_digest(layer) + ", the image config's rootfs.diff_ids says " + claimed));
  EXPECT_EQ(store_leftovers(root), "");
  EXPECT_TRUE(svc->list().empty());
}

// A manifest's config size is checked before the config is fetched: a registry cannot make a
// pull download gigabytes into the store as a "config" that would be refused once read.
TEST_F(RegistryTest, PullRefusesAnOversizedConfigBeforeFetchingIt) {
  std::string config_digest = sha256_digest("never fetched");
  nlohmann::json m = {{"schemaVersion", 2},
                      {"mediaType", kOciManifest},
                      {"config",
                       {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                        {"digest", config_digest},
                        {"size", int64_t{64} << 30}}},
                      {"layers", nlohmann::json::array()}};
  std::string body = m.dump();
  ScriptedServer srv([&](const ScriptedRequest& r) -> ScriptedReply {
    if (r.target.find("/manifests/") != std::string::npos)
      return {200, {{"Content-Type", kOciManifest}}, body};
    return {500, {}, "not expected"};
  });
  std::string root = tmp_.path() + "/images";
  auto svc = ImageService::open(root);
  ASSERT_TRUE(svc.ok()) << svc.error().to_string();
  PullOptions po;
  po.registry = opts();
  auto img = svc->pull(srv.origin() + "/team/app:v1", po);
  ASSERT_FALSE(img.ok());
  EXPECT_THAT(img.error().message(), HasSubstr("68719476736 bytes, over the limit"));
  for (const auto& r : srv.requests()) EXPECT_EQ(r.target.find("/blobs/"), std::string::npos) << r.target;
  EXPECT_EQ(store_leftovers(root), "");
}

}  // namespace
}  // namespace strata::image
