#include "net_fixture.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "base/fs.h"
#include "net/subnet.h"

namespace strata::net::it {

RunResult sh(const std::string& cmd) {
  RunResult r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = ::pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

void NetTest::SetUp() {
  pid_ = ::getpid();
  char tmpl[] = "/tmp/strata-net-it.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  root_ = tmpl;
  table_ = "strata_t" + std::to_string(pid_);
  StoreOptions o;
  o.nft_table = table_;
  o.default_network = "dflt";
  o.default_bridge = "stt" + std::to_string(pid_) + "d";
  o.default_subnet = "10.213.250.0/24";
  o.bridge_prefix = "stt" + std::to_string(pid_);
  o.subnet_pool = "10.213.0.0/16";
  auto s = NetworkStore::open(root_, o);
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  store_.emplace(std::move(*s));
}

void NetTest::TearDown() {
  for (pid_t p : servers_) {
    ::kill(p, SIGKILL);
    ::waitpid(p, nullptr, 0);
  }
  // The API's own cleanup first (it is what the test is about), then by force for whatever a
  // failed test left.
  if (store_) {
    for (const NetworkConfig& n : store_->list()) {
      for (const std::string& id : ids_) (void)detach(*store_, n.name, id);
      (void)store_->remove(n.name);
    }
  }
  for (const std::string& b : bridges_) sh("ip link del " + b + " >/dev/null 2>&1");
  sh("nft delete table ip " + table_ + " >/dev/null 2>&1");
  for (const std::string& ns : namespaces_) {
    sh("ip netns del " + ns);
    (void)fs::remove_tree("/etc/netns/" + ns);
  }
  (void)fs::remove_tree(root_);
  EXPECT_EQ(table_text(), "") << "nft table left behind";
  for (const std::string& b : bridges_) EXPECT_FALSE(link_exists(b)) << b;
}

NetworkConfig NetTest::network(const std::string& tag, int index) {
  NetworkConfig want;
  want.name = "net" + tag;
  want.bridge = "stt" + std::to_string(pid_) + tag;
  want.subnet = "10.213." + std::to_string((pid_ % 120) * 2 + index) + ".0/24";
  bridges_.push_back(want.bridge);
  auto n = store_->create(want);
  EXPECT_TRUE(n.ok()) << n.error().to_string();
  return n.ok() ? *n : want;
}

std::string NetTest::container(const std::string& ns) {
  std::string name = ns_name(ns);
  RunResult r = sh("ip netns add " + name);
  EXPECT_EQ(r.code, 0) << r.out;
  namespaces_.push_back(name);
  EXPECT_TRUE(fs::mkdir_p("/etc/netns/" + name).ok());
  char id[65];
  std::snprintf(id, sizeof id, "%08x%056x", static_cast<unsigned>(pid_),
                static_cast<unsigned>(ids_.size() + 1));
  ids_.emplace_back(id);
  return id;
}

AttachRequest NetTest::request(const std::string& ns, const std::string& name,
                               std::vector<std::string> aliases, std::vector<PortMapping> ports) {
  AttachRequest r;
  r.container_id = container(ns);
  r.name = name;
  r.aliases = std::move(aliases);
  r.netns_path = "/run/netns/" + ns_name(ns);
  r.ports = std::move(ports);
  r.hosts_path = hosts_path(ns);
  return r;
}

RunResult NetTest::in(const std::string& ns, const std::string& cmd) {
  // busybox 1.35 wget crashes with -T: callers bound their commands with timeout(1).
  return sh("ip netns exec " + ns_name(ns) + " " + cmd);
}

void NetTest::serve_http(const std::string& ns, const std::string& token) {
  std::string dir = root_ + "/www-" + ns;
  ASSERT_TRUE(fs::mkdir_p(dir).ok());
  ASSERT_TRUE(fs::write_file_atomic(dir + "/index.html", token + "\n").ok());
  std::string name = ns_name(ns);
  pid_t p = ::fork();
  ASSERT_GE(p, 0);
  if (p == 0) {
    ::execl("/usr/sbin/ip", "ip", "netns", "exec", name.c_str(), "/bin/busybox", "httpd", "-f", "-p", "80",
            "-h", dir.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  servers_.push_back(p);
  // Ready when something listens on :80 inside the namespace.
  for (int i = 0; i < 100; ++i) {
    if (in(ns, "busybox netstat -ltn").out.find(":80 ") != std::string::npos) return;
    ::usleep(20000);
  }
  FAIL() << "httpd did not start in " << name;
}

bool NetTest::link_exists(const std::string& name) { return ::if_nametoindex(name.c_str()) != 0; }

std::string NetTest::table_text() {
  RunResult r = sh("nft list table ip " + table_);
  return r.code == 0 ? r.out : "";
}

std::string NetTest::host_address() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return "";
  std::string out;
  for (ifaddrs* i = list; i && out.empty(); i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK)) continue;
    uint32_t a = ntohl(reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr);
    if ((a >> 16) == ((10u << 8) | 213u)) continue;  // the test's own bridges
    out = format_ipv4(a);
  }
  ::freeifaddrs(list);
  return out;
}

}  // namespace strata::net::it
