// The overlay of a container's root as root: as many layers as overlayfs stacks (an image of 301
// layers failed with "overlay options ... exceed a page" before layers were handed over one at a
// time), a read-only view, and the limit named when passed.
#include "image/overlay.h"

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstdlib>

#include "base/fs.h"

namespace strata::image {
namespace {

class OverlayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (mounts)";
    // Paths as long as the store's (<root>/layers/sha256/<64 hex>), which is what filled the page.
    char tmpl[] = "/tmp/strata-overlay-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (dir_.empty()) return;
    ::umount2((dir_ + "/mnt").c_str(), MNT_DETACH);
    (void)fs::remove_tree(dir_);
  }
  std::vector<std::string> layers(size_t n) {
    std::vector<std::string> top_first;
    for (size_t i = 0; i < n; ++i) {
      std::string d = dir_ + "/layers/sha256/" + std::string(56, 'a') + std::to_string(10000000 + i);
      EXPECT_TRUE(fs::mkdir_p(d).ok());
      EXPECT_TRUE(fs::write_file_atomic(d + "/f" + std::to_string(i), std::to_string(i)).ok());
      top_first.insert(top_first.begin(), d);
    }
    EXPECT_TRUE(fs::mkdir_p(dir_ + "/upper").ok());
    EXPECT_TRUE(fs::mkdir_p(dir_ + "/work").ok());
    EXPECT_TRUE(fs::mkdir_p(dir_ + "/mnt").ok());
    return top_first;
  }
  std::string dir_;
};

TEST_F(OverlayTest, ThreeHundredAndOneLayers) {
  auto l = layers(301);
  Status st = mount_overlay(l, dir_ + "/upper", dir_ + "/work", dir_ + "/mnt");
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_EQ(*fs::read_file(dir_ + "/mnt/f0"), "0");
  EXPECT_EQ(*fs::read_file(dir_ + "/mnt/f300"), "300");
  ASSERT_TRUE(fs::write_file_atomic(dir_ + "/mnt/new", "x").ok());
  EXPECT_TRUE(fs::exists(dir_ + "/upper/new"));
}

TEST_F(OverlayTest, ReadOnlyViewAndTheLimit) {
  auto l = layers(2);
  ASSERT_TRUE(mount_overlay(l, "", "", dir_ + "/mnt").ok());
  EXPECT_EQ(*fs::read_file(dir_ + "/mnt/f1"), "1");
  EXPECT_FALSE(fs::write_file_atomic(dir_ + "/mnt/new", "x").ok());
  ASSERT_EQ(::umount2((dir_ + "/mnt").c_str(), MNT_DETACH), 0);

  std::vector<std::string> many(501, l[0]);
  Status st = mount_overlay(many, dir_ + "/upper", dir_ + "/work", dir_ + "/mnt");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("501 layers; overlayfs stacks at most 500"), std::string::npos);
  Status comma = mount_overlay({dir_ + "/a,upperdir=/x"}, dir_ + "/upper", dir_ + "/work", dir_ + "/mnt");
  ASSERT_FALSE(comma.ok());
}

}  // namespace
}  // namespace strata::image
