#include "base/digest.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace strata {
namespace {

TEST(Digest, KnownVectors) {
  EXPECT_EQ(sha256_digest(""), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_digest("abc"), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Digest, StreamingEqualsOneShot) {
  Sha256 h;
  h.update("a");
  h.update("bc");
  EXPECT_EQ(h.digest(), sha256_digest("abc"));
}

TEST(Digest, File) {
  std::string path = ::testing::TempDir() + "/digest_test_file";
  { std::ofstream(path) << "abc"; }
  auto d = sha256_file(path);
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  EXPECT_EQ(*d, sha256_digest("abc"));
  std::remove(path.c_str());
  auto missing = sha256_file(path);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().to_string().find("ENOENT"), std::string::npos);
}

TEST(Digest, Validation) {
  EXPECT_TRUE(validate_digest(sha256_digest("x")).ok());
  EXPECT_FALSE(is_sha256_digest("sha256:ABC"));
  auto no_alg = validate_digest("deadbeef");
  ASSERT_FALSE(no_alg.ok());
  EXPECT_NE(no_alg.error().message().find("no algorithm"), std::string::npos);
  auto sha512 = validate_digest("sha512:00");
  ASSERT_FALSE(sha512.ok());
  EXPECT_NE(sha512.error().message().find("unsupported algorithm \"sha512\""), std::string::npos);
  auto short_hex = validate_digest("sha256:00");
  ASSERT_FALSE(short_hex.ok());
  EXPECT_NE(short_hex.error().message().find("64 lowercase hex"), std::string::npos);
  EXPECT_EQ(digest_hex("sha256:ab"), "ab");
}

}  // namespace
}  // namespace strata
