#include "sandbox/spec_builder.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "oci/spec.h"

namespace strata::sandbox {
namespace {

using Json = nlohmann::json;

ContainerRecord record() {
  ContainerRecord r;
  r.id = std::string(64, 'a');
  r.name = "web";
  r.config.args = {"httpd", "-f"};
  r.config.env = {"PATH=/bin", "A=1"};
  r.config.cwd = "/srv";
  return r;
}

TEST(SpecBuilder, DefaultsAreParsedByTheRuntime) {
  ContainerRecord r = record();
  auto text = build_spec(r, SpecPaths{"/c", 0, 0, {}});
  ASSERT_TRUE(text.ok()) << text.error().to_string();
  // The runtime library accepts what the builder writes: every field is one it knows.
  auto spec = oci::parse_spec(*text);
  ASSERT_TRUE(spec.ok()) << spec.error().to_string();
  EXPECT_EQ(spec->process->args, r.config.args);
  EXPECT_EQ(spec->process->cwd, "/srv");
  EXPECT_EQ(spec->hostname, std::string(12, 'a'));
  EXPECT_EQ(spec->linux.cgroups_path, "/strata/" + r.id);
  EXPECT_TRUE(spec->linux.has_namespace(oci::NamespaceType::kNetwork));
  EXPECT_TRUE(spec->linux.seccomp.has_value());
  bool hosts = false;
  for (const auto& m : spec->mounts)
    hosts = hosts || (m.destination == "/etc/hosts" && m.source == "/c/hosts");
  EXPECT_TRUE(hosts);
}

TEST(SpecBuilder, LimitsAndHostNetwork) {
  ContainerRecord r = record();
  r.config.memory = 64 << 20;
  r.config.cpus = 0.5;
  r.config.pids_limit = 20;
  r.config.network = "host";
  r.config.read_only = true;
  auto text = build_spec(r, SpecPaths{"/c", 0, 0, {}});
  ASSERT_TRUE(text.ok());
  Json j = Json::parse(*text);
  EXPECT_EQ(j["linux"]["resources"]["memory"]["limit"], 64 << 20);
  EXPECT_EQ(j["linux"]["resources"]["cpu"]["quota"], 50000);
  EXPECT_EQ(j["linux"]["resources"]["pids"]["limit"], 20);
  EXPECT_TRUE(j["root"]["readonly"].get<bool>());
  for (const auto& ns : j["linux"]["namespaces"]) EXPECT_NE(ns["type"], "network");
  ASSERT_TRUE(oci::parse_spec(*text).ok());
}

TEST(SpecBuilder, NonRootUserGetsNoEffectiveCapabilities) {
  auto text = build_spec(record(), SpecPaths{"/c", 1000, 1000, {27}});
  ASSERT_TRUE(text.ok());
  Json j = Json::parse(*text);
  EXPECT_EQ(j["process"]["user"]["uid"], 1000);
  EXPECT_EQ(j["process"]["user"]["additionalGids"], Json::array({27}));
  EXPECT_TRUE(j["process"]["capabilities"]["effective"].empty());
  EXPECT_FALSE(j["process"]["capabilities"]["bounding"].empty());
}

TEST(SpecBuilder, CapAddDrop) {
  auto caps = effective_capabilities({"NET_ADMIN"}, {"chown", "CAP_KILL"});
  ASSERT_TRUE(caps.ok());
  auto has = [&](const std::string& c) { return std::find(caps->begin(), caps->end(), c) != caps->end(); };
  EXPECT_TRUE(has("CAP_NET_ADMIN"));
  EXPECT_FALSE(has("CAP_CHOWN"));
  EXPECT_FALSE(has("CAP_KILL"));
  EXPECT_TRUE(has("CAP_SETUID"));
  auto none = effective_capabilities({}, {"ALL"});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  auto bad = effective_capabilities({"CAP_FLY"}, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(), "--cap-add: unknown capability \"CAP_FLY\"");
}

}  // namespace
}  // namespace strata::sandbox
