// NetworkStore without the kernel: create/get/list, validation, picking and refusals.
#include <gtest/gtest.h>

#include "base/fs.h"
#include "net/ipam.h"
#include "net/network.h"

namespace strata::net {
namespace {

class NetworkStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-netstore-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    StoreOptions o;
    o.default_network = "dflt";
    o.default_bridge = "stu0";
    o.default_subnet = "10.213.0.0/24";
    o.bridge_prefix = "stu";
    o.subnet_pool = "10.213.0.0/22";
    o.nft_table = "strata_unit";
    auto s = NetworkStore::open(root_, o);
    ASSERT_TRUE(s.ok()) << s.error().to_string();
    store_.emplace(std::move(*s));
  }
  void TearDown() override { ASSERT_TRUE(fs::remove_tree(root_).ok()); }
  std::string root_;
  std::optional<NetworkStore> store_;
};

TEST_F(NetworkStoreTest, DefaultThenPickedSubnetsAndBridges) {
  auto d = store_->ensure_default();
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  EXPECT_EQ(d->bridge, "stu0");
  EXPECT_EQ(d->subnet, "10.213.0.0/24");
  EXPECT_EQ(d->gateway, "10.213.0.1");
  EXPECT_FALSE(d->created.empty());
  auto again = store_->ensure_default();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->created, d->created) << "ensure_default does not recreate";

  NetworkConfig want;
  want.name = "a";
  auto a = store_->create(want);
  ASSERT_TRUE(a.ok()) << a.error().to_string();
  EXPECT_EQ(a->subnet, "10.213.1.0/24");
  EXPECT_EQ(a->bridge, "stu1");
  want.name = "b";
  want.gateway = "10.213.2.254";
  auto b = store_->create(want);
  ASSERT_TRUE(b.ok()) << b.error().to_string();
  EXPECT_EQ(b->subnet, "10.213.2.0/24");
  EXPECT_EQ(b->gateway, "10.213.2.254");
  want.name = "c";
  want.gateway.clear();
  ASSERT_TRUE(store_->create(want).ok());
  want.name = "d";
  auto full = store_->create(want);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().message(), "create network d: no free subnet left in 10.213.0.0/22");

  std::vector<std::string> names;
  for (const NetworkConfig& n : store_->list()) names.push_back(n.name);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b", "c", "dflt"}));
  auto got = store_->get("b");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(network_to_json(*got), network_to_json(*b));
  EXPECT_EQ(store_->get("zz").error().message(), "network zz not found");
}

TEST_F(NetworkStoreTest, RefusesDuplicatesOverlapsAndBadInput) {
  NetworkConfig want;
  want.name = "a";
  want.bridge = "stuA";
  want.subnet = "10.213.8.0/24";
  ASSERT_TRUE(store_->create(want).ok());
  auto expect = [&](NetworkConfig w, const std::string& msg) {
    auto r = store_->create(w);
    ASSERT_FALSE(r.ok()) << w.name;
    EXPECT_EQ(r.error().message(), msg);
    EXPECT_FALSE(fs::exists(store_->dir(w.name)) && w.name != "a") << "nothing stored for " << w.name;
  };
  expect(want, "create network a: a network with that name exists");
  NetworkConfig w = want;
  w.name = "b";
  expect(w, "create network b: bridge stuA belongs to network a");
  w.bridge = "stuB";
  w.subnet = "10.213.8.128/25";
  expect(w, "create network b: subnet 10.213.8.128/25 overlaps network a (10.213.8.0/24)");
  w.subnet = "10.213.9.1/24";
  expect(
      w,
      "create network b: subnet \"10.213.9.1/24\": host bits are set (the network address is 10.213.9.0/24)");
  w.subnet = "10.213.9.0/24";
  w.gateway = "10.213.9.255";
  expect(w, "create network: network b: gateway 10.213.9.255 is not a host address of 10.213.9.0/24");
  w.gateway = "10.213.10.1";
  expect(w, "create network: network b: gateway 10.213.10.1 is not a host address of 10.213.9.0/24");
  w.gateway.clear();
  w.subnet = "10.213.9.0/31";
  expect(w, "create network: network b: subnet 10.213.9.0/31 is too small (at most /30)");
  w.subnet = "10.213.9.0/24";
  w.bridge = "a-very-long-bridge-name";
  expect(w, "create network: bridge name \"a-very-long-bridge-name\": longer than 15 characters");
  w.bridge = "stuB";
  w.name = "../x";
  expect(w,
         "create network: network name \"../x\": only letters, digits, '_', '.' and '-' are allowed, "
         "starting with a letter or digit");
}

TEST_F(NetworkStoreTest, ConfiguredDefaultSubnetIsNotChangedUnderAttachedContainers) {
  auto d = store_->ensure_default();
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  Attachment a;
  a.container_id = std::string(64, 'e');
  a.host_veth = "veth00000001";
  ASSERT_TRUE(Leases(store_->dir("dflt")).allocate(*d, a).ok());

  StoreOptions o = store_->options();
  o.default_subnet = "10.213.9.0/24";
  o.default_subnet_configured = true;
  auto other = NetworkStore::open(root_, o);
  ASSERT_TRUE(other.ok()) << other.error().to_string();
  auto again = other->ensure_default();
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(
      again.error().message(),
      "default network dflt (subnet 10.213.0.0/24): the configured default subnet is 10.213.9.0/24, but it "
      "cannot be changed while containers are attached: eeeeeeeeeeee");
  EXPECT_EQ(again.error().err(), EBUSY);
  EXPECT_EQ(store_->get("dflt")->subnet, "10.213.0.0/24") << "left as it was";
  // Not configured (the default value): the existing network is used as it is.
  o.default_subnet_configured = false;
  auto plain = NetworkStore::open(root_, o);
  ASSERT_TRUE(plain.ok());
  auto same = plain->ensure_default();
  ASSERT_TRUE(same.ok()) << same.error().to_string();
  EXPECT_EQ(same->subnet, "10.213.0.0/24");
}

TEST(NetworkStoreOptions, DefaultSubnetFromTheEnvironment) {
  ::unsetenv("STRATA_DEFAULT_SUBNET");
  EXPECT_FALSE(store_options_from_env().default_subnet_configured);
  EXPECT_EQ(store_options_from_env().default_subnet, "10.89.0.0/24");
  ::setenv("STRATA_DEFAULT_SUBNET", "10.1.2.0/24", 1);
  EXPECT_TRUE(store_options_from_env().default_subnet_configured);
  EXPECT_EQ(store_options_from_env().default_subnet, "10.1.2.0/24");
  ::unsetenv("STRATA_DEFAULT_SUBNET");
}

TEST_F(NetworkStoreTest, RemoveRefusesWhileAttachedAndTheDefault) {
  auto d = store_->ensure_default();
  ASSERT_TRUE(d.ok());
  Status st = store_->remove("dflt");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(), "remove network dflt: the default network cannot be removed");

  NetworkConfig want;
  want.name = "busy";
  want.bridge = "stuBusy";
  want.subnet = "10.213.5.0/24";
  auto n = store_->create(want);
  ASSERT_TRUE(n.ok());
  Attachment a;
  a.container_id = std::string(64, 'f');
  a.host_veth = "veth00000000";
  ASSERT_TRUE(Leases(store_->dir("busy")).allocate(*n, a).ok());
  st = store_->remove("busy");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(), "remove network busy: containers are attached: ffffffffffff");
  EXPECT_EQ(st.error().err(), EBUSY);
  EXPECT_TRUE(store_->get("busy").ok());
  EXPECT_EQ(store_->remove("nope").error().message(), "remove network nope: network nope not found");
}

TEST(NetworkJson, UntrustedConfigIsChecked) {
  EXPECT_EQ(network_from_json("nope").error().message(), "network config: not a JSON object");
  EXPECT_EQ(network_from_json(R"({"name":"a","bridge":"b","subnet":"10.0.0.0/24","gateway":"10.0.0.1",
                                  "created":"x"})")
                .error()
                .message(),
            "network config: \"internal\" is not a boolean");
  EXPECT_EQ(
      network_from_json(R"({"name":"a","bridge":"b;drop","subnet":"10.0.0.0/24","gateway":"10.0.0.1",
                                  "created":"x","internal":false})")
          .error()
          .message(),
      "bridge name \"b;drop\": only letters, digits, '_', '.' and '-' are allowed, starting with a letter "
      "or digit");
}

}  // namespace
}  // namespace strata::net
