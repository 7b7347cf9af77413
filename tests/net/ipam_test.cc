#include "net/ipam.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "base/fs.h"
#include "net/link.h"

namespace strata::net {
namespace {

class LeasesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-ipam-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    auto s = NetworkStore::open(root_);
    ASSERT_TRUE(s.ok()) << s.error().to_string();
    store_.emplace(std::move(*s));
  }
  void TearDown() override { ASSERT_TRUE(fs::remove_tree(root_).ok()); }

  NetworkConfig make(const std::string& name, const std::string& subnet) {
    NetworkConfig want;
    want.name = name;
    want.bridge = "stu" + name;
    want.subnet = subnet;
    auto n = store_->create(want);
    EXPECT_TRUE(n.ok()) << n.error().to_string();
    return n.ok() ? *n : NetworkConfig{};
  }
  static Attachment rec(const std::string& id) {
    Attachment a;
    a.container_id = id;
    a.name = "c-" + id;
    a.host_veth = host_veth_name("n", id);
    return a;
  }

  std::string root_;
  std::optional<NetworkStore> store_;
};

TEST(PickAddress, RoundRobinSkipsGatewayAndUsed) {
  Subnet sn = *Subnet::parse("10.1.0.0/29");  // hosts .1-.6
  uint32_t gw = *parse_ipv4("10.1.0.1");
  EXPECT_EQ(format_ipv4(*pick_address(sn, gw, {}, 0)), "10.1.0.2");
  EXPECT_EQ(format_ipv4(*pick_address(sn, gw, {}, *parse_ipv4("10.1.0.2"))), "10.1.0.3");
  // After the last host it wraps around, still skipping the gateway.
  EXPECT_EQ(format_ipv4(*pick_address(sn, gw, {}, *parse_ipv4("10.1.0.6"))), "10.1.0.2");
  std::set<uint32_t> used;
  for (int i = 2; i <= 6; ++i) used.insert(*parse_ipv4("10.1.0." + std::to_string(i)));
  auto full = pick_address(sn, gw, used, 0);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().message(), "subnet 10.1.0.0/29 has no free address left");
  EXPECT_EQ(full.error().err(), ENOSPC);
}

TEST_F(LeasesTest, AllocateExhaustReleasePersist) {
  NetworkConfig net = make("small", "10.213.0.0/29");  // 6 hosts, .1 is the gateway: 5 leases
  Leases leases(store_->dir(net.name));
  std::vector<std::string> ips;
  for (int i = 0; i < 5; ++i) {
    auto a = leases.allocate(net, rec("c" + std::to_string(i)));
    ASSERT_TRUE(a.ok()) << a.error().to_string();
    EXPECT_EQ(a->network, "small");
    EXPECT_EQ(a->prefix, 29);
    EXPECT_EQ(a->gateway, "10.213.0.1");
    EXPECT_EQ(a->mac, mac_string(mac_for_ip(*parse_ipv4(a->ip))));
    ips.push_back(a->ip);
  }
  EXPECT_EQ(ips,
            (std::vector<std::string>{"10.213.0.2", "10.213.0.3", "10.213.0.4", "10.213.0.5", "10.213.0.6"}));
  auto full = leases.allocate(net, rec("c5"));
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().err(), ENOSPC);
  EXPECT_NE(full.error().message().find("has no free address left"), std::string::npos);

  auto dup = leases.allocate(net, rec("c1"));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().err(), EEXIST);

  ASSERT_TRUE(leases.release("c2").ok());
  ASSERT_TRUE(leases.release("c2").ok()) << "release is idempotent";
  EXPECT_EQ(leases.get("c2").error().err(), ENOENT);

  // A fresh store and Leases over the same root (another process after a crash) see the same
  // leases, and hand out only the released address.
  auto reopened = NetworkStore::open(root_);
  ASSERT_TRUE(reopened.ok());
  Leases again(reopened->dir(net.name));
  auto list = again.list();
  ASSERT_TRUE(list.ok()) << list.error().to_string();
  ASSERT_EQ(list->size(), 4u);
  EXPECT_EQ((*list)[1].container_id, "c1");
  EXPECT_EQ((*list)[1].ip, "10.213.0.3");
  auto next = again.allocate(*reopened->get("small"), rec("c9"));
  ASSERT_TRUE(next.ok()) << next.error().to_string();
  EXPECT_EQ(next->ip, "10.213.0.4");
}

TEST_F(LeasesTest, TemporaryLeftByACrashIsNotALeaseAndCorruptRecordIsAnError) {
  NetworkConfig net = make("crash", "10.213.1.0/24");
  Leases leases(store_->dir(net.name));
  ASSERT_TRUE(leases.allocate(net, rec("a")).ok());
  std::string dir = store_->dir(net.name) + "/attachments";
  ASSERT_TRUE(fs::write_file_atomic(dir + "/b.json.tmp.123", "{").ok());
  auto l = leases.list();
  ASSERT_TRUE(l.ok()) << l.error().to_string();
  EXPECT_EQ(l->size(), 1u);
  ASSERT_TRUE(fs::write_file_atomic(dir + "/c.json", "{\"network\": 1}").ok());
  l = leases.list();
  ASSERT_FALSE(l.ok()) << "a corrupt lease must not be skipped: its address could be handed out twice";
  EXPECT_NE(l.error().message().find("c.json: attachment: \"network\" is not a string"), std::string::npos)
      << l.error().message();
}

TEST(AttachmentJson, RoundTrip) {
  Attachment a;
  a.network = "n";
  a.container_id = std::string(64, 'a');
  a.name = "web";
  a.aliases = {"www", "site"};
  a.ip = "10.89.0.2";
  a.prefix = 24;
  a.gateway = "10.89.0.1";
  a.mac = "0a:58:0a:59:00:02";
  a.host_veth = "veth01234567";
  a.ports = {PortMapping{"0.0.0.0", 8080, 80, "tcp"}, PortMapping{"127.0.0.1", 5353, 53, "udp"}};
  a.hosts_path = "/run/x/hosts";
  auto b = attachment_from_json(attachment_to_json(a));
  ASSERT_TRUE(b.ok()) << b.error().to_string();
  EXPECT_EQ(attachment_to_json(*b), attachment_to_json(a));
  EXPECT_EQ(b->ports, a.ports);
  EXPECT_EQ(b->aliases, a.aliases);
  EXPECT_FALSE(attachment_from_json("[").ok());
  EXPECT_FALSE(attachment_from_json("{}").ok());
}

TEST(Link, NamesAndMacs) {
  std::string v = host_veth_name("strata", std::string(64, 'b'));
  EXPECT_EQ(v.size(), 12u);
  EXPECT_EQ(v.substr(0, 4), "veth");
  EXPECT_EQ(v, host_veth_name("strata", std::string(64, 'b'))) << "stable";
  EXPECT_NE(v, host_veth_name("other", std::string(64, 'b'))) << "per network";
  EXPECT_EQ(mac_string(mac_for_ip(*parse_ipv4("10.89.0.2"))), "0a:58:0a:59:00:02");
}

}  // namespace
}  // namespace strata::net

namespace strata::net {
namespace {

// Processes allocating at the same time under the store lock never share an address.
TEST_F(LeasesTest, ConcurrentAllocationsFromProcessesAreUnique) {
  NetworkConfig net = make("race", "10.213.2.0/24");
  constexpr int kProcs = 4, kEach = 10;
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto store = NetworkStore::open(root_);
      if (!store) _exit(2);
      for (int i = 0; i < kEach; ++i) {
        auto lk = store->lock();
        if (!lk) _exit(3);
        if (!Leases(store->dir("race")).allocate(net, rec("p" + std::to_string(p) + "-" + std::to_string(i))))
          _exit(4);
      }
      _exit(0);
    }
    kids.push_back(pid);
  }
  for (pid_t k : kids) {
    int st = 0;
    ASSERT_EQ(waitpid(k, &st, 0), k);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "child status " << st;
  }
  auto l = Leases(store_->dir("race")).list();
  ASSERT_TRUE(l.ok()) << l.error().to_string();
  ASSERT_EQ(l->size(), static_cast<size_t>(kProcs * kEach));
  std::set<std::string> ips;
  for (const Attachment& a : *l) ips.insert(a.ip);
  EXPECT_EQ(ips.size(), l->size());
}

}  // namespace
}  // namespace strata::net
