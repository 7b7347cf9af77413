#include "image/auth_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "base/fs.h"

namespace strata::image {
namespace {

class AuthFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-auth-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    file_ = dir_ + "/containers/auth.json";
  }
  void TearDown() override { ASSERT_TRUE(fs::remove_tree(dir_).ok()); }
  std::string dir_, file_;
};

TEST(Base64Test, RoundTripsAndRejectsGarbage) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("user:pa:ss"), "dXNlcjpwYTpzcw==");
  std::string bin;
  for (int i = 0; i < 256; ++i) bin.push_back(static_cast<char>(i));
  EXPECT_EQ(*base64_decode(base64_encode(bin)), bin);
  EXPECT_EQ(*base64_decode("Zm8"), "fo") << "padding is optional";
  EXPECT_FALSE(base64_decode("Zm9v!").has_value());
  EXPECT_FALSE(base64_decode("Z").has_value());
}

TEST_F(AuthFileTest, MissingFileMeansNoCredentials) {
  auto r = load_credentials(file_, "127.0.0.1:5000");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_FALSE(r->has_value());
}

TEST_F(AuthFileTest, SaveLoadRemoveRoundTrip) {
  ASSERT_TRUE(save_credentials(file_, "127.0.0.1:5000", "alice", "s3cr:et").ok());
  ASSERT_TRUE(save_credentials(file_, "quay.io", "bob", "pw").ok());
  struct stat st;
  ASSERT_EQ(::stat(file_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto j = nlohmann::json::parse(*fs::read_file(file_));
  EXPECT_EQ(j["auths"]["127.0.0.1:5000"]["auth"], base64_encode("alice:s3cr:et")) << "podman's format";
  auto r = load_credentials(file_, "127.0.0.1:5000");
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->first, "alice");
  EXPECT_EQ((*r)->second, "s3cr:et");
  ASSERT_TRUE(save_credentials(file_, "127.0.0.1:5000", "alice", "new").ok());
  EXPECT_EQ((*load_credentials(file_, "127.0.0.1:5000"))->second, "new");
  ASSERT_TRUE(remove_credentials(file_, "127.0.0.1:5000").ok());
  EXPECT_FALSE(load_credentials(file_, "127.0.0.1:5000")->has_value());
  EXPECT_EQ((*load_credentials(file_, "quay.io"))->first, "bob");
  auto again = remove_credentials(file_, "127.0.0.1:5000");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().err(), ENOENT);
  EXPECT_NE(again.error().message().find("not logged in"), std::string::npos);
}

TEST_F(AuthFileTest, KeepsOtherKeysWrittenByOtherTools) {
  ASSERT_TRUE(fs::mkdir_p(dir_ + "/containers").ok());
  ASSERT_TRUE(
      fs::write_file_atomic(file_, R"({"auths":{"x.io":{"auth":"eDp5"}},"credHelpers":{"ecr":"ecr-login"}})")
          .ok());
  ASSERT_TRUE(save_credentials(file_, "y.io", "u", "p").ok());
  auto j = nlohmann::json::parse(*fs::read_file(file_));
  EXPECT_EQ(j["credHelpers"]["ecr"], "ecr-login");
  EXPECT_EQ((*load_credentials(file_, "x.io"))->second, "y");
}

TEST_F(AuthFileTest, DockerHubLegacyKeysAndSchemePrefixes) {
  ASSERT_TRUE(fs::mkdir_p(dir_ + "/containers").ok());
  ASSERT_TRUE(fs::write_file_atomic(
                  file_, R"({"auths":{"https://index.docker.io/v1/":{"auth":")" + base64_encode("d:h") +
                             R"("},"https://r.example:5000":{"auth":")" + base64_encode("r:e") + R"("}}})")
                  .ok());
  EXPECT_EQ((*load_credentials(file_, "docker.io"))->first, "d");
  EXPECT_EQ((*load_credentials(file_, "r.example:5000"))->first, "r");
}

TEST_F(AuthFileTest, MalformedFilesAreClearErrors) {
  ASSERT_TRUE(fs::mkdir_p(dir_ + "/containers").ok());
  ASSERT_TRUE(fs::write_file_atomic(file_, "{not json").ok());
  auto r = load_credentials(file_, "a");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find(file_), std::string::npos);
  EXPECT_FALSE(save_credentials(file_, "a", "u", "p").ok()) << "does not overwrite a file it cannot read";
  EXPECT_EQ(*fs::read_file(file_), "{not json");
  ASSERT_TRUE(fs::write_file_atomic(file_, R"({"auths":{"a":{"auth":"!!!"}}})").ok());
  r = load_credentials(file_, "a");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("base64"), std::string::npos);
  ASSERT_TRUE(
      fs::write_file_atomic(file_, R"({"auths":{"a":{"auth":")" + base64_encode("nocolon") + R"("}}})").ok());
  EXPECT_FALSE(load_credentials(file_, "a").ok());
}

TEST(DefaultAuthFileTest, FollowsPodmansOrder) {
  const char* old_raf = std::getenv("REGISTRY_AUTH_FILE");
  const char* old_xdg = std::getenv("XDG_RUNTIME_DIR");
  std::string saved_raf = old_raf ? old_raf : "", saved_xdg = old_xdg ? old_xdg : "";
  setenv("REGISTRY_AUTH_FILE", "/x/auth.json", 1);
  EXPECT_EQ(default_auth_file(), "/x/auth.json");
  unsetenv("REGISTRY_AUTH_FILE");
  setenv("XDG_RUNTIME_DIR", "/run/user/7", 1);
  EXPECT_EQ(default_auth_file(), "/run/user/7/containers/auth.json");
  unsetenv("XDG_RUNTIME_DIR");
  EXPECT_EQ(default_auth_file(), "/run/containers/" + std::to_string(getuid()) + "/auth.json");
  if (old_raf) setenv("REGISTRY_AUTH_FILE", saved_raf.c_str(), 1);
  if (old_xdg) setenv("XDG_RUNTIME_DIR", saved_xdg.c_str(), 1);
}

}  // namespace
}  // namespace strata::image
