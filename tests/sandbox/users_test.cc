#include "sandbox/users.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/fd.h"
#include "base/fs.h"

namespace strata::sandbox {
namespace {

constexpr const char* kPasswd =
    "root:x:0:0:root:/root:/bin/sh\n# a comment\nwww:x:33:34:www:/var/www:/bin/false\n"
    "neg:x:-1:0:neg:/:/bin/false\nhuge:x:4294967295:0:huge:/:/bin/false\nbadgid:x:500:4294967295::/:\n";
constexpr const char* kGroup =
    "root:x:0:\nwebgrp:x:34:\nlogs:x:4:www\nhuge:x:4294967295:\nevil:x:4294967295:badgid\n";

TEST(ResolveUser, NamesNumbersAndGroups) {
  auto u = resolve_user_in(kPasswd, kGroup, "www");
  ASSERT_TRUE(u.ok()) << u.error().to_string();
  EXPECT_EQ(u->uid, 33u);
  EXPECT_EQ(u->gid, 34u);
  EXPECT_EQ(u->home, "/var/www");
  EXPECT_EQ(u->additional_gids, std::vector<uint32_t>{4});
  auto g = resolve_user_in(kPasswd, kGroup, "www:root");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->gid, 0u);
  auto n = resolve_user_in(kPasswd, kGroup, "1234:5678");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->uid, 1234u);
  EXPECT_EQ(n->gid, 5678u);
  auto top = resolve_user_in("", "", "2147483647:2147483647");
  ASSERT_TRUE(top.ok());
  EXPECT_EQ(top->uid, 2147483647u);
}

TEST(ResolveUser, UnknownNamesAreErrors) {
  auto u = resolve_user_in(kPasswd, kGroup, "nobody");
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.error().message(), "user \"nobody\": no such user in the image's /etc/passwd");
  auto g = resolve_user_in(kPasswd, kGroup, "www:wheel");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().message(), "group \"wheel\": no such group in the image's /etc/group");
  EXPECT_FALSE(resolve_user_in(kPasswd, kGroup, ":0").ok());
}

// (uid_t)-1 means "unchanged" to setresuid: 4294967295 from a flag, an image's User or a line of
// its /etc/passwd must never reach it (the container would keep root).
TEST(ResolveUser, IdsOutOfRangeAreRefusedWhereverTheyComeFrom) {
  for (const char* user : {"4294967295", "2147483648", "0:4294967295", "99999999999999999999"}) {
    auto r = resolve_user_in(kPasswd, kGroup, user);
    ASSERT_FALSE(r.ok()) << user;
    EXPECT_NE(r.error().message().find("out of range (0 to 2147483647)"), std::string::npos)
        << r.error().message();
  }
  auto huge = resolve_user_in(kPasswd, kGroup, "huge");
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.error().message(),
            "user \"huge\" in the image's /etc/passwd: user id \"4294967295\" is not a number from 0 to "
            "2147483647");
  EXPECT_FALSE(resolve_user_in(kPasswd, kGroup, "neg").ok());
  EXPECT_FALSE(resolve_user_in(kPasswd, kGroup, "badgid").ok());
  EXPECT_FALSE(resolve_user_in(kPasswd, kGroup, "www:huge").ok());
  // A supplementary group line with an impossible id.
  auto evil = resolve_user_in("badgid:x:500:500::/:\n", kGroup, "badgid");
  ASSERT_FALSE(evil.ok());
  EXPECT_NE(evil.error().message().find("/etc/group"), std::string::npos);
}

// The files come from the container's root, which the container may have replaced before this
// start: resolved inside the root, regular files only, size-capped.
class ResolveUserInRootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-users-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    root_ = dir_ + "/root";
    ASSERT_TRUE(fs::mkdir_p(root_ + "/etc").ok());
    ASSERT_TRUE(fs::write_file_atomic(root_ + "/etc/group", kGroup).ok());
    fd_.reset(::open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  }
  void TearDown() override { (void)fs::remove_tree(dir_); }
  std::string dir_, root_;
  UniqueFd fd_;
};

TEST_F(ResolveUserInRootTest, PasswdSymlinkedToTheHostsShadowReadsTheRootsOwn) {
  // On the host this would be /etc/shadow (whose root line has uid field "..."); in the root
  // there is no /etc/shadow: the user is not found, nothing of the host's is read.
  ASSERT_EQ(symlink("/etc/shadow", (root_ + "/etc/passwd").c_str()), 0);
  auto r = resolve_user(fd_.get(), "root");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "user \"root\": no such user in the image's /etc/passwd");
  ASSERT_TRUE(fs::write_file_atomic(root_ + "/etc/shadow", "root:x:7:7:r:/r:/bin/sh\n").ok());
  auto own = resolve_user(fd_.get(), "root");
  ASSERT_TRUE(own.ok()) << own.error().to_string();
  EXPECT_EQ(own->uid, 7u);
}

TEST_F(ResolveUserInRootTest, FifoDeviceAndHugeFilesAreErrorsNotHangsOrCrashes) {
  ASSERT_EQ(mkfifo((root_ + "/etc/passwd").c_str(), 0600), 0);
  auto fifo = resolve_user(fd_.get(), "www");  // a plain open() would block here for ever
  ASSERT_FALSE(fifo.ok());
  EXPECT_EQ(
      fifo.error().message(),
      "look up the container's user: read /etc/passwd in the container's root: not a regular file (a FIFO)");
  ASSERT_EQ(unlink((root_ + "/etc/passwd").c_str()), 0);
  // /dev/zero, resolved in the root: a device node there (made by the container) or nothing.
  ASSERT_EQ(symlink("/dev/zero", (root_ + "/etc/passwd").c_str()), 0);
  ASSERT_TRUE(fs::mkdir_p(root_ + "/dev").ok());
  if (mknod((root_ + "/dev/zero").c_str(), S_IFCHR | 0666, makedev(1, 5)) == 0) {
    auto zero = resolve_user(fd_.get(), "www");
    ASSERT_FALSE(zero.ok());
    EXPECT_NE(zero.error().message().find("not a regular file (a character device)"), std::string::npos);
    ASSERT_EQ(unlink((root_ + "/dev/zero").c_str()), 0);
  }
  ASSERT_EQ(unlink((root_ + "/etc/passwd").c_str()), 0);
  // Larger than the cap: refused before it is read whole.
  {
    UniqueFd f(::open((root_ + "/etc/passwd").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
    ASSERT_TRUE(f);
    ASSERT_EQ(ftruncate(f.get(), kUserDbLimit + 1), 0);
  }
  auto big = resolve_user(fd_.get(), "www");
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().err(), EFBIG);
  // A missing file is an empty one: numeric users still work.
  ASSERT_EQ(unlink((root_ + "/etc/passwd").c_str()), 0);
  auto numeric = resolve_user(fd_.get(), "1000");
  ASSERT_TRUE(numeric.ok());
  EXPECT_EQ(numeric->uid, 1000u);
  EXPECT_EQ(numeric->gid, 1000u);
}

}  // namespace
}  // namespace strata::sandbox
