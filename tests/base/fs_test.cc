#include "base/fs.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

namespace strata {
namespace {

class FsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-fs-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { ASSERT_TRUE(fs::remove_tree(dir_).ok()); }
  std::string dir_;
};

TEST_F(FsTest, AtomicWriteThenRead) {
  std::string p = dir_ + "/state.json";
  ASSERT_TRUE(fs::write_file_atomic(p, "one").ok());
  ASSERT_TRUE(fs::write_file_atomic(p, "two").ok());
  EXPECT_EQ(*fs::read_file(p), "two");
  EXPECT_EQ(fs::list_dir(dir_).size(), 1u) << "no temporary left behind";
}

TEST_F(FsTest, ReadMissingNamesPathAndErrno) {
  auto r = fs::read_file(dir_ + "/nope");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().err(), ENOENT);
  EXPECT_NE(r.error().to_string().find("open " + dir_ + "/nope"), std::string::npos);
}

TEST_F(FsTest, MkdirPAndRemoveTree) {
  ASSERT_TRUE(fs::mkdir_p(dir_ + "/a/b/c").ok());
  ASSERT_TRUE(fs::write_file_atomic(dir_ + "/a/b/c/f", "x").ok());
  ASSERT_EQ(symlink("/etc", (dir_ + "/a/link").c_str()), 0);
  ASSERT_TRUE(fs::remove_tree(dir_ + "/a").ok());
  EXPECT_FALSE(fs::exists(dir_ + "/a"));
  EXPECT_TRUE(fs::is_dir("/etc")) << "symlink target untouched";
}

// read_file is the project's one whole-file read: a FIFO named by a user or planted in a tree
// must not hang it, and /dev/zero or a huge file must not eat the memory.
TEST_F(FsTest, ReadFileRefusesFifosDevicesAndHugeFiles) {
  std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  auto f = fs::read_file(fifo);  // would block for ever on a plain open()
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().message(), "read " + fifo + ": not a regular file (a FIFO)");

  auto z = fs::read_file("/dev/zero");
  ASSERT_FALSE(z.ok());
  EXPECT_EQ(z.error().message(), "read /dev/zero: not a regular file (a character device)");

  auto d = fs::read_file(dir_);
  ASSERT_FALSE(d.ok());

  std::string big = dir_ + "/big";
  ASSERT_TRUE(fs::write_file_atomic(big, std::string(4096, 'x')).ok());
  auto b = fs::read_file(big, 4095);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().err(), EFBIG);
  EXPECT_EQ(fs::read_file(big, 4096)->size(), 4096u);
  // /proc files say size 0 and are read to their end all the same.
  EXPECT_NE(fs::read_file("/proc/self/status")->find("Pid:"), std::string::npos);
}

// A tree that is not ours: every path is resolved inside it, whatever its symlinks say.
class InRootTest : public FsTest {
 protected:
  void SetUp() override {
    FsTest::SetUp();
    root_ = dir_ + "/root";
    outside_ = dir_ + "/outside";
    ASSERT_TRUE(fs::mkdir_p(root_ + "/etc").ok());
    ASSERT_TRUE(fs::mkdir_p(outside_).ok());
    ASSERT_TRUE(fs::write_file_atomic(root_ + "/etc/shadow", "inside").ok());
    ASSERT_TRUE(fs::write_file_atomic(outside_ + "/secret", "outside").ok());
    fd_.reset(::open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(fd_);
  }
  std::string root_, outside_;
  UniqueFd fd_;
};

TEST_F(InRootTest, ReadFollowsSymlinksInsideTheRootOnly) {
  // An absolute symlink means the root's own file, never the host's.
  ASSERT_EQ(symlink("/etc/shadow", (root_ + "/etc/passwd").c_str()), 0);
  EXPECT_EQ(*fs::read_file_in_root(fd_.get(), "/etc/passwd", 1024), "inside");
  // ".." stops at the root: the host's file of that name is never reached.
  ASSERT_EQ(symlink(("../../../../../../.." + outside_ + "/secret").c_str(), (root_ + "/etc/group").c_str()),
            0);
  auto g = fs::read_file_in_root(fd_.get(), "/etc/group", 1024);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().err(), ENOENT);
  auto up = fs::read_file_in_root(fd_.get(), "/../../../../../../.." + outside_ + "/secret", 1024);
  ASSERT_FALSE(up.ok());
  EXPECT_EQ(up.error().err(), ENOENT);
  // /proc/self/root of the root is the root's own path, not the host's procfs.
  ASSERT_EQ(symlink("/proc/self/root/etc/hostname", (root_ + "/etc/hostname").c_str()), 0);
  auto h = fs::read_file_in_root(fd_.get(), "/etc/hostname", 1024);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.error().err(), ENOENT);
}

TEST_F(InRootTest, ReadRefusesFifosAndLargeFiles) {
  ASSERT_EQ(mkfifo((root_ + "/etc/passwd").c_str(), 0600), 0);
  auto p = fs::read_file_in_root(fd_.get(), "/etc/passwd", 1024);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().message(), "read /etc/passwd in the container's root: not a regular file (a FIFO)");
  ASSERT_TRUE(fs::write_file_atomic(root_ + "/etc/group", std::string(2048, 'g')).ok());
  auto g = fs::read_file_in_root(fd_.get(), "etc/group", 1024);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().err(), EFBIG);
}

TEST_F(InRootTest, MkdirStaysInsideTheRoot) {
  // "/../../tmp/x" and a symlink to a host directory both land inside the root.
  ASSERT_EQ(symlink(outside_.c_str(), (root_ + "/app").c_str()), 0);
  ASSERT_TRUE(fs::mkdir_in_root(fd_.get(), "/app/y/z").ok());
  ASSERT_TRUE(fs::mkdir_in_root(fd_.get(), "/../../../../../.." + outside_ + "/a/b").ok());
  EXPECT_EQ(fs::list_dir(outside_), std::vector<std::string>{"secret"}) << "nothing made outside the root";
  EXPECT_TRUE(fs::is_dir(root_ + outside_ + "/y/z"));
  EXPECT_TRUE(fs::is_dir(root_ + outside_ + "/a/b"));
  // An existing file in the way is an error, not a directory made elsewhere.
  auto f = fs::mkdir_in_root(fd_.get(), "/etc/shadow/x");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().err(), ENOTDIR);
  // Owner and mode of what was made.
  ASSERT_TRUE(fs::mkdir_in_root(fd_.get(), "/work/dir", 0750, getuid(), getgid()).ok());
  struct stat st {};
  ASSERT_EQ(stat((root_ + "/work/dir").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
}

TEST(FsPathTest, Clean) {
  EXPECT_EQ(fs::clean("/a//b/./c/../d"), "/a/b/d");
  EXPECT_EQ(fs::clean("/../../etc"), "/etc");
  EXPECT_EQ(fs::clean("a/../../b"), "../b");
  EXPECT_EQ(fs::clean(""), ".");
  EXPECT_EQ(fs::join("/a/", "/b"), "/a/b");
}

}  // namespace
}  // namespace strata
