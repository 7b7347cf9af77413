#include "image/manifest.h"

#include <gtest/gtest.h>
#include <sys/utsname.h>

#include <string>

#include "image/image_config.h"

namespace strata::image {
namespace {

std::string dg(char c) { return "sha256:" + std::string(64, c); }

std::string descriptor(std::string_view media_type, char digest, int size = 100, std::string extra = "") {
  return R"({"mediaType":")" + std::string(media_type) + R"(","digest":")" + dg(digest) + R"(","size":)" +
         std::to_string(size) + extra + "}";
}

std::string oci_manifest(std::string layers, std::string_view config_type = media_type::kOciConfig) {
  return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":)" +
         descriptor(config_type, 'c', 7) + R"(,"layers":[)" + layers + R"(],"annotations":{"k":"v"}})";
}

std::string platform_entry(char digest, std::string_view os, std::string_view arch,
                           std::string_view variant = "",
                           std::string_view media_type = media_type::kOciManifest) {
  std::string p =
      R"(,"platform":{"os":")" + std::string(os) + R"(","architecture":")" + std::string(arch) + "\"";
  if (!variant.empty()) p += R"(,"variant":")" + std::string(variant) + "\"";
  p += "}";
  return descriptor(media_type, digest, 500, p);
}

Manifest as_manifest(const Result<AnyManifest>& r) {
  EXPECT_TRUE(r.ok()) << r.error().message();
  if (!r.ok() || !std::holds_alternative<Manifest>(*r)) {
    ADD_FAILURE() << "not a manifest";
    return {};
  }
  return std::get<Manifest>(*r);
}

Index as_index(const Result<AnyManifest>& r) {
  EXPECT_TRUE(r.ok()) << r.error().message();
  if (!r.ok() || !std::holds_alternative<Index>(*r)) {
    ADD_FAILURE() << "not an index";
    return {};
  }
  return std::get<Index>(*r);
}

TEST(ManifestTest, OciManifest) {
  std::string body =
      oci_manifest(descriptor(media_type::kOciLayerGzip, '1', 10) + "," +
                   descriptor(media_type::kOciLayerZstd, '2', 20, R"(,"annotations":{"a":"b"})") + "," +
                   descriptor(media_type::kOciLayer, '3', 0, R"(,"unknownField":[1,2])"));
  Manifest m = as_manifest(parse_manifest(body));
  EXPECT_EQ(m.media_type, media_type::kOciManifest);
  EXPECT_EQ(m.config.media_type, media_type::kOciConfig);
  EXPECT_EQ(m.config.digest, dg('c'));
  EXPECT_EQ(m.config.size, 7);
  ASSERT_EQ(m.layers.size(), 3u);
  EXPECT_EQ(m.layers[0].digest, dg('1'));
  EXPECT_EQ(m.layers[1].size, 20);
  EXPECT_EQ(m.layers[1].annotations.at("a"), "b");
  EXPECT_EQ(m.layers[2].size, 0);
  EXPECT_EQ(layer_compression(m.layers[0].media_type), Compression::kGzip);
  EXPECT_EQ(layer_compression(m.layers[1].media_type), Compression::kZstd);
  EXPECT_EQ(layer_compression(m.layers[2].media_type), Compression::kNone);
  EXPECT_EQ(m.annotations.at("k"), "v");
}

TEST(ManifestTest, DockerSchema2Manifest) {
  std::string body = R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
    "config":)" + descriptor(media_type::kDockerConfig, 'c', 1469) +
                     R"(,"layers":[)" + descriptor(media_type::kDockerLayerGzip, 'd', 2212) + "]}";
  Manifest m = as_manifest(parse_manifest(body, "application/vnd.docker.distribution.manifest.v2+json"));
  EXPECT_EQ(m.media_type, media_type::kDockerManifest);
  EXPECT_EQ(m.config.media_type, media_type::kDockerConfig);
  ASSERT_EQ(m.layers.size(), 1u);
  EXPECT_EQ(layer_compression(m.layers[0].media_type), Compression::kGzip);
}

TEST(ManifestTest, MediaTypeFromBodyThenContentTypeThenShape) {
  std::string index_no_type = R"({"schemaVersion":2,"manifests":[]})";
  std::string manifest_no_type =
      R"({"schemaVersion":2,"config":)" + descriptor(media_type::kOciConfig, 'c') + R"(,"layers":[]})";
  // No mediaType in the body: the Content-Type says (parameters ignored, case-insensitive).
  EXPECT_EQ(as_index(parse_manifest(index_no_type, "Application/vnd.oci.image.index.v1+json; charset=utf-8"))
                .media_type,
            media_type::kOciIndex);
  EXPECT_EQ(as_index(parse_manifest(index_no_type, media_type::kDockerManifestList)).media_type,
            media_type::kDockerManifestList);
  // Generic or no Content-Type: the shape says.
  EXPECT_EQ(as_index(parse_manifest(index_no_type, "application/json")).media_type, media_type::kOciIndex);
  EXPECT_EQ(as_manifest(parse_manifest(manifest_no_type)).media_type, media_type::kOciManifest);
  // The body's own mediaType wins over a Content-Type that says otherwise.
  std::string index =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]})";
  EXPECT_EQ(as_index(parse_manifest(index, media_type::kOciManifest)).media_type, media_type::kOciIndex);
}

TEST(ManifestTest, IndexWithPlatforms) {
  std::string body =
      R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",
    "manifests":[)" +
      platform_entry('1', "linux", "amd64", "", media_type::kDockerManifest) + "," +
      platform_entry('2', "linux", "arm64", "v8", media_type::kDockerManifest) + "," +
      descriptor(media_type::kDockerManifest, '3', 9,
                 R"(,"platform":{"os":"windows","architecture":"amd64","os.version":"10.0.17763",
                                   "os.features":["win32k"]})") +
      R"(],"annotations":{"x":"y"}})";
  Index index = as_index(parse_manifest(body));
  ASSERT_EQ(index.manifests.size(), 3u);
  ASSERT_TRUE(index.manifests[1].platform.has_value());
  EXPECT_EQ(index.manifests[1].platform->architecture, "arm64");
  EXPECT_EQ(index.manifests[1].platform->variant, "v8");
  EXPECT_EQ(index.manifests[2].platform->os_version, "10.0.17763");
  EXPECT_EQ(index.manifests[2].platform->os_features, std::vector<std::string>{"win32k"});
  EXPECT_EQ(index.annotations.at("x"), "y");
}

Index platform_index() {
  std::string body =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)" +
      platform_entry('1', "linux", "amd64") + "," + platform_entry('2', "linux", "arm", "v6") + "," +
      platform_entry('3', "linux", "arm", "v7") + "," + platform_entry('4', "linux", "arm64") + "," +
      platform_entry('5', "linux", "arm64", "v8") + "," + platform_entry('6', "linux", "ppc64le") + "," +
      platform_entry('7', "unknown", "unknown") + "," +
      platform_entry('8', "linux", "s390x", "", media_type::kOciIndex) + "]}";
  return as_index(parse_manifest(body));
}

TEST(ManifestTest, SelectPlatform) {
  Index index = platform_index();
  auto pick = [&](const char* os, const char* arch, const char* variant) -> std::string {
    auto d = select_platform(index, Platform{os, arch, variant});
    return d.ok() ? d->digest : d.error().message();
  };
  EXPECT_EQ(pick("linux", "amd64", ""), dg('1'));
  EXPECT_EQ(pick("linux", "arm", "v7"), dg('3')) << "variant exact";
  EXPECT_EQ(pick("linux", "arm", "v6"), dg('2'));
  EXPECT_EQ(pick("linux", "arm64", "v8"), dg('5')) << "exact variant preferred over none";
  EXPECT_EQ(pick("linux", "arm64", ""), dg('4'));
  EXPECT_EQ(pick("linux", "ppc64le", "power9"), dg('6')) << "an entry naming no variant is the fallback";
  // Neither a different variant nor a nested index nor an attestation is taken.
  std::string err = pick("linux", "arm", "v5");
  EXPECT_EQ(err,
            "no image for linux/arm/v5 in the index; it offers linux/amd64, linux/arm/v6, linux/arm/v7, "
            "linux/arm64, linux/arm64/v8, linux/ppc64le");
  EXPECT_NE(pick("linux", "s390x", "").find("no image for linux/s390x"), std::string::npos);
  EXPECT_NE(pick("windows", "amd64", "").find("no image for windows/amd64"), std::string::npos);
  EXPECT_NE(select_platform(Index{}, Platform{"linux", "amd64"}).error().message().find("offers no image"),
            std::string::npos);
}

// Strings from a registry's manifest are shown cut and escaped in errors: a 4 MiB manifest can
// hold a media type of megabytes, or escape sequences for the terminal.
TEST(ManifestTest, HostileStringsInErrorsAreCut) {
  std::string huge(100000, 'x');
  auto r = parse_manifest(oci_manifest(descriptor(huge, 'a')));
  ASSERT_FALSE(r.ok());
  EXPECT_LT(r.error().message().size(), 400u);
  EXPECT_NE(r.error().message().find("xxx\"... (100000 bytes) is not a layer media type"), std::string::npos)
      << r.error().message();
  r = parse_manifest(oci_manifest("", "\\u001b[2Jevil"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("\"\\x1b[2Jevil\" is not an image config"), std::string::npos)
      << r.error().message();

  Index index;
  for (int i = 0; i < 1000; ++i) {
    Descriptor d;
    d.media_type = media_type::kOciManifest;
    d.digest = dg('1');
    d.platform = Platform{"linux", "arch" + std::to_string(i)};
    index.manifests.push_back(d);
  }
  index.manifests[1].platform->architecture = "\x1b]0;x\x07";
  auto sel = select_platform(index, Platform{"linux", "amd64"});
  ASSERT_FALSE(sel.ok());
  const std::string& m = sel.error().message();
  EXPECT_LT(m.size(), 400u) << m;
  EXPECT_NE(m.find("it offers linux/arch0, \"linux/\\x1b]0;x\\x07\", linux/arch2"), std::string::npos) << m;
  EXPECT_NE(m.find(" more"), std::string::npos) << m;
}

TEST(ManifestTest, HostPlatformAndPlatformStrings) {
  Platform host = host_platform();
  EXPECT_EQ(host.os, "linux");
  utsname u{};
  ASSERT_EQ(uname(&u), 0);
  if (std::string(u.machine) == "x86_64") {
    EXPECT_EQ(host.architecture, "amd64");
    EXPECT_EQ(host.variant, "");
  }
  EXPECT_EQ(platform_string(Platform{"linux", "arm64", "v8"}), "linux/arm64/v8");
  auto p = parse_platform("linux/arm/v7");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, (Platform{"linux", "arm", "v7"}));
  EXPECT_TRUE(parse_platform("linux/amd64").ok());
  for (const char* bad : {"linux", "linux/", "/amd64", "linux/arm/", "a/b/c/d", ""})
    EXPECT_FALSE(parse_platform(bad).ok()) << bad;
}

TEST(ManifestTest, AcceptHeaderAndMediaTypes) {
  std::string accept(accept_header());
  for (auto mt : {media_type::kOciIndex, media_type::kOciManifest, media_type::kDockerManifestList,
                  media_type::kDockerManifest})
    EXPECT_NE(accept.find(mt), std::string::npos) << mt;
  EXPECT_EQ(accept.find("distribution.manifest.v1"), std::string::npos) << "no schema 1";
  EXPECT_TRUE(is_layer_media_type(media_type::kDockerLayerGzip));
  EXPECT_FALSE(is_layer_media_type(media_type::kOciConfig));
  EXPECT_FALSE(is_layer_media_type("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"));
  EXPECT_EQ(layer_compression("text/plain"), std::nullopt);
}

struct Bad {
  std::string name;
  std::string body;
  std::string message;
};

TEST(ManifestTest, MalformedManifestsNameTheProblem) {
  std::string layer = descriptor(media_type::kOciLayerGzip, '1');
  std::string big =
      R"({"schemaVersion":2,"annotations":{"a":")" + std::string(kMaxManifestBytes, 'x') + "\"}}";
  const Bad cases[] = {
      {"schema1 by type",
       R"({"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws"})",
       "Docker schema 1 manifests are not supported"},
      {"schema1 by version", R"({"schemaVersion":1,"name":"x","fsLayers":[]})",
       "Docker schema 1 manifests are not supported"},
      {"schema 3", R"({"schemaVersion":3,"manifests":[]})", "schemaVersion: 3 is not supported (want 2)"},
      {"no schema", R"({"manifests":[]})", "schemaVersion: required"},
      {"schema string", R"({"schemaVersion":"2","manifests":[]})",
       "schemaVersion: expected an integer, got \"2\""},
      {"digest number",
       oci_manifest(layer + "," + layer +
                    R"(,{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":3,"size":1})"),
       "layers[2].digest: expected a string, got 3"},
      {"bad digest",
       oci_manifest(
           R"({"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:xyz","size":1})"),
       "layers[0].digest: digest \"sha256:xyz\": want 64 lowercase hex digits"},
      {"sha512",
       oci_manifest(
           R"({"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha512:ab","size":1})"),
       "unsupported algorithm \"sha512\""},
      {"negative size", oci_manifest(descriptor(media_type::kOciLayer, '1', -5)),
       "layers[0].size: -5 is negative"},
      {"float size",
       oci_manifest(R"({"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":")" + dg('1') +
                    R"(","size":1.5})"),
       "layers[0].size: expected an integer, got 1.5"},
      {"no size",
       oci_manifest(R"({"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":")" + dg('1') +
                    R"("})"),
       "layers[0].size: required"},
      {"foreign layer",
       oci_manifest(layer + "," +
                    descriptor("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", '2')),
       "layers[1].mediaType: non-distributable (foreign) layer type "
       "\"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip\" is not supported"},
      {"nondistributable",
       oci_manifest(descriptor("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", '2')),
       "non-distributable (foreign) layer type"},
      {"unknown layer", oci_manifest(descriptor("application/x-tar", '2')),
       "layers[0].mediaType: \"application/x-tar\" is not a layer media type"},
      {"artifact config", oci_manifest(layer, "application/vnd.cncf.helm.config.v1+json"),
       "config.mediaType: \"application/vnd.cncf.helm.config.v1+json\" is not an image config"},
      {"unknown type", R"({"schemaVersion":2,"mediaType":"application/vnd.oci.artifact.manifest.v1+json"})",
       "mediaType: unsupported manifest media type \"application/vnd.oci.artifact.manifest.v1+json\""},
      {"no config",
       R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]})",
       "config: required"},
      {"layers object",
       R"({"schemaVersion":2,"config":)" + descriptor(media_type::kOciConfig, 'c') + R"(,"layers":{}})",
       "layers: expected an array, got an object"},
      {"manifests string",
       R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":"x"})",
       "manifests: expected an array, got \"x\""},
      {"platform without os",
       R"({"schemaVersion":2,"manifests":[)" +
           descriptor(media_type::kOciManifest, '1', 1, R"(,"platform":{"architecture":"amd64"})") + "]}",
       "manifests[0].platform.os: required"},
      {"annotation number", R"({"schemaVersion":2,"manifests":[],"annotations":{"a":1}})",
       "annotations.a: expected a string, got 1"},
      {"shapeless", R"({"schemaVersion":2})", "no mediaType, and neither manifests nor config and layers"},
      {"array", "[]", "manifest: expected an object, got an array"},
      {"not json", "{", "parse JSON"},
      {"duplicate key", R"({"schemaVersion":2,"schemaVersion":2,"manifests":[]})",
       "duplicate key \"schemaVersion\""},
      {"too big", big, "bytes is over the limit of 4194304"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = parse_manifest(c.body);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message().rfind("parse manifest: ", 0), 0u) << r.error().message();
    EXPECT_NE(r.error().message().find(c.message), std::string::npos) << r.error().message();
  }
}

const char kDockerConfig[] = R"({
  "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z", "author": "me",
  "config": {
    "User": "1000:1000", "WorkingDir": "/app", "StopSignal": "SIGTERM",
    "Env": ["PATH=/usr/bin:/bin", "A=b=c"], "Entrypoint": null, "Cmd": ["sh", "-c", "echo hi"],
    "ExposedPorts": {"80/tcp": {}, "53/udp": {}, "8080": {}},
    "Volumes": {"/data": {}},
    "Labels": {"org.opencontainers.image.title": "t"},
    "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 30000000000, "Timeout": 5000000000,
                    "StartPeriod": 1000000000, "Retries": 3},
    "ArgsEscaped": true, "OnBuild": null, "Image": "sha256:whatever"
  },
  "container_config": {"Cmd": 3},
  "rootfs": {"type": "layers", "diff_ids": ["sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                          "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"]},
  "history": [{"created_by": "x"}]
})";

TEST(ImageConfigTest, DockerConfig) {
  auto c = parse_image_config(kDockerConfig);
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->architecture, "amd64");
  EXPECT_EQ(c->os, "linux");
  EXPECT_EQ(c->created, "2024-01-01T00:00:00Z");
  EXPECT_EQ(c->author, "me");
  EXPECT_EQ(c->user, "1000:1000");
  EXPECT_EQ(c->working_dir, "/app");
  EXPECT_EQ(c->stop_signal, "SIGTERM");
  EXPECT_EQ(c->env, (std::vector<std::string>{"PATH=/usr/bin:/bin", "A=b=c"}));
  EXPECT_TRUE(c->entrypoint.empty());
  EXPECT_EQ(c->cmd, (std::vector<std::string>{"sh", "-c", "echo hi"}));
  EXPECT_EQ(c->exposed_ports, (std::vector<std::string>{"53/udp", "80/tcp", "8080/tcp"}));
  EXPECT_EQ(c->volumes, std::vector<std::string>{"/data"});
  EXPECT_EQ(c->labels.at("org.opencontainers.image.title"), "t");
  ASSERT_TRUE(c->healthcheck.has_value());
  EXPECT_EQ(c->healthcheck->test, (std::vector<std::string>{"CMD-SHELL", "true"}));
  EXPECT_EQ(c->healthcheck->interval_ns, 30000000000);
  EXPECT_EQ(c->healthcheck->timeout_ns, 5000000000);
  EXPECT_EQ(c->healthcheck->start_period_ns, 1000000000);
  EXPECT_EQ(c->healthcheck->retries, 3);
  ASSERT_EQ(c->diff_ids.size(), 2u);
  EXPECT_EQ(c->diff_ids[1], dg('b'));

  Manifest m;
  m.layers.resize(2);
  EXPECT_TRUE(check_config_matches(m, *c).ok());
  m.layers.resize(3);
  auto st = check_config_matches(m, *c);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("lists 2 diff_ids but the manifest has 3 layers"), std::string::npos);
}

TEST(ImageConfigTest, MinimalOciConfig) {
  auto c = parse_image_config(
      R"({"architecture":"arm64","os":"linux","variant":"v8","rootfs":{"type":"layers","diff_ids":[]}})");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->variant, "v8");
  EXPECT_FALSE(c->healthcheck.has_value());
  EXPECT_TRUE(c->diff_ids.empty());
}

TEST(ImageConfigTest, MalformedConfigsNameTheProblem) {
  const std::string rootfs = R"("rootfs":{"type":"layers","diff_ids":[]})";
  const Bad cases[] = {
      {"no os", R"({"architecture":"amd64",)" + rootfs + "}", "os: required"},
      {"no rootfs", R"({"architecture":"amd64","os":"linux"})", "rootfs: required"},
      {"rootfs type", R"({"architecture":"amd64","os":"linux","rootfs":{"type":"x","diff_ids":[]}})",
       "rootfs.type: \"x\" is not \"layers\""},
      {"diff_id",
       R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[")" + dg('a') +
           R"(","md5:x"]}})",
       "rootfs.diff_ids[1]: digest \"md5:x\": unsupported algorithm \"md5\""},
      {"env type", R"({"architecture":"amd64","os":"linux","config":{"Env":["A=1",2]},)" + rootfs + "}",
       "config.Env[1]: expected a string, got 2"},
      {"cmd string", R"({"architecture":"amd64","os":"linux","config":{"Cmd":"sh"},)" + rootfs + "}",
       "config.Cmd: expected an array, got \"sh\""},
      {"port",
       R"({"architecture":"amd64","os":"linux","config":{"ExposedPorts":{"99999/tcp":{}}},)" + rootfs + "}",
       "config.ExposedPorts: port \"99999\" is not a number in 1..65535"},
      {"proto",
       R"({"architecture":"amd64","os":"linux","config":{"ExposedPorts":{"80/icmp":{}}},)" + rootfs + "}",
       "protocol \"icmp\" is not tcp, udp or sctp"},
      {"volume", R"({"architecture":"amd64","os":"linux","config":{"Volumes":{"data":{}}},)" + rootfs + "}",
       "config.Volumes: \"data\" is not an absolute path"},
      {"interval",
       R"({"architecture":"amd64","os":"linux","config":{"Healthcheck":{"Interval":-1}},)" + rootfs + "}",
       "config.Healthcheck.Interval: -1 is negative"},
      {"retries",
       R"({"architecture":"amd64","os":"linux","config":{"Healthcheck":{"Retries":"3"}},)" + rootfs + "}",
       "config.Healthcheck.Retries: expected an integer, got \"3\""},
      {"labels", R"({"architecture":"amd64","os":"linux","config":{"Labels":["a"]},)" + rootfs + "}",
       "config.Labels: expected an object, got an array"},
      {"string", "\"x\"", "image config: expected an object"},
      {"too big", std::string(kMaxConfigBytes + 1, ' '), "over the limit"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = parse_image_config(c.body);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message().rfind("parse image config: ", 0), 0u) << r.error().message();
    EXPECT_NE(r.error().message().find(c.message), std::string::npos) << r.error().message();
  }
}

}  // namespace
}  // namespace strata::image
