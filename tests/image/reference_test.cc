#include "image/reference.h"

#include <gtest/gtest.h>

#include <string>

namespace strata::image {
namespace {

const std::string kDigest = "sha256:" + std::string(64, 'a');

struct Normalized {
  const char* input;
  const char* domain;
  const char* path;
  const char* tag;
  const char* str;
  const char* familiar;
};

// The table docker's reference tests are built around, plus strata's own cases.
const Normalized kNormalization[] = {
    {"busybox", "docker.io", "library/busybox", "latest", "docker.io/library/busybox:latest",
     "busybox:latest"},
    {"busybox:1.36", "docker.io", "library/busybox", "1.36", "docker.io/library/busybox:1.36",
     "busybox:1.36"},
    {"library/busybox", "docker.io", "library/busybox", "latest", "docker.io/library/busybox:latest",
     "busybox:latest"},
    {"docker.io/busybox", "docker.io", "library/busybox", "latest", "docker.io/library/busybox:latest",
     "busybox:latest"},
    {"index.docker.io/library/busybox", "docker.io", "library/busybox", "latest",
     "docker.io/library/busybox:latest", "busybox:latest"},
    {"team/app:v1", "docker.io", "team/app", "v1", "docker.io/team/app:v1", "team/app:v1"},
    {"docker.io/library/a/b", "docker.io", "library/a/b", "latest", "docker.io/library/a/b:latest",
     "library/a/b:latest"},
    {"quay.io/team/app", "quay.io", "team/app", "latest", "quay.io/team/app:latest",
     "quay.io/team/app:latest"},
    {"quay.io/app", "quay.io", "app", "latest", "quay.io/app:latest", "quay.io/app:latest"},
    {"localhost/app", "localhost", "app", "latest", "localhost/app:latest", "localhost/app:latest"},
    {"localhost:5000/team/app:1.0", "localhost:5000", "team/app", "1.0", "localhost:5000/team/app:1.0",
     "localhost:5000/team/app:1.0"},
    {"127.0.0.1:5000/busybox", "127.0.0.1:5000", "busybox", "latest", "127.0.0.1:5000/busybox:latest",
     "127.0.0.1:5000/busybox:latest"},
    {"[::1]:5000/busybox:x", "[::1]:5000", "busybox", "x", "[::1]:5000/busybox:x", "[::1]:5000/busybox:x"},
    {"Registry.Example.com/a", "Registry.Example.com", "a", "latest", "Registry.Example.com/a:latest",
     "Registry.Example.com/a:latest"},
    {"localhost:5000", "docker.io", "library/localhost", "5000", "docker.io/library/localhost:5000",
     "localhost:5000"},
    {"a.b-c/e--f/g_h:Tag_1.2-3", "a.b-c", "e--f/g_h", "Tag_1.2-3", "a.b-c/e--f/g_h:Tag_1.2-3",
     "a.b-c/e--f/g_h:Tag_1.2-3"},
    {"x/a.b_c__d---e", "docker.io", "x/a.b_c__d---e", "latest", "docker.io/x/a.b_c__d---e:latest",
     "x/a.b_c__d---e:latest"},
};

TEST(ReferenceTest, NormalizationTable) {
  for (const auto& c : kNormalization) {
    SCOPED_TRACE(c.input);
    auto r = parse_reference(c.input);
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r->domain, c.domain);
    EXPECT_EQ(r->path, c.path);
    EXPECT_EQ(r->tag, c.tag);
    EXPECT_EQ(r->digest, "");
    EXPECT_EQ(r->str(), c.str);
    EXPECT_EQ(r->familiar(), c.familiar);
    // The canonical form parses back to the same reference.
    auto again = parse_reference(r->str());
    ASSERT_TRUE(again.ok()) << again.error().message();
    EXPECT_EQ(*again, *r);
  }
}

TEST(ReferenceTest, Digests) {
  auto r = parse_reference("busybox@" + kDigest);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->tag, "") << "a digest alone asks for no tag";
  EXPECT_EQ(r->digest, kDigest);
  EXPECT_EQ(r->str(), "docker.io/library/busybox@" + kDigest);
  EXPECT_EQ(r->familiar(), "busybox@" + kDigest);

  r = parse_reference("localhost:5000/app:1.0@" + kDigest);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->domain, "localhost:5000");
  EXPECT_EQ(r->tag, "1.0");
  EXPECT_EQ(r->str(), "localhost:5000/app:1.0@" + kDigest);
  EXPECT_EQ(r->repository(), "localhost:5000/app");
}

TEST(ReferenceTest, LongestValidTagAndName) {
  std::string tag = "t" + std::string(127, 'x');
  EXPECT_TRUE(parse_reference("busybox:" + tag).ok());
  EXPECT_FALSE(parse_reference("busybox:" + tag + "x").ok());
  // docker.io/library/ is 18 characters of the 255.
  std::string name(255 - 18, 'a');
  EXPECT_TRUE(parse_reference(name).ok());
  auto r = parse_reference(name + "a");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("longer than 255"), std::string::npos) << r.error().message();
}

struct Invalid {
  std::string input;
  std::string message;
};

TEST(ReferenceTest, InvalidReferencesNameTheProblem) {
  const Invalid cases[] = {
      {"", "invalid image reference \"\": empty"},
      {"Foo/bar", "invalid image reference \"Foo/bar\": repository name must be lowercase"},
      {"BUSYBOX", "repository name must be lowercase"},
      {"quay.io/Team/app", "repository name must be lowercase"},
      {std::string(64, 'a'), "is an image ID, not a reference"},
      {"busybox:", "invalid tag \"\""},
      {"busybox:-x", "invalid tag \"-x\""},
      {"busybox:a/b", "invalid domain \"busybox:a\""},
      {"busybox:.x", "invalid tag \".x\""},
      {"busybox:t!", "invalid tag \"t!\""},
      {"a//b", "empty path component"},
      {"a/", "empty path component"},
      {"/a", "empty path component"},
      {"-a", "invalid path component \"-a\""},
      {"a-", "invalid path component \"a-\""},
      {"a___b", "invalid path component \"a___b\""},
      {"a._b", "invalid path component \"a._b\""},
      {"a..b", "invalid path component \"a..b\""},
      {"a b", "invalid path component \"a b\""},
      {"-bad.io/a", "invalid domain \"-bad.io\""},
      {"bad-.io/a", "invalid domain \"bad-.io\""},
      {"host:port/a", "invalid domain \"host:port\""},
      {"host:/a", "invalid domain \"host:\""},
      {"a..io/b", "invalid domain \"a..io\""},
      {"a_b.io/c", "invalid domain \"a_b.io\""},
      {"[::1/a", "invalid domain"},
      {"busybox@", "no algorithm prefix"},
      {"busybox@sha256:abc", "want 64 lowercase hex digits"},
      {"busybox@sha512:" + std::string(128, 'a'), "unsupported algorithm \"sha512\""},
      {"busybox@" + kDigest + "@" + kDigest, "want 64 lowercase hex digits"},
      {":tag", "empty repository name"},
      {"@" + kDigest, "empty repository name"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.input);
    auto r = parse_reference(c.input);
    ASSERT_FALSE(r.ok()) << "parsed as " << r->str();
    EXPECT_NE(r.error().message().find(c.message), std::string::npos) << r.error().message();
    EXPECT_EQ(r.error().message().rfind("invalid image reference \"" + c.input + "\": ", 0), 0u)
        << r.error().message();
  }
}

}  // namespace
}  // namespace strata::image
