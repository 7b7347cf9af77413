// src/net as root: real bridges, veths, nft rules and traffic between network namespaces.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fd.h"
#include "base/fs.h"
#include "net/firewall.h"
#include "net/link.h"
#include "net_fixture.h"

namespace strata::net::it {
namespace {

bool has(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

TEST_F(NetTest, SameNetworkTalksByAddressAndNameOtherNetworkIsIsolated) {
  NetworkConfig a = network("a", 0);
  NetworkConfig b = network("b", 1);
  auto c1 = attach(*store_, a, request("c1", "alpha"));
  ASSERT_TRUE(c1.ok()) << c1.error().to_string();
  auto c2 = attach(*store_, a, request("c2", "beta", {"b2"}));
  ASSERT_TRUE(c2.ok()) << c2.error().to_string();
  auto c3 = attach(*store_, b, request("c3", "gamma"));
  ASSERT_TRUE(c3.ok()) << c3.error().to_string();

  // What the container sees: eth0 with the leased address and MAC, lo up, default route.
  RunResult addr = in("c1", "busybox ip -4 addr show eth0");
  EXPECT_TRUE(has(addr.out, "inet " + c1->ip + "/24")) << addr.out;
  RunResult link = in("c1", "busybox ip link show eth0");
  EXPECT_TRUE(has(link.out, c1->mac)) << link.out;
  EXPECT_TRUE(has(in("c1", "busybox ip route").out, "default via " + a.gateway))
      << in("c1", "busybox ip route").out;
  EXPECT_EQ(in("c1", "busybox ping -c1 -W2 127.0.0.1").code, 0) << "lo is up";
  EXPECT_TRUE(link_exists(c1->host_veth));

  // Hosts files: each lists itself and the peers of its own network only.
  std::string h1 = *fs::read_file(hosts_path("c1"));
  EXPECT_TRUE(has(h1, c2->ip + "\tbeta\tb2\n")) << h1;
  EXPECT_FALSE(has(h1, "gamma")) << h1;
  std::string h2 = *fs::read_file(hosts_path("c2"));
  EXPECT_TRUE(has(h2, c1->ip + "\talpha\n")) << "the first container's file learnt of the second: " << h2;
  EXPECT_TRUE(has(h2, c2->ip + "\tbeta\tb2\t" + c2->container_id.substr(0, 12) + "\n")) << h2;

  // Same network: by address and by name, ping and TCP.
  EXPECT_EQ(in("c1", "busybox ping -c1 -W2 " + c2->ip).code, 0);
  EXPECT_EQ(in("c1", "busybox ping -c1 -W2 beta").code, 0);
  EXPECT_EQ(in("c2", "busybox ping -c1 -W2 alpha").code, 0);
  serve_http("c2", "hello-from-beta");
  RunResult get = in("c1", "timeout 3 busybox wget -q -O - http://b2/");
  EXPECT_EQ(get.code, 0) << get.out;
  EXPECT_TRUE(has(get.out, "hello-from-beta")) << get.out;
  // The host reaches containers through the bridge; containers reach the host's gateway address.
  EXPECT_EQ(in("c3", "busybox ping -c1 -W2 " + b.gateway).code, 0);

  // Another network: neither ping nor TCP gets through, in either direction.
  EXPECT_NE(in("c3", "busybox ping -c1 -W1 " + c1->ip).code, 0);
  EXPECT_NE(in("c3", "timeout 2 busybox wget -q -O - http://" + c2->ip + "/").code, 0);
  EXPECT_NE(in("c1", "busybox ping -c1 -W1 " + c3->ip).code, 0);
  // ... and it is the isolation rule that stops it: without it the host routes between bridges.
  std::string t = table_text();
  EXPECT_TRUE(has(t, "iifname \"" + b.bridge + "\" oifname != \"" + b.bridge + "\" oifname @bridges drop"))
      << t;
}

TEST_F(NetTest, PublishedPortFromLoopbackAndHostAddressAndPortInUse) {
  NetworkConfig a = network("p", 0);
  auto free_port = pick_free_port("tcp", "0.0.0.0");
  ASSERT_TRUE(free_port.ok());
  uint16_t port = *free_port;
  auto c1 = attach(*store_, a, request("web", "web", {}, {PortMapping{"0.0.0.0", port, 80, "tcp"}}));
  ASSERT_TRUE(c1.ok()) << c1.error().to_string();
  ASSERT_EQ(c1->ports.size(), 1u);
  serve_http("web", "published-page");

  std::string url = ":" + std::to_string(port) + "/";
  std::string host_ip = host_address();
  ASSERT_FALSE(host_ip.empty());
  RunResult ext = sh("timeout 3 busybox wget -q -O - http://" + host_ip + url);
  EXPECT_EQ(ext.code, 0) << ext.out;
  EXPECT_TRUE(has(ext.out, "published-page")) << "from " << host_ip << ": " << ext.out;
  RunResult lo = sh("timeout 3 busybox wget -q -O - http://127.0.0.1" + url);
  EXPECT_EQ(lo.code, 0) << lo.out;
  EXPECT_TRUE(has(lo.out, "published-page")) << "from the host's loopback: " << lo.out;

  // A random host port ("-p 80") is resolved, recorded and reachable too.
  auto spec = parse_port_mapping("80");
  ASSERT_TRUE(spec.ok());
  auto c2 = attach(*store_, a, request("web2", "web2", {}, *spec));
  ASSERT_TRUE(c2.ok()) << c2.error().to_string();
  ASSERT_NE(c2->ports[0].host_port, 0);
  serve_http("web2", "random-port-page");
  RunResult rnd =
      sh("timeout 3 busybox wget -q -O - http://127.0.0.1:" + std::to_string(c2->ports[0].host_port) + "/");
  EXPECT_TRUE(has(rnd.out, "random-port-page")) << rnd.out;
  // Hairpin: a container of the same network through the host's published port.
  RunResult hair = in("web2", "timeout 3 busybox wget -q -O - http://" + host_ip + url);
  EXPECT_TRUE(has(hair.out, "published-page")) << "from a peer via " << host_ip << ": " << hair.out;

  // A port another container publishes, then one a host process holds: clear errors, and
  // nothing made (no lease, no veth, no rule, no eth0 in the namespace).
  auto expect_refused = [&](const std::string& ns, uint16_t p, const std::string& why) {
    AttachRequest req = request(ns, ns, {}, {PortMapping{"0.0.0.0", p, 80, "tcp"}});
    auto r = attach(*store_, a, req);
    ASSERT_FALSE(r.ok()) << ns << " was attached";
    EXPECT_EQ(r.error().message(),
              "attach container " + req.container_id.substr(0, 12) + " to network " + a.name + ": " + why);
    EXPECT_EQ(r.error().err(), EADDRINUSE);
    EXPECT_FALSE(fs::exists(store_->dir(a.name) + "/attachments/" + req.container_id + ".json"));
    EXPECT_FALSE(link_exists(host_veth_name(a.name, req.container_id)));
    EXPECT_FALSE(has(table_text(), req.container_id));
    EXPECT_NE(in(ns, "busybox ip link show eth0").code, 0);
    EXPECT_FALSE(fs::exists(req.hosts_path));
  };
  std::string ps = std::to_string(port);
  expect_refused(
      "dup", port,
      "port " + ps + "/tcp on 0.0.0.0 is already in use by container " + c1->container_id.substr(0, 12));

  UniqueFd holder(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(holder.valid());
  auto held = pick_free_port("tcp", "0.0.0.0");
  ASSERT_TRUE(held.ok());
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(*held);
  ASSERT_EQ(::bind(holder.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(holder.get(), 1), 0);
  expect_refused("held", *held, "port " + std::to_string(*held) + "/tcp on 0.0.0.0 is already in use");

  // The DNAT rules name their container.
  std::string t = table_text();
  EXPECT_TRUE(has(t, "tcp dport " + ps + " dnat to " + c1->ip + ":80 comment \"strata:c:" + c1->container_id))
      << t;
}

TEST_F(NetTest, DetachRemovesEverythingIdempotentlyFromAnotherProcessView) {
  NetworkConfig a = network("d", 0);
  auto c1 = attach(*store_, a, request("d1", "one"));
  ASSERT_TRUE(c1.ok()) << c1.error().to_string();
  auto c2 = attach(*store_, a, request("d2", "two", {}, {PortMapping{"0.0.0.0", 0, 80, "udp"}}));
  ASSERT_TRUE(c2.ok()) << c2.error().to_string();
  ASSERT_TRUE(has(*fs::read_file(hosts_path("d1")), "\ttwo\n"));
  ASSERT_TRUE(has(table_text(), c2->container_id));
  ASSERT_TRUE(link_exists(c2->host_veth));

  // A cleanup process after a crash: a store opened afresh, knowing only the ids.
  auto other = NetworkStore::open(root_, store_->options());
  ASSERT_TRUE(other.ok());
  Status st = detach(*other, a.name, c2->container_id);
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_FALSE(link_exists(c2->host_veth)) << "veth gone";
  EXPECT_NE(in("d2", "busybox ip link show eth0").code, 0) << "peer gone with it";
  EXPECT_FALSE(has(table_text(), c2->container_id)) << table_text();
  EXPECT_FALSE(fs::exists(store_->dir(a.name) + "/attachments/" + c2->container_id + ".json"))
      << "lease gone";
  EXPECT_FALSE(has(*fs::read_file(hosts_path("d1")), "\ttwo\n")) << *fs::read_file(hosts_path("d1"));
  auto left = attachments(*store_, a.name);
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].container_id, c1->container_id);

  st = detach(*other, a.name, c2->container_id);
  EXPECT_TRUE(st.ok()) << "detach twice: " << st.error().to_string();
  st = detach(*other, a.name, std::string(64, 'e'));
  EXPECT_TRUE(st.ok()) << "detach of an unknown container: " << st.error().to_string();
  EXPECT_TRUE(link_exists(c1->host_veth)) << "the other container is untouched";
  EXPECT_EQ(in("d1", "busybox ping -c1 -W2 " + a.gateway).code, 0);

  // The released address is leased again (round-robin: after the others).
  auto c3 = attach(*store_, a, request("d3", "three"));
  ASSERT_TRUE(c3.ok()) << c3.error().to_string();
  EXPECT_NE(c3->ip, c1->ip);
}

TEST_F(NetTest, RemoveNetworkDeletesBridgeAndRules) {
  NetworkConfig a = network("r", 0);
  NetworkConfig b = network("s", 1);
  auto c1 = attach(*store_, a, request("r1", "one"));
  ASSERT_TRUE(c1.ok()) << c1.error().to_string();
  auto c2 = attach(*store_, b, request("s1", "two"));
  ASSERT_TRUE(c2.ok()) << c2.error().to_string();
  ASSERT_TRUE(link_exists(a.bridge));

  Status st = store_->remove(a.name);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().err(), EBUSY);
  EXPECT_TRUE(link_exists(a.bridge)) << "refused: nothing removed";

  ASSERT_TRUE(detach(*store_, a.name, c1->container_id).ok());
  st = store_->remove(a.name);
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_FALSE(link_exists(a.bridge));
  std::string t = table_text();
  EXPECT_FALSE(has(t, network_rule_comment(a.name) + "\"")) << t;
  EXPECT_FALSE(has(t, "\"" + a.bridge + "\"")) << t;
  EXPECT_TRUE(has(t, network_rule_comment(b.name))) << "the other network keeps its rules: " << t;
  EXPECT_FALSE(store_->get(a.name).ok());

  ASSERT_TRUE(detach(*store_, b.name, c2->container_id).ok());
  ASSERT_TRUE(store_->remove(b.name).ok());
  EXPECT_FALSE(link_exists(b.bridge));
  EXPECT_EQ(table_text(), "") << "the last network takes the table with it";
}

// Outbound NAT: an "outside" host (a netns on a veth of the host's, with no route back to the
// container subnets) sees a container's connection come from the host's address; an --internal
// network gets no way out at all.
TEST_F(NetTest, OutboundTrafficIsMasqueradedInternalNetworksStayInside) {
  NetworkConfig a = network("o", 0);
  NetworkConfig internal_want;
  internal_want.name = "neti";
  internal_want.bridge = "stt" + std::to_string(pid_) + "i";
  internal_want.subnet = "10.213." + std::to_string((pid_ % 120) * 2 + 1) + ".0/24";
  internal_want.internal = true;
  bridges_.push_back(internal_want.bridge);
  auto internal = store_->create(internal_want);
  ASSERT_TRUE(internal.ok()) << internal.error().to_string();
  auto c1 = attach(*store_, a, request("o1", "one"));
  ASSERT_TRUE(c1.ok()) << c1.error().to_string();
  auto c2 = attach(*store_, *internal, request("i1", "two"));
  ASSERT_TRUE(c2.ok()) << c2.error().to_string();

  std::string outside = ns_name("out"), host_end = "stt" + std::to_string(pid_) + "x";
  container("out");
  bridges_.push_back(host_end);  // a link of the host's that TearDown deletes
  RunResult r =
      sh("ip link add " + host_end + " type veth peer name eth0 netns " + outside +
         " && ip addr add 198.51.100.1/24 dev " + host_end + " && ip link set " + host_end +
         " up && ip netns exec " + outside +
         " sh -c 'ip addr add 198.51.100.2/24 dev eth0 && ip link set eth0 up && ip link set lo up'");
  ASSERT_EQ(r.code, 0) << r.out;
  // A CGI that answers with the address the connection came from.
  std::string www = root_ + "/www-out";
  ASSERT_TRUE(fs::mkdir_p(www + "/cgi-bin").ok());
  ASSERT_TRUE(fs::write_file_atomic(www + "/cgi-bin/addr",
                                    "#!/bin/sh\necho Content-Type: text/plain\necho\necho \"$REMOTE_ADDR\"\n",
                                    0755)
                  .ok());
  pid_t p = ::fork();
  ASSERT_GE(p, 0);
  if (p == 0) {
    ::execl("/usr/sbin/ip", "ip", "netns", "exec", outside.c_str(), "/bin/busybox", "httpd", "-f", "-p",
            "8080", "-h", www.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  servers_.push_back(p);
  for (int i = 0; i < 100 && in("out", "busybox netstat -ltn").out.find(":8080 ") == std::string::npos; ++i)
    ::usleep(20000);
  EXPECT_EQ(in("out", "ip route").out.find("10.213."), std::string::npos)
      << "no route back to the containers";

  RunResult got = in("o1", "timeout 5 busybox wget -q -O - http://198.51.100.2:8080/cgi-bin/addr");
  EXPECT_EQ(got.code, 0) << got.out;
  // busybox httpd gives the peer as an IPv4-mapped IPv6 address.
  EXPECT_EQ(got.out, "[::ffff:198.51.100.1]\n")
      << "the container's " << c1->ip << " is masqueraded to the host's address";
  RunResult none = in("i1", "timeout 3 busybox wget -q -O - http://198.51.100.2:8080/cgi-bin/addr");
  EXPECT_NE(none.code, 0) << "an internal network has no way out: " << none.out;
  ASSERT_TRUE(detach(*store_, a.name, c1->container_id).ok());
  ASSERT_TRUE(detach(*store_, internal->name, c2->container_id).ok());
}

TEST_F(NetTest, FailedAttachLeavesNothing) {
  NetworkConfig a = network("f", 0);
  AttachRequest req = request("f1", "one");
  req.netns_path = "/run/netns/no-such-namespace-" + std::to_string(pid_);
  auto r = attach(*store_, a, req);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().to_string(), "open network namespace " + req.netns_path + ": ENOENT"))
      << r.error().to_string();
  EXPECT_FALSE(fs::exists(store_->dir(a.name) + "/attachments/" + req.container_id + ".json"));
  EXPECT_FALSE(link_exists(host_veth_name(a.name, req.container_id)));
  // Attaching the same id again works (nothing half-made blocks it).
  req.netns_path = "/run/netns/" + ns_name("f1");
  auto ok = attach(*store_, a, req);
  ASSERT_TRUE(ok.ok()) << ok.error().to_string();
  auto again = attach(*store_, a, req);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().err(), EEXIST);
}

// A process killed mid-attach: the lease is on disk and the veth exists, but no rule, no
// hosts file. Detach from another process finds and removes both from the ids alone.
TEST_F(NetTest, DetachAfterAKillMidAttach) {
  NetworkConfig a = network("k", 0);
  AttachRequest req = request("k1", "one");
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // What attach does up to the veth, then "kill -9": _exit without any cleanup.
    auto lk = store_->lock();
    Attachment rec;
    rec.container_id = req.container_id;
    rec.host_veth = host_veth_name(a.name, req.container_id);
    rec.hosts_path = req.hosts_path;
    auto l = Leases(store_->dir(a.name)).allocate(a, rec);
    if (!l) ::_exit(2);
    std::string cmd = "ip link add " + rec.host_veth + " type veth peer name eth0 netns " + ns_name("k1");
    ::_exit(sh(cmd).code == 0 ? 0 : 3);
  }
  int st = 0;
  ASSERT_EQ(::waitpid(child, &st, 0), child);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "child status " << st;
  std::string veth = host_veth_name(a.name, req.container_id);
  ASSERT_TRUE(link_exists(veth));

  Status d = detach(*store_, a.name, req.container_id);
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  EXPECT_FALSE(link_exists(veth));
  EXPECT_FALSE(fs::exists(store_->dir(a.name) + "/attachments/" + req.container_id + ".json"));
  // Nothing of the killed attach stands in the way of the next one.
  auto again = attach(*store_, a, request("k2", "two"));
  ASSERT_TRUE(again.ok()) << again.error().to_string();

  // A record mangled on disk (a torn write on a broken filesystem, a hand edit) does not
  // block the cleanup either: the names derive from the ids.
  std::string rec_path = store_->dir(a.name) + "/attachments/" + again->container_id + ".json";
  ASSERT_TRUE(fs::write_file_atomic(rec_path, "{").ok());
  d = detach(*store_, a.name, again->container_id);
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  EXPECT_FALSE(link_exists(again->host_veth));
  EXPECT_FALSE(fs::exists(rec_path));
}

}  // namespace
}  // namespace strata::net::it
