#include "net/hosts.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "base/fs.h"

namespace strata::net {
namespace {

Attachment att(const std::string& id, const std::string& name, const std::string& ip,
               std::vector<std::string> aliases = {}) {
  Attachment a;
  a.container_id = id;
  a.name = name;
  a.ip = ip;
  a.gateway = "10.89.0.1";
  a.aliases = std::move(aliases);
  return a;
}

TEST(Hosts, RendersSelfGatewayAndPeers) {
  Attachment web = att("0123456789abcdef", "web", "10.89.0.2", {"www"});
  Attachment db = att("fedcba9876543210", "db", "10.89.0.3", {"postgres", "pg"});
  Attachment anon = att("1111111111111111", "", "10.89.0.4");
  EXPECT_EQ(render_hosts(web, {web, db, anon}),
            "127.0.0.1\tlocalhost\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
            "10.89.0.2\tweb\twww\t0123456789ab\n"
            "10.89.0.1\thost.strata.internal\n"
            "10.89.0.3\tdb\tpostgres\tpg\n");
  // A container without a name still finds itself by its short id.
  EXPECT_EQ(render_hosts(anon, {anon}),
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            "10.89.0.4\t111111111111\n"
            "10.89.0.1\thost.strata.internal\n");
}

TEST(Hosts, WriteInPlaceKeepsTheInode) {
  char tmpl[] = "/tmp/strata-hosts-test.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  std::string p = dir + "/hosts";
  ASSERT_TRUE(write_in_place(p, "a much longer first content\n").ok());
  struct stat before {};
  ASSERT_EQ(stat(p.c_str(), &before), 0);
  ASSERT_TRUE(write_in_place(p, "short\n").ok());
  struct stat after {};
  ASSERT_EQ(stat(p.c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino) << "a bind mount pins the inode: no rename";
  EXPECT_EQ(*fs::read_file(p), "short\n");
  ASSERT_TRUE(fs::remove_tree(dir).ok());
}

TEST(Hosts, WriteHostsFilesReportsAMissingOneButWritesTheOthers) {
  char tmpl[] = "/tmp/strata-hosts-test.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  Attachment a = att("aaaaaaaaaaaaaaaa", "a", "10.89.0.2");
  a.hosts_path = dir + "/gone/hosts";
  Attachment b = att("bbbbbbbbbbbbbbbb", "b", "10.89.0.3");
  b.hosts_path = dir + "/b-hosts";
  Status st = write_hosts_files({a, b});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("container aaaaaaaaaaaa: open hosts file " + a.hosts_path),
            std::string::npos)
      << st.error().message();
  EXPECT_EQ(*fs::read_file(b.hosts_path), render_hosts(b, {a, b}));
  ASSERT_TRUE(fs::remove_tree(dir).ok());
}

TEST(ResolvConf, DropsLoopbackNameservers) {
  EXPECT_EQ(resolv_conf_for_container("# by hand\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n"
                                      "nameserver ::1\nsearch example.org\noptions edns0\n"),
            "# by hand\nnameserver 10.0.0.2\nsearch example.org\noptions edns0\n");
  EXPECT_EQ(resolv_conf_for_container("nameserver 127.0.0.53\nsearch lan\n"),
            "search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n");
  EXPECT_EQ(resolv_conf_for_container(""), "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
}

}  // namespace
}  // namespace strata::net
