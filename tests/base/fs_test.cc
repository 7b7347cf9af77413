#include "base/fs.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

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

TEST(FsPathTest, Clean) {
  EXPECT_EQ(fs::clean("/a//b/./c/../d"), "/a/b/d");
  EXPECT_EQ(fs::clean("/../../etc"), "/etc");
  EXPECT_EQ(fs::clean("a/../../b"), "../b");
  EXPECT_EQ(fs::clean(""), ".");
  EXPECT_EQ(fs::join("/a/", "/b"), "/a/b");
}

}  // namespace
}  // namespace strata
